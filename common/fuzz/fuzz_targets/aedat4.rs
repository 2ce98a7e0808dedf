//! Fuzz the AEDAT 4 reader (framing checks, then the `aedat` crate). Inputs
//! start after the magic line, which the target prepends.
//!
//! The reader catches panics raised inside the third-party decoders (`aedat`,
//! `flatbuffers`, `lz4`, `zstd`) and turns them into errors; libFuzzer's panic
//! hook would abort on those before they are caught, so this target's hook lets
//! them unwind and aborts (a crash) on a panic anywhere else, i.e. in our code.
#![no_main]

use std::path::Path;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use spikecv_common::events::aedat::v4;

static HOOK: Once = Once::new();

fn third_party(file: &str) -> bool {
    ["/aedat-", "/flatbuffers-", "/lz4-", "/zstd-"]
        .iter()
        .any(|c| file.contains(c))
}

fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let caught = info.location().is_some_and(|l| third_party(l.file()));
            if !caught {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
    let mut bytes = v4::MAGIC.to_vec();
    bytes.extend_from_slice(data);
    let _ = v4::read_bytes(&bytes, Path::new("fuzz.aedat4"));
});

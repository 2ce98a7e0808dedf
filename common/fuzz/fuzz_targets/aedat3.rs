//! Fuzz the AEDAT 3.1 packet reader, bypassing format detection.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spikecv_common::events::aedat::v3;

fuzz_target!(|data: &[u8]| {
    let _ = v3::read(
        Cursor::new(data),
        Path::new("fuzz.aedat"),
        Some(data.len() as u64),
    );
});

//! Fuzz the jAER AEDAT 2.0 reader (header and body), bypassing format detection.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spikecv_common::events::aedat::v2;

fuzz_target!(|data: &[u8]| {
    let _ = v2::read(
        Cursor::new(data),
        Path::new("fuzz.aedat"),
        Some(data.len() as u64),
    );
});

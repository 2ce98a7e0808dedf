//! Fuzz the tag-file parser and the range check.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spikecv_common::events::tags;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = tags::parse(text, Path::new("fuzz.csv")) {
            let _ = tags::check_range(&t, 1000, Path::new("fuzz.csv"));
        }
    }
});

//! Fuzz the sliced-sample (.npy) reader.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spikecv_common::events::npy;

fuzz_target!(|data: &[u8]| {
    let _ = npy::events_from_bytes(data, Path::new("fuzz.npy"));
});

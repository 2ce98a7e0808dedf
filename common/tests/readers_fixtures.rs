//! Readers on the real files in tests/fixtures/events, compared with independent
//! readers (numpy on the raw records, the Python `aedat` package) through
//! `fixtures/readers_expected.json` (made by `fixtures/make_reader_expected.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use spikecv_common::events::aedat::{self, Format, ReadError};
use spikecv_common::events::{Event, checksum};

#[derive(Debug, Deserialize)]
struct Expected {
    events: usize,
    first: [i64; 4],
    last: [i64; 4],
    on: usize,
    checksum: String,
    width: u16,
    height: u16,
    header_bytes: Option<u64>,
    header_lines: Option<usize>,
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events"
    ))
    .join(rel)
}

fn expected() -> BTreeMap<String, Expected> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/readers_expected.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn row(e: &Event) -> [i64; 4] {
    [e.t, i64::from(e.x), i64::from(e.y), i64::from(e.p)]
}

#[test]
fn real_files_match_the_independent_readers() {
    let all = expected();
    assert_eq!(all.len(), 3);
    for (rel, exp) in &all {
        let file = aedat::read_file(&fixture(rel)).unwrap();
        let want_format = if rel.ends_with(".aedat4") {
            Format::Aedat4
        } else {
            Format::Aedat2
        };
        assert_eq!(file.format, want_format, "{rel}");
        assert_eq!(file.events.len(), exp.events, "{rel}: event count");
        assert_eq!(row(&file.events[0]), exp.first, "{rel}: first event");
        assert_eq!(
            row(file.events.last().unwrap()),
            exp.last,
            "{rel}: last event"
        );
        assert_eq!(
            file.events.iter().filter(|e| e.p).count(),
            exp.on,
            "{rel}: ON events"
        );
        assert_eq!(
            checksum(&file.events).to_string(),
            exp.checksum,
            "{rel}: checksum"
        );
        assert_eq!(
            (file.sensor.width, file.sensor.height),
            (exp.width, exp.height),
            "{rel}"
        );
        if let Some(hb) = exp.header_bytes {
            assert_eq!(file.header.header_bytes, hb, "{rel}: header bytes");
            assert_eq!(
                Some(file.header.header_lines),
                exp.header_lines,
                "{rel}: header lines"
            );
            assert_eq!(file.header.version, "2.0");
            assert!(file.header.chip.as_deref().unwrap().contains("DVS128"));
        }
    }
}

#[test]
fn reading_from_memory_equals_reading_the_file() {
    for rel in ["aedat2/alex_walking_again.aedat", "aedat4/sample.aedat4"] {
        let bytes = std::fs::read(fixture(rel)).unwrap();
        let from_file = aedat::read_file(&fixture(rel)).unwrap();
        let from_bytes = aedat::read_bytes(&bytes, &fixture(rel)).unwrap();
        assert_eq!(from_file, from_bytes, "{rel}");
    }
}

#[test]
fn a_reused_buffer_gives_the_same_events_as_a_fresh_read() {
    let a = fixture("aedat2/alex_walking_again.aedat");
    let b = fixture("aedat4/sample.aedat4");
    // A spare full of another file's (more or fewer) events must not leak into
    // the result, in either direction.
    let big = aedat::read_file(&b).unwrap().events;
    let fresh = aedat::read_file(&a).unwrap();
    let reused = aedat::read_file_reusing(&a, big.clone()).unwrap();
    assert_eq!(reused, fresh);
    let tiny = vec![Event::new(7, 1, 2, true); 3];
    assert_eq!(aedat::read_file_reusing(&a, tiny).unwrap(), fresh);
    assert_eq!(
        aedat::read_file_reusing(&b, reused.events).unwrap().events,
        big
    );
}

#[test]
fn header_only_file_gives_its_header_and_an_empty_body_error() {
    let path = fixture("aedat2/header_only_davis346.aedat");
    let (format, facts) = aedat::read_header(&path).unwrap();
    assert_eq!(format, Format::Aedat2);
    assert_eq!(facts.version, "2.0");
    assert_eq!(facts.creation_time_ms, Some(1_695_355_587_880));
    assert!(facts.chip.as_deref().unwrap().contains("Davis346"));
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(facts.header_bytes, size);
    match aedat::read_file(&path) {
        Err(ReadError::EmptyBody { path: p, offset }) => {
            assert_eq!(p, path);
            assert_eq!(offset, size);
        }
        other => panic!("expected EmptyBody, got {other:?}"),
    }
}

#[test]
fn detection_uses_the_header_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("looks_like_v2.aedat");
    std::fs::copy(fixture("aedat4/sample.aedat4"), &renamed).unwrap();
    assert_eq!(aedat::read_file(&renamed).unwrap().format, Format::Aedat4);
    let renamed = dir.path().join("looks_like_v4.aedat4");
    std::fs::copy(fixture("aedat2/neal_walking.aedat"), &renamed).unwrap();
    assert_eq!(aedat::read_file(&renamed).unwrap().format, Format::Aedat2);
}

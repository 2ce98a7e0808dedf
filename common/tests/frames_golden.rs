//! Binning against tonic, element for element: every case of
//! `fixtures/golden/cases.json` (made by `fixtures/make_golden_frames.py`) in
//! all three bin modes, plus the window count against tonic's `ToFrame`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde::Deserialize;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, FrameSpec, bin, window_count};
use spikecv_common::events::npy;

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    dt_ms: u32,
    steps: usize,
    start: usize,
    tonic_windows: usize,
    width: usize,
    height: usize,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/golden"
    ))
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(golden_dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn golden_cases_cover_the_edge_cases() {
    let names: Vec<String> = cases().into_iter().map(|c| c.name).collect();
    for needed in ["short", "edges", "last_partial", "hot", "crop"] {
        assert!(names.iter().any(|n| n == needed), "missing case {needed}");
    }
}

#[test]
fn window_count_matches_tonic() {
    for case in cases() {
        let events =
            npy::read_events(&golden_dir().join(format!("{}_events.npy", case.name))).unwrap();
        assert_eq!(
            window_count(&events, case.dt_ms),
            case.tonic_windows,
            "case {}",
            case.name
        );
    }
}

#[test]
fn frames_match_tonic_in_every_mode() {
    for case in cases() {
        let events =
            npy::read_events(&golden_dir().join(format!("{}_events.npy", case.name))).unwrap();
        for (mode, tag) in [
            (BinMode::Or, "OR"),
            (BinMode::Sum, "SUM"),
            (BinMode::SumNorm, "SUM_NORM"),
        ] {
            let spec = FrameSpec {
                dt_ms: case.dt_ms,
                steps: case.steps,
                mode,
                width: case.width,
                height: case.height,
                downscale: 1,
            };
            let crop = if case.start == 0 {
                Crop::First
            } else {
                Crop::Start(case.start)
            };
            let ours = bin(&events, &spec, crop);
            let (shape, expected) =
                npy::read_f32(&golden_dir().join(format!("{}_{tag}.npy", case.name))).unwrap();
            assert_eq!(shape, spec.shape().to_vec(), "case {} {tag}", case.name);
            assert_eq!(ours.len(), expected.len());
            let mismatches: Vec<usize> = (0..ours.len())
                .filter(|&i| ours[i].to_bits() != expected[i].to_bits())
                .collect();
            assert!(
                mismatches.is_empty(),
                "case {} {tag}: {} of {} values differ, first at {} (ours {}, tonic {})",
                case.name,
                mismatches.len(),
                ours.len(),
                mismatches[0],
                ours[mismatches[0]],
                expected[mismatches[0]]
            );
            assert!(
                expected.iter().any(|&v| v != 0.0),
                "case {} {tag} is all zeros",
                case.name
            );
        }
    }
}

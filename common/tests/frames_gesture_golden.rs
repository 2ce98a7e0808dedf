//! DVS128 Gesture frames against tonic, element for element: the synthetic
//! AEDAT 3.1 recording of `fixtures/golden_gesture/` (written byte by byte by
//! `fixtures/make_golden_gesture.py`) read with the project's reader, cut by
//! its labels (`start ≤ t < end`), binned in all three modes, and compared
//! with tonic's frames of the same samples; once more through a [`Dataset`]
//! opened on a DVS128 Gesture root made of these files.
//!
//! The expected tensors are stored sparse (`[K, 7]` float32: `p, x, y, t, OR,
//! SUM, SUM_NORM` for the cells non-zero in any mode); the test rebuilds them
//! dense and compares every element's bits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::dvs_gesture;
use spikecv_common::dataset::dvs_gesture::kind::DVS_GESTURE;
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::Label;
use spikecv_common::events::Event;
use spikecv_common::events::aedat;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, FrameSpec, bin, window_count};
use spikecv_common::events::npy;

#[derive(Debug, Deserialize)]
struct Golden {
    recording: String,
    sensor: [u16; 2],
    reference: String,
    valid_events: usize,
    rows: Vec<Row>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Row {
    class: usize,
    start_us: i64,
    end_us: i64,
    events: usize,
    on: usize,
    first_t: Option<i64>,
    last_t: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    row: usize,
    dt_ms: u32,
    steps: usize,
    start: usize,
    windows: usize,
    tonic_frames: usize,
    nonzero: usize,
    width: usize,
    height: usize,
}

const MODES: [(BinMode, &str); 3] = [
    (BinMode::Or, "OR"),
    (BinMode::Sum, "SUM"),
    (BinMode::SumNorm, "SUM_NORM"),
];

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/golden_gesture"
    ))
}

fn golden() -> Golden {
    let text = std::fs::read_to_string(dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The samples as the reader and the cut by time give them.
fn samples(g: &Golden) -> (Vec<Label>, Vec<Vec<Event>>) {
    let file = aedat::read_file(&dir().join(format!("{}.aedat", g.recording))).unwrap();
    let labels =
        dvs_gesture::read_labels(&dir().join(format!("{}_labels.csv", g.recording))).unwrap();
    let cut = dvs_gesture::cut(&file.events, &labels);
    (labels, cut)
}

fn spec(case: &Case, mode: BinMode) -> FrameSpec {
    FrameSpec {
        dt_ms: case.dt_ms,
        steps: case.steps,
        mode,
        width: case.width,
        height: case.height,
        downscale: 1,
    }
}

fn crop(case: &Case) -> Crop {
    if case.start == 0 {
        Crop::First
    } else {
        Crop::Start(case.start)
    }
}

/// The dense `[2, X, Y, T]` tensor of mode column `column` (0 OR, 1 SUM,
/// 2 SUM_NORM) of a case's sparse table.
fn expected(case: &Case, column: usize) -> Vec<f32> {
    let (shape, table) = npy::read_f32(&dir().join(format!("{}.npy", case.name))).unwrap();
    assert_eq!(shape.len(), 2, "case {}", case.name);
    assert_eq!(shape[1], 7, "case {}", case.name);
    assert_eq!(shape[0], case.nonzero, "case {}", case.name);
    let (w, h, t) = (case.width, case.height, case.steps);
    let mut dense = vec![0.0f32; 2 * w * h * t];
    for cell in table.chunks_exact(7) {
        let [p, x, y, k] = [cell[0], cell[1], cell[2], cell[3]].map(|v| v as usize);
        assert!(
            p < 2 && x < w && y < h && k < t,
            "case {}: cell {cell:?}",
            case.name
        );
        dense[((p * w + x) * h + y) * t + k] = cell[4 + column];
    }
    dense
}

fn assert_bits_equal(ours: &[f32], expected: &[f32], what: &str) {
    assert_eq!(ours.len(), expected.len(), "{what}: lengths");
    let mismatches: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i].to_bits() != expected[i].to_bits())
        .collect();
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {} values differ, first at {} (ours {}, tonic {})",
        mismatches.len(),
        ours.len(),
        mismatches[0],
        ours[mismatches[0]],
        expected[mismatches[0]]
    );
}

#[test]
fn golden_cases_cover_the_edge_cases() {
    let g = golden();
    assert!(g.reference.contains("tonic"), "{}", g.reference);
    let names: Vec<&str> = g.cases.iter().map(|c| c.name.as_str()).collect();
    for needed in [
        "row0_first",
        "row0_gap",
        "row1_hot",
        "row2_sparse",
        "row3_empty",
    ] {
        assert!(names.contains(&needed), "missing case {needed}");
    }
    // Row 1 starts where row 0 ends; row 3 holds no events.
    assert_eq!(g.rows[0].end_us, g.rows[1].start_us);
    assert_eq!(g.rows[3].events, 0);
    assert!(g.rows[2].events > 0 && g.rows[2].events < 5);
}

#[test]
fn reader_and_cut_give_the_scripts_samples() {
    let g = golden();
    let file = aedat::read_file(&dir().join(format!("{}.aedat", g.recording))).unwrap();
    assert_eq!(file.format, aedat::Format::Aedat3);
    assert_eq!(
        (file.sensor.width, file.sensor.height),
        (g.sensor[0], g.sensor[1])
    );
    // Invalid events, a special-event packet and spare capacity are skipped.
    assert_eq!(file.events.len(), g.valid_events);
    let (labels, cut) = samples(&g);
    assert_eq!(labels.len(), g.rows.len());
    for (i, ((label, sample), row)) in labels.iter().zip(&cut).zip(&g.rows).enumerate() {
        assert_eq!(
            (label.class, label.start_us, label.end_us),
            (row.class, row.start_us, row.end_us),
            "row {i}"
        );
        assert_eq!(sample.len(), row.events, "row {i}");
        assert_eq!(sample.iter().filter(|e| e.p).count(), row.on, "row {i}");
        assert_eq!(sample.first().map(|e| e.t), row.first_t, "row {i}");
        assert_eq!(sample.last().map(|e| e.t), row.last_t, "row {i}");
        assert!(
            sample
                .iter()
                .all(|e| e.t >= label.start_us && e.t < label.end_us),
            "row {i}"
        );
    }
}

#[test]
fn frames_match_tonic_in_every_mode() {
    let g = golden();
    let (_, cut) = samples(&g);
    let mut non_zero = [false; 3];
    for case in &g.cases {
        let events = &cut[case.row];
        assert_eq!(
            window_count(events, case.dt_ms),
            case.windows,
            "case {}",
            case.name
        );
        if !events.is_empty() {
            // tonic gives one all-zero frame for no events; ours counts none.
            assert_eq!(case.windows, case.tonic_frames, "case {}", case.name);
        }
        for (column, (mode, tag)) in MODES.into_iter().enumerate() {
            let spec = spec(case, mode);
            let ours = bin(events, &spec, crop(case));
            let want = expected(case, column);
            assert_eq!(ours.len(), spec.len());
            assert_bits_equal(&ours, &want, &format!("case {} {tag}", case.name));
            non_zero[column] |= want.iter().any(|&v| v != 0.0);
        }
    }
    assert_eq!(non_zero, [true; 3], "some mode is all zeros in every case");
}

/// A DVS128 Gesture root holding the fixture's recording as a training trial.
fn gesture_root(g: &Golden, out: &Path) {
    let folder = out.join(dvs_gesture::FOLDER);
    std::fs::create_dir_all(&folder).unwrap();
    for name in [
        format!("{}.aedat", g.recording),
        format!("{}_labels.csv", g.recording),
    ] {
        std::fs::copy(dir().join(&name), folder.join(&name)).unwrap();
    }
    std::fs::write(
        folder.join(dvs_gesture::MAPPING),
        dvs_gesture::mapping_csv(),
    )
    .unwrap();
    std::fs::write(folder.join(dvs_gesture::TEST_LIST), "").unwrap();
    std::fs::write(
        folder.join(dvs_gesture::TRAIN_LIST),
        format!("{}.aedat\n", g.recording),
    )
    .unwrap();
}

#[test]
fn a_dataset_on_a_gesture_root_gives_the_same_samples_and_frames() {
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    gesture_root(&g, tmp.path());
    let ds = Dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.kind(), DVS_GESTURE);
    let classes: Vec<usize> = g.rows.iter().map(|r| r.class).collect();
    assert_eq!(ds.sample_classes(&g.recording).unwrap(), classes);
    let (_, cut) = samples(&g);
    for (row, sample) in cut.iter().enumerate() {
        assert_eq!(
            &ds.sample_events(&g.recording, row).unwrap(),
            sample,
            "row {row}"
        );
    }
    let case = g.cases.iter().find(|c| c.name == "row0_gap").unwrap();
    let events = ds.sample_events(&g.recording, case.row).unwrap();
    for (column, (mode, tag)) in MODES.into_iter().enumerate() {
        let ours = bin(&events, &spec(case, mode), crop(case));
        assert_bits_equal(
            &ours,
            &expected(case, column),
            &format!("dataset case {} {tag}", case.name),
        );
    }
    // Past the last label row: an error naming the recording and the count.
    let err = ds.sample_events(&g.recording, g.rows.len()).unwrap_err();
    assert!(
        matches!(err, DataError::BadSample { index, samples, .. }
            if index == g.rows.len() && samples == g.rows.len()),
        "{err}"
    );
    assert!(err.to_string().contains(&g.recording), "{err}");
}

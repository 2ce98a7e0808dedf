//! `coordinator data ...` end to end on small synthetic roots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use spikecv_common::dataset::Dataset;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, FrameSpec, bin};
use spikecv_common::events::npy;

use cli_support::*;

#[test]
fn synth_then_inspect_shows_59_recordings_and_1121_samples() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("synthetic");
    ok(&[
        "data",
        "synth",
        "--out",
        s(&root),
        "--seed",
        "1",
        "--size",
        "tiny",
    ]);
    let text = ok(&["data", "inspect", s(&root)]);
    assert!(
        text.contains("recordings:  59 (42 without _indoor)"),
        "{text}"
    );
    assert!(text.contains("samples:     1121"), "{text}");
    assert!(text.contains("problems:    none"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["data", "inspect", s(&root), "--json"])).unwrap();
    assert_eq!(json["recordings"], 59);
    assert_eq!(json["samples"], 1121);
    assert_eq!(json["classes"].as_array().unwrap().len(), 19);
    assert_eq!(json["classes"][0]["class"], "cat");
    assert_eq!(json["classes"][0]["samples"], 59);
}

#[test]
fn slice_frames_render_and_file_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("raw");
    synth_small(&root, 2, 4);

    // inspect a single recording file
    let rec = root.join("recordings/user30_imse.aedat");
    let text = ok(&["data", "inspect", s(&rec)]);
    assert!(text.contains("format:     AEDAT 2.0"), "{text}");
    assert!(text.contains("sensor:     128x128"), "{text}");

    // slice into a new root; it opens as a sliced root with the same samples
    let sliced = dir.path().join("sliced_root");
    ok(&["data", "slice", "--data", s(&root), "--out", s(&sliced)]);
    assert!(sliced.join("sliced/user00_indoor_00.npy").is_file());
    assert!(sliced.join("sliced/user30_imse_18.npy").is_file());
    let raw = Dataset::open(&root).unwrap();
    let cut = Dataset::open(&sliced).unwrap();
    assert_eq!(
        cut.recording_samples("user30_imse").unwrap(),
        raw.recording_samples("user30_imse").unwrap()
    );
    let npy_text = ok(&[
        "data",
        "inspect",
        s(&sliced.join("sliced/user30_imse_03.npy")),
    ]);
    assert!(npy_text.contains("npy"), "{npy_text}");

    // frames: the config's dt, T and bin mode
    let config = dir.path().join("exp.toml");
    std::fs::write(
        &config,
        "[data]\nroot = \"raw\"\n[simulation]\nsteps = 12\ndt_ms = 30\n[training]\nbin_mode = \"SUM\"\n",
    )
    .unwrap();
    let out = dir.path().join("x.npy");
    ok(&[
        "data",
        "frames",
        "--data",
        s(&root),
        "--sample",
        "user30_imse_03",
        "--config",
        s(&config),
        "--out",
        s(&out),
    ]);
    let (shape, values) = npy::read_f32(&out).unwrap();
    assert_eq!(shape, vec![2, 128, 128, 12]);
    let events = raw.sample_events("user30_imse", 3).unwrap();
    assert_eq!(
        values,
        bin(
            &events,
            &FrameSpec::dvs128(30, 12, BinMode::Sum),
            Crop::First
        )
    );
    // The sliced root gives the same tensor.
    let out2 = dir.path().join("y.npy");
    ok(&[
        "data",
        "frames",
        "--data",
        s(&sliced),
        "--sample",
        "user30_imse_03",
        "--config",
        s(&config),
        "--out",
        s(&out2),
    ]);
    assert_eq!(npy::read_f32(&out2).unwrap().1, values);

    // render
    let png = dir.path().join("sample.png");
    ok(&[
        "data",
        "render",
        "--data",
        s(&root),
        "--sample",
        "user00_indoor_05",
        "--out",
        s(&png),
    ]);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn bad_input_exits_non_zero_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.aedat");
    std::fs::write(&garbage, b"not an event file").unwrap();
    let out = coordinator(&["data", "inspect", s(&garbage)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("garbage.aedat") && err.contains("byte offset 0"),
        "{err}"
    );

    let root = dir.path().join("raw");
    ok(&["data", "synth", "--out", s(&root), "--recordings", "1"]);
    let out = coordinator(&[
        "data",
        "render",
        "--data",
        s(&root),
        "--sample",
        "user00_indoor_19",
        "--out",
        s(&dir.path().join("a.png")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad sample name"));
    let out = coordinator(&["data", "synth", "--out", s(&root), "--size", "huge"]);
    assert!(!out.status.success());
}

#[test]
fn frames_writes_a_whole_root_or_a_list_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("raw");
    synth_small(&root, 2, 5);
    let raw = Dataset::open(&root).unwrap();
    let config = dir.path().join("exp.toml");
    std::fs::write(
        &config,
        "[data]\nroot = \"raw\"\n[simulation]\nsteps = 8\ndt_ms = 30\n[training]\nbin_mode = \"SUM_NORM\"\n",
    )
    .unwrap();

    // A whole root: one file per sample, each the sample's network input.
    let all = dir.path().join("all");
    let text = ok(&[
        "data",
        "frames",
        "--data",
        s(&root),
        "--config",
        s(&config),
        "--out",
        s(&all),
        "--threads",
        "2",
    ]);
    assert!(text.contains("wrote 38 samples"), "{text}");
    assert_eq!(std::fs::read_dir(&all).unwrap().count(), 38);
    let spec = FrameSpec::dvs128(30, 8, BinMode::SumNorm);
    for rec in raw.recordings(spikecv_common::dataset::variant::Variant::WHOLE) {
        for (class, events) in raw.recording_samples(&rec).unwrap().iter().enumerate() {
            let (shape, values) =
                npy::read_f32(&all.join(format!("{rec}_{class:02}.npy"))).unwrap();
            assert_eq!(shape, vec![2, 128, 128, 8]);
            assert_eq!(values, bin(events, &spec, Crop::First), "{rec}_{class:02}");
        }
    }

    // A list, with its own T and crop start, into a folder.
    let some = dir.path().join("some");
    let text = ok(&[
        "data",
        "frames",
        "--data",
        s(&root),
        "--config",
        s(&config),
        "--sample",
        "user30_imse_03,user00_indoor_05",
        "--sample",
        "user30_imse_07",
        "--steps",
        "5",
        "--start",
        "2",
        "--out",
        s(&some),
    ]);
    assert!(text.contains("wrote 3 samples"), "{text}");
    let spec = FrameSpec::dvs128(30, 5, BinMode::SumNorm);
    for (rec, class) in [("user30_imse", 3), ("user00_indoor", 5), ("user30_imse", 7)] {
        let (shape, values) = npy::read_f32(&some.join(format!("{rec}_{class:02}.npy"))).unwrap();
        assert_eq!(shape, vec![2, 128, 128, 5]);
        let events = raw.sample_events(rec, class).unwrap();
        assert_eq!(values, bin(&events, &spec, Crop::Start(2)));
    }
    assert_eq!(std::fs::read_dir(&some).unwrap().count(), 3);

    // The reduced variant leaves out the indoor recording.
    let reduced = dir.path().join("reduced");
    let text = ok(&[
        "data",
        "frames",
        "--data",
        s(&root),
        "--config",
        s(&config),
        "--variant",
        "reduced",
        "--out",
        s(&reduced),
    ]);
    assert!(text.contains("wrote 19 samples"), "{text}");
    assert!(reduced.join("user30_imse_18.npy").is_file());
    assert!(!reduced.join("user00_indoor_00.npy").exists());

    // A recording the file list does not name fails, naming it.
    let out = coordinator(&[
        "data",
        "frames",
        "--data",
        s(&root),
        "--config",
        s(&config),
        "--sample",
        "nobody_03",
        "--out",
        s(&dir.path().join("none")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
}

//! The worker's TensorBoard files read back by TensorBoard's own reader:
//! `tbparse` (over TensorBoard's `EventAccumulator`, which checks each
//! record's CRCs) lists every scalar of a short job, and each tag, step and
//! value must equal what `metrics.json` holds for that epoch, with no scalar
//! missing and none extra.
//!
//! Needs `tbparse` and `tensorboard` in the project's venv
//! (`.venv/bin/python -m pip install tbparse==0.0.9 tensorboard==2.21.0`;
//! `.ci/run` installs them), so it is `#[ignore]`d and `scripts/test.sh` runs
//! it where they are installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_worker::train::{NoObserver, run_job_on};
use support::{Coarse, job, synthetic};

/// Reads every scalar under `dir` with tbparse: `(tag, step) -> value`.
fn tbparse_scalars(dir: &Path) -> BTreeMap<(String, u64), f64> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let script = "import json, sys\n\
        from tbparse import SummaryReader\n\
        df = SummaryReader(sys.argv[1], pivot=False).scalars\n\
        rows = [[str(t), int(s), float(v)] for t, s, v in zip(df['tag'], df['step'], df['value'])]\n\
        print(json.dumps(rows))\n";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "tbparse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, u64, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    let mut scalars = BTreeMap::new();
    for (tag, step, value) in rows {
        let again = scalars.insert((tag.clone(), step), value);
        assert!(again.is_none(), "{tag} logged twice at step {step}");
    }
    scalars
}

/// What `metrics.json` says TensorBoard must hold: each epoch's fields under
/// the tags the README names (written out here, not taken from the worker's
/// own table), values as TensorBoard stores them (32-bit floats).
fn expected_scalars(metrics: &Value) -> BTreeMap<(String, u64), f64> {
    const FIELDS: [(&str, &str); 8] = [
        ("train/loss", "train_loss"),
        ("train/accuracy", "train_accuracy"),
        ("val/loss", "val_loss"),
        ("val/accuracy", "val_accuracy"),
        ("test/loss", "test_loss"),
        ("test/accuracy", "test_accuracy"),
        ("perf/epoch_seconds", "epoch_seconds"),
        ("perf/samples_per_second", "samples_per_second"),
    ];
    let as_f32 = |v: &Value| v.as_f64().map(|x| f64::from(x as f32));
    let mut scalars = BTreeMap::new();
    for epoch in metrics["result"]["epochs"].as_array().unwrap() {
        let step = epoch["epoch"].as_u64().unwrap();
        for (tag, field) in FIELDS {
            if let Some(v) = as_f32(&epoch[field]) {
                scalars.insert((tag.to_owned(), step), v);
            }
        }
        for rate in epoch["firing_rates"].as_array().unwrap() {
            let layer = rate["layer"].as_str().unwrap();
            let train = as_f32(&rate["train"]).unwrap();
            scalars.insert((format!("firing_rate/train/{layer}"), step), train);
            if let Some(eval) = as_f32(&rate["eval"]) {
                scalars.insert((format!("firing_rate/eval/{layer}"), step), eval);
            }
        }
    }
    scalars
}

#[test]
#[ignore = "needs tbparse and tensorboard in .venv (scripts/test.sh runs it where installed)"]
fn tensorboard_scalars_equal_metrics_json() {
    let data_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = synthetic(data_dir.path(), 6);
    let recs = data.recordings(spikecv_common::dataset::variant::Variant::WHOLE);
    let split = FoldSplit {
        train: recs[..4].to_vec(),
        val: recs[4..5].to_vec(),
        test: recs[5..].to_vec(),
    };
    let (spec, shape) = job(
        out.path().to_path_buf(),
        ProtocolKind::TrainValTest,
        split,
        3,
        4,
    );
    run_job_on(&spec, &Coarse(&data), &shape, &mut NoObserver).unwrap();

    let metrics: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    let expected = expected_scalars(&metrics);
    let read = tbparse_scalars(&out.path().join("tensorboard"));

    // Three epochs, with validation and firing rates: not a vacuous match.
    assert!(expected.keys().any(|(t, _)| t == "val/accuracy"));
    assert!(
        expected
            .keys()
            .any(|(t, _)| t.starts_with("firing_rate/eval/"))
    );
    assert_eq!(expected.keys().map(|(_, s)| *s).max(), Some(3));
    let missing: Vec<_> = expected.keys().filter(|k| !read.contains_key(k)).collect();
    let extra: Vec<_> = read.keys().filter(|k| !expected.contains_key(k)).collect();
    assert!(missing.is_empty(), "missing from TensorBoard: {missing:?}");
    assert!(
        extra.is_empty(),
        "in TensorBoard, not in metrics.json: {extra:?}"
    );
    for (key, want) in &expected {
        let got = read[key];
        assert!(
            got == *want || (got.is_nan() && want.is_nan()),
            "{} at step {}: TensorBoard {got}, metrics.json {want}",
            key.0,
            key.1
        );
    }
}

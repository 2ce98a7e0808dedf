//! Sweeps on a real coordinator and real CPU workers (tiny synthetic set,
//! 32 × 32, T = 2, one seed, two folds):
//! 1. One worker, a good learning rate against one far too small, median
//!    pruning after a one-epoch warm-up: the small rate is pruned after its
//!    warm-up, the baseline runs to its end, `coordinator report` shows the
//!    saving.
//! 2. Three learning rates without pruning on two workers, one SIGKILLed and
//!    the coordinator SIGKILLed and restarted mid-run: every job still ends
//!    exactly once, and the report's comparisons equal a recomputation from
//!    its own per-job CSV.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use join_support::sweep::*;
use join_support::*;

const LIMIT: Duration = Duration::from_secs(300);
const BASELINE: &str = "lr=0.003";
const TINY: &str = "lr=1e-12";

fn write_sweep(path: &Path, data: &Path, lrs: &str, prune: &str) {
    let text = format!(
        r#"name = "sweep-test"
[data]
root = {:?}
downscale = 4
[protocol]
kind = "train-val-test"
folds = 2
seeds = [0]
variants = ["whole"]
[simulation]
steps = 2
dt_ms = 30
[training]
batch = 16
test_batch = 32
epochs = 4
test_steps = 2
checkpoint_every = 1
[sweep]
"training.lr" = [{lrs}]
{prune}
"#,
        data.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_prunes_the_hopeless_rate_and_survives_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 7);
    let experiment = tmp.path().join("prune.toml");
    write_sweep(
        &experiment,
        &data,
        "0.003, 1e-12",
        "prune = \"median\"\nwarmup_epochs = 1",
    );
    coordinator_bin();

    // 1. One worker, undisturbed.
    let dir = tmp.path().join("one");
    std::fs::create_dir_all(&dir).unwrap();
    let (port, metrics) = (free_port(), free_port());
    let state = dir.join("state.db");
    let _c = start_coordinator(port, &experiment, &state, metrics, &dir.join("c.log"));
    let mut w = start_worker(port, &data, &dir.join("w0"), "w0");
    assert!(w.wait_for(LIMIT).success(), "the worker exits 0");
    let counts = wait_counts(port, Duration::from_secs(10), ended(4)).await;
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0);

    let json: serde_json::Value = serde_json::from_str(&report(&state, "json")).unwrap();
    let jobs = json["jobs"].as_array().unwrap();
    let labels: Vec<String> = json["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(labels, vec![BASELINE, TINY]);
    let status_of = |label: &str| -> Vec<String> {
        let c = labels.iter().position(|l| l == label).unwrap();
        jobs.iter()
            .filter(|j| j["configuration"] == c)
            .map(|j| j["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(status_of(BASELINE), vec!["succeeded", "succeeded"]);
    let tiny = status_of(TINY);
    assert!(
        tiny.iter().any(|s| s == "pruned"),
        "the far too small learning rate is pruned: {tiny:?}"
    );
    for j in jobs.iter().filter(|j| j["status"] == "pruned") {
        let at = j["pruned"]["epoch"].as_u64().unwrap();
        assert!(at >= 2, "pruned inside the warm-up: {j}");
        assert!(
            j["pruned"]["val_accuracy"].as_f64().unwrap() < j["pruned"]["median"].as_f64().unwrap()
        );
    }
    let pruning = &json["sweep"]["pruning"];
    assert!(pruning["epochs_saved"].as_u64().unwrap() >= 1);
    assert!(pruning["saved_seconds"].as_f64().unwrap() > 0.0);
    let md = report(&state, "md");
    assert!(md.contains("Pruning stopped"), "{md}");
    assert!(md.contains("## Configurations compared"), "{md}");

    // 2. Two workers; one killed, then the coordinator killed and restarted.
    let experiment = tmp.path().join("three.toml");
    write_sweep(&experiment, &data, "0.003, 0.001, 1e-12", "");
    let dir = tmp.path().join("chaos");
    std::fs::create_dir_all(&dir).unwrap();
    let (port, metrics) = (free_port(), free_port());
    let state = dir.join("state.db");
    let mut c = start_coordinator(port, &experiment, &state, metrics, &dir.join("c1.log"));
    let works: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("w{i}"))).collect();
    let mut first = start_worker(port, &data, &works[0], "w0");
    let mut second = start_worker(port, &data, &works[1], "w1");
    wait_counts(port, LIMIT, |c| {
        c.get("running").copied().unwrap_or(0) + c.get("succeeded").copied().unwrap_or(0) >= 2
    })
    .await;
    first.kill();
    wait_counts(port, LIMIT, |c| {
        c.get("succeeded").copied().unwrap_or(0) >= 1
    })
    .await;
    c.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _c2 = start_coordinator(port, &experiment, &state, metrics, &dir.join("c2.log"));
    let mut third = start_worker(port, &data, &works[2], "w2");
    for w in [&mut second, &mut third] {
        assert!(w.wait_for(LIMIT).success(), "{} exits 0", w.name);
    }
    let counts = wait_counts(port, Duration::from_secs(10), ended(6)).await;
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0, "{counts:?}");
    assert_eq!(
        counts.get("succeeded").copied(),
        Some(6),
        "nothing pruned: {counts:?}"
    );
    let succeeded = counts.get("succeeded").copied().unwrap_or(0) as usize;
    // A job the killed worker finished on disk but never reported runs again
    // elsewhere: leave its folder out of the once-only check.
    let others: Vec<PathBuf> = works[1..].to_vec();
    let finished = finished_jobs(&others);
    assert!(
        finished.len() <= succeeded,
        "{} results on disk for {succeeded} succeeded jobs",
        finished.len()
    );
    let json: serde_json::Value = serde_json::from_str(&report(&state, "json")).unwrap();
    assert_eq!(json["progress"]["complete"], true);
    assert_eq!(json["jobs"].as_array().unwrap().len(), 6);
    // Each comparison with the baseline, recomputed from the CSV.
    let checked = check_comparisons_against_csv(&json, &report(&state, "csv"));
    let mut labels: Vec<&str> = checked.iter().map(|c| c.name.as_str()).collect();
    labels.sort_unstable();
    assert_eq!(
        labels,
        [
            "whole/train-val-test/lr=0.001",
            "whole/train-val-test/lr=1e-12"
        ],
        "{checked:?}"
    );
    assert!(checked.iter().all(|c| c.pairs == 2), "{checked:?}");
}

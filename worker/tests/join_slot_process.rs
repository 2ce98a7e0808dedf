//! Each slot's training runs in a process of its own (`worker slot-child`),
//! with a real coordinator and a real `worker join` on loopback, on the CPU:
//! 1. Jobs with every mix of `[training] tf32` and `deterministic` in one
//!    worker: each job's `metrics.json` records the switches libtorch had
//!    while it ran, and they are its own config's.
//! 2. A fault injected into one slot's process (an abort, a SIGKILL, a sticky
//!    device error; `SPIKECV_TEST_CHILD_FAULT`, test-only) costs that attempt
//!    only: the worker starts a fresh process for the slot, the job is
//!    retried, the other slot's job is untouched, and every job ends once.
//!
//! Needs the coordinator binary beside the worker binary: `cargo test
//! --workspace` builds both; otherwise `cargo build -p spikecv-coordinator` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::Path;
use std::time::Duration;

use join_support::*;
use spikecv_common::experiment::config::ExperimentConfig;

const LIMIT: Duration = Duration::from_secs(300);

/// 1 seed × 2 folds × 1 variant, train-test, T = 2, 2 epochs, and `extra`.
fn write_small_experiment(path: &Path, data: &Path, extra: &str) {
    let text = format!(
        r#"name = "slot-process"
[data]
root = {:?}
downscale = 4
[protocol]
kind = "train-test"
folds = 2
seeds = [0]
variants = ["whole"]
{TINY_RUN}{extra}"#,
        data.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

/// Every job folder under `work` with a `metrics.json`: (config, metrics).
fn finished(work: &Path) -> Vec<(ExperimentConfig, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(work).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(metrics) = std::fs::read_to_string(dir.join("metrics.json")) else {
            continue;
        };
        let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        out.push((
            ExperimentConfig::from_toml_str(&config).unwrap(),
            serde_json::from_str(&metrics).unwrap(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_runs_with_its_own_tf32_and_determinism() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 3);
    let experiment = tmp.path().join("experiment.toml");
    write_small_experiment(
        &experiment,
        &data,
        "[sweep]\n\"training.tf32\" = [true, false]\n\"training.deterministic\" = [false, true]\n",
    );
    let (port, metrics) = (free_port(), free_port());
    let _c = start_coordinator(
        port,
        &experiment,
        &tmp.path().join("state.db"),
        metrics,
        &tmp.path().join("coordinator.log"),
    );
    let work = tmp.path().join("w0");
    let mut w = start_worker(port, &data, &work, "w0");
    assert!(w.wait_for(LIMIT).success(), "the worker exits 0");
    let counts = wait_counts(port, Duration::from_secs(10), |c| {
        c.get("succeeded").copied() == Some(8)
    })
    .await;
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0);

    let jobs = finished(&work);
    assert_eq!(jobs.len(), 8, "every job wrote its metrics");
    let mut seen = std::collections::BTreeSet::new();
    for (config, m) in &jobs {
        let s = &m["manifest"]["switches"];
        let t = &config.training;
        assert_eq!(s["tf32"], serde_json::json!(t.tf32), "{m}");
        assert_eq!(
            s["deterministic"],
            serde_json::json!(t.deterministic),
            "{m}"
        );
        assert_eq!(s["cudnn_deterministic"], serde_json::json!(t.deterministic));
        seen.insert((t.tf32, t.deterministic));
    }
    assert_eq!(seen.len(), 4, "every mix ran in the one worker");
    let log = std::fs::read_to_string(work.join("worker.log")).unwrap();
    assert!(
        log.contains("other process-wide settings; restarting the slot's process"),
        "a job with other settings got a fresh process"
    );
}

/// Two slots, two jobs; `fault` hits fold 0 after epoch 1 (once): returns
/// the worker's log.
async fn run_with_fault(fault: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 5);
    let experiment = tmp.path().join("experiment.toml");
    write_small_experiment(&experiment, &data, "");
    let (port, metrics) = (free_port(), free_port());
    let _c = start_coordinator(
        port,
        &experiment,
        &tmp.path().join("state.db"),
        metrics,
        &tmp.path().join("coordinator.log"),
    );
    let work = tmp.path().join("w0");
    let spec = format!("{fault}:1:0:0");
    let mut w = start_worker_with(
        port,
        &data,
        &work,
        "w0",
        &["--jobs-per-gpu", "2"],
        &[("SPIKECV_TEST_CHILD_FAULT", &spec)],
    );
    assert!(
        w.wait_for(LIMIT).success(),
        "the worker survives and exits 0"
    );
    let counts = wait_counts(port, Duration::from_secs(10), |c| {
        c.get("succeeded").copied() == Some(2)
    })
    .await;
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0);
    // Each job finished once (collect_results panics on a second copy).
    let results = collect_results(std::slice::from_ref(&work));
    assert_eq!(results.len(), 2);
    let jobs = finished(&work);
    assert_eq!(jobs.len(), 2);
    let marked: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("injected-fault").is_file())
        .collect();
    assert_eq!(marked.len(), 1, "the fault hit one job once");
    let log = std::fs::read_to_string(work.join("worker.log")).unwrap();
    assert_eq!(log.matches("job complete").count(), 2, "{log}");
    assert_eq!(
        log.matches("job failed").count(),
        1,
        "only the faulted attempt failed: {log}"
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_in_a_slot_process_costs_that_attempt_only() {
    let log = run_with_fault("abort").await;
    assert!(
        log.contains("the slot process died (killed by signal 6)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_a_slot_process_costs_that_attempt_only() {
    let log = run_with_fault("sigkill").await;
    assert!(
        log.contains("the slot process died (killed by signal 9)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_device_error_costs_that_attempt_and_its_process() {
    let log = run_with_fault("sticky").await;
    assert!(
        log.contains("a sticky device error ended the slot's process"),
        "{log}"
    );
    assert!(log.contains("illegal memory access"), "{log}");
}

//! The example random search with successive halving
//! (`deploy/local/sweep-random.toml`, run as it is: 4 configurations × 2 folds,
//! 8 epochs, rungs at epochs 2 and 4) on a real coordinator and real CPU workers:
//! one worker SIGKILLed while training, then the coordinator SIGKILLed and
//! restarted on the same state mid-run. Every job still ends exactly once
//! (succeeded or pruned, none failed, none twice), ASHA stops the two small
//! learning rates at a rung, and the report's comparisons with the baseline
//! equal a recomputation from its own per-job CSV.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use join_support::sweep::*;
use join_support::*;

const LIMIT: Duration = Duration::from_secs(300);
/// Configurations × folds of the example.
const JOBS: u64 = 8;

/// The example experiment with `@DATA_DIR@` replaced by `data`, as
/// deploy/local/run.sh does.
fn write_example(path: &Path, data: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/sweep-random.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    assert!(text.contains("@DATA_DIR@"), "{}", example.display());
    let root = data.display().to_string();
    assert!(!root.contains(['"', '\\']), "a data path TOML takes as is");
    std::fs::write(path, text.replace("@DATA_DIR@", &root)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_random_sweep_prunes_and_survives_crashes() {
    let start = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 7);
    let experiment = tmp.path().join("sweep-random.toml");
    write_example(&experiment, &data);
    coordinator_bin();

    let dir = tmp.path().join("chaos");
    std::fs::create_dir_all(&dir).unwrap();
    let (port, metrics) = (free_port(), free_port());
    let state = dir.join("state.db");
    let mut c = start_coordinator(port, &experiment, &state, metrics, &dir.join("c1.log"));
    let works: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("w{i}"))).collect();
    let mut first = start_worker(port, &data, &works[0], "w0");
    let mut second = start_worker(port, &data, &works[1], "w1");
    // Both workers training, then one killed.
    wait_counts(port, LIMIT, |c| {
        c.get("running").copied().unwrap_or(0) + c.get("succeeded").copied().unwrap_or(0) >= 2
    })
    .await;
    first.kill();
    // A job ended (past the rung), then the coordinator killed and restarted.
    let at_kill = wait_counts(port, LIMIT, |c| {
        c.get("succeeded").copied().unwrap_or(0) + c.get("pruned").copied().unwrap_or(0) >= 1
    })
    .await;
    c.kill();
    assert!(!ended(JOBS)(&at_kill), "killed after the end: {at_kill:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _c2 = start_coordinator(port, &experiment, &state, metrics, &dir.join("c2.log"));
    let mut third = start_worker(port, &data, &works[2], "w2");
    for w in [&mut second, &mut third] {
        assert!(w.wait_for(LIMIT).success(), "{} exits 0", w.name);
    }

    // Every job ended once: succeeded or pruned, none failed.
    let counts = wait_counts(port, Duration::from_secs(10), ended(JOBS)).await;
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0, "{counts:?}");
    let succeeded = counts.get("succeeded").copied().unwrap_or(0);
    let pruned = counts.get("pruned").copied().unwrap_or(0);
    assert!(
        pruned >= 1,
        "successive halving stopped nothing: {counts:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&report(&state, "json")).unwrap();
    assert_eq!(json["progress"]["complete"], true);
    let jobs = json["jobs"].as_array().unwrap();
    assert_eq!(jobs.len() as u64, JOBS);
    // On disk: no job finished twice on the surviving workers (a job the
    // killed worker finished but never reported runs again elsewhere, so its
    // folder is left out), and every succeeded job finished somewhere. A
    // pruned job may have finished too: its worker trained on while the
    // coordinator was down, and its rung's report, queued, was judged after
    // the restart; the coordinator then refused the result.
    let finished = finished_jobs(&works[1..]);
    let everywhere: Vec<String> = works
        .iter()
        .flat_map(|w| finished_jobs(std::slice::from_ref(w)))
        .collect();
    let mut discarded = 0;
    for j in jobs {
        let folder = job_folder(j["id"].as_str().unwrap());
        match j["status"].as_str().unwrap() {
            "succeeded" => assert!(everywhere.contains(&folder), "no result on disk: {j}"),
            _ => discarded += usize::from(finished.contains(&folder)),
        }
    }
    let ids: Vec<String> = jobs
        .iter()
        .map(|j| job_folder(j["id"].as_str().unwrap()))
        .collect();
    for f in &finished {
        assert!(ids.contains(f), "a result on disk of no job: {f}");
    }
    let attempts: Vec<u64> = jobs
        .iter()
        .map(|j| j["attempts"].as_u64().unwrap())
        .collect();
    assert!(
        attempts.iter().any(|&a| a >= 2),
        "the killed worker's job ran again: {attempts:?}"
    );
    let labels: Vec<&str> = json["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["lr=0.003", "lr=3.212e-9", "lr=0.0001483", "lr=0.0006949"],
        "the example's draws (seed 8)"
    );
    // Each (configuration, fold) once, each in a final state.
    let mut slots: Vec<(u64, u64)> = jobs
        .iter()
        .map(|j| {
            let status = j["status"].as_str().unwrap();
            assert!(
                status == "succeeded" || status == "pruned",
                "a job that did not end: {j}"
            );
            (
                j["configuration"].as_u64().unwrap(),
                j["fold"].as_u64().unwrap(),
            )
        })
        .collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len() as u64, JOBS, "a job twice in the report");
    // Pruned at a rung, by successive halving, below the cut.
    let status_of = |c: u64| -> Vec<&str> {
        jobs.iter()
            .filter(|j| j["configuration"] == c)
            .map(|j| j["status"].as_str().unwrap())
            .collect()
    };
    for j in jobs.iter().filter(|j| j["status"] == "pruned") {
        let p = &j["pruned"];
        assert_eq!(p["rule"], "asha", "{j}");
        assert!(
            p["epoch"] == 2 || p["epoch"] == 4,
            "pruned off the rungs: {j}"
        );
        assert!(p["val_accuracy"].as_f64().unwrap() < p["median"].as_f64().unwrap());
    }
    // On this data every job's validation accuracy is 1/19 at epoch 2 (no
    // cut), and at epoch 4 the baseline leads (0.21 and 0.32), 0.0006949
    // follows (0.16 and 0.11) and the two small rates stay at 1/19: whatever
    // order the crashes leave, the baseline goes on and both small rates
    // stop (each is below the baseline and below the median of any two of
    // the others). Whether 0.0006949 goes on depends on who reached the rung
    // before it.
    assert_eq!(status_of(0), ["succeeded", "succeeded"], "the baseline");
    assert_eq!(status_of(1), ["pruned", "pruned"], "lr=3.212e-9");
    assert_eq!(status_of(2), ["pruned", "pruned"], "lr=0.0001483");
    let md = report(&state, "md");
    assert!(md.contains("## Configurations compared"), "{md}");

    // Each comparison with the baseline, recomputed from the CSV.
    let checked = check_comparisons_against_csv(&json, &report(&state, "csv"));
    assert_eq!(checked.len(), 3, "{checked:?}");
    eprintln!(
        "random sweep: {JOBS} jobs, {succeeded} succeeded, {pruned} pruned; \
         lr=0.0006949 {:?}; results of pruned jobs on disk {discarded}; attempts {:?}; coordinator killed at {at_kill:?}; comparisons {checked:?}; {:.0} s",
        status_of(3),
        attempts,
        start.elapsed().as_secs_f64()
    );
}

//! The example architecture sweep (`deploy/local/sweep-network.toml`, run as
//! it is: the reference SLANIMALSNet against a smaller block list, 2 folds,
//! 10 epochs, 32 × 32 input) on a real coordinator and real CPU workers, one
//! worker SIGKILLed while training (issue 24, "a sweep of two networks").
//! Every job still ends exactly once, the report's fold-paired comparison of
//! the two networks equals a recomputation from its own per-job CSV, and the
//! report names both networks by their compact names with parameter counts
//! and FLOPs per sample equal to ones counted by hand here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use join_support::sweep::*;
use join_support::*;

const LIMIT: Duration = Duration::from_secs(180);
/// Networks × folds of the example.
const JOBS: u64 = 4;
/// `simulation.steps` and `training.test_steps` of the example.
const STEPS: u64 = 2;

/// The example experiment with `@DATA_DIR@` replaced by `data`, as
/// deploy/local/run.sh does.
fn write_example(path: &Path, data: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/sweep-network.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    assert!(text.contains("@DATA_DIR@"), "{}", example.display());
    let root = data.display().to_string();
    assert!(!root.contains(['"', '\\']), "a data path TOML takes as is");
    std::fs::write(path, text.replace("@DATA_DIR@", &root)).unwrap();
}

/// A conv layer on a square input: (parameters, multiply-accumulates per
/// step, output side) for `cin → cout`, kernel `k`, stride 1, no padding.
fn conv(side: u64, cin: u64, cout: u64, k: u64) -> (u64, u64, u64) {
    let out = side - k + 1;
    (
        cout * cin * k * k + cout,
        out * out * cout * cin * k * k,
        out,
    )
}

/// A linear layer: (parameters, multiply-accumulates per step).
fn linear(fin: u64, fout: u64) -> (u64, u64) {
    (fin * fout + fout, fin * fout)
}

/// (compact name, parameters, FLOPs per sample) of the example's two networks
/// on its 32 × 32 input, counted by hand: conv → pool 2 (floor) → conv → pool
/// 2 → flatten → linear → linear 19.
fn networks_by_hand() -> [(&'static str, u64, u64); 2] {
    let count = |c1: u64, c2: u64, hidden: u64| {
        let a = conv(32, 2, c1, 3); // 30 × 30
        let b = conv(a.2 / 2, c1, c2, 3); // 15 → 13 × 13
        let flat = c2 * (b.2 / 2) * (b.2 / 2); // 6 × 6
        let f1 = linear(flat, hidden);
        let f2 = linear(hidden, 19);
        (
            a.0 + b.0 + f1.0 + f2.0,
            2 * (a.1 + b.1 + f1.1 + f2.1) * STEPS,
        )
    };
    let (rp, rf) = count(20, 50, 200);
    let (sp, sf) = count(8, 16, 64);
    [
        ("c20k3-p2a-c50k3-p2a-f200-f19", rp, rf),
        ("c8k3-p2m-c16k3-p2a-f64-f19", sp, sf),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_network_sweep_compares_two_networks_through_a_crash() {
    let start = Instant::now();
    let hand = networks_by_hand();
    assert_eq!((hand[0].1, hand[1].1), (373_449, 39_483));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 7);
    let experiment = tmp.path().join("sweep-network.toml");
    write_example(&experiment, &data);
    coordinator_bin();

    let dir = tmp.path().join("chaos");
    std::fs::create_dir_all(&dir).unwrap();
    let (port, metrics) = (free_port(), free_port());
    let state = dir.join("state.db");
    let _c = start_coordinator(port, &experiment, &state, metrics, &dir.join("c.log"));
    let works: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("w{i}"))).collect();
    let mut first = start_worker(port, &data, &works[0], "w0");
    let mut second = start_worker(port, &data, &works[1], "w1");
    // Both workers training, then one killed; a third joins.
    let at_kill = wait_counts(port, LIMIT, |c| c.get("running").copied().unwrap_or(0) >= 2).await;
    first.kill();
    let mut third = start_worker(port, &data, &works[2], "w2");
    for w in [&mut second, &mut third] {
        assert!(w.wait_for(LIMIT).success(), "{} exits 0", w.name);
    }

    // Every job ended once, succeeded (no pruner here).
    let counts = wait_counts(port, Duration::from_secs(10), ended(JOBS)).await;
    assert_eq!(counts.get("succeeded").copied(), Some(JOBS), "{counts:?}");
    let json: serde_json::Value = serde_json::from_str(&report(&state, "json")).unwrap();
    assert_eq!(json["progress"]["complete"], true);
    let jobs = json["jobs"].as_array().unwrap();
    assert_eq!(jobs.len() as u64, JOBS);
    // On disk: no job finished twice on the surviving workers, and every job
    // finished somewhere (a job the killed worker finished but never
    // reported runs again elsewhere).
    let finished = finished_jobs(&works[1..]);
    let everywhere: Vec<String> = works
        .iter()
        .flat_map(|w| finished_jobs(std::slice::from_ref(w)))
        .collect();
    let ids: Vec<String> = jobs
        .iter()
        .map(|j| job_folder(j["id"].as_str().unwrap()))
        .collect();
    for id in &ids {
        assert!(everywhere.contains(id), "no result on disk: {id}");
    }
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
    // Each (configuration, fold) once.
    let mut slots: Vec<(u64, u64)> = jobs
        .iter()
        .map(|j| {
            assert_eq!(j["status"], "succeeded", "{j}");
            (
                j["configuration"].as_u64().unwrap(),
                j["fold"].as_u64().unwrap(),
            )
        })
        .collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len() as u64, JOBS, "a job twice in the report");

    // The two networks, named and counted as by hand.
    let configurations = json["configurations"].as_array().unwrap();
    let labels: Vec<&str> = configurations
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["network=reference", "network=c8k3-p2m-c16k3-p2a-f64-f19"]
    );
    for (c, (name, parameters, flops)) in configurations.iter().zip(hand) {
        let n = &c["network"];
        assert_eq!(n["name"], name, "{c}");
        assert_eq!(n["parameters"], parameters, "{c}");
        assert_eq!(n["flops_per_sample"], flops, "{c}");
        assert_eq!(n["test_flops_per_sample"], flops, "T = test T = {STEPS}");
    }
    assert_eq!(configurations[0]["network"]["reference"], true);
    let md = report(&state, "md");
    assert!(md.contains("## Configurations compared"), "{md}");
    assert!(
        md.contains("- Networks: 2 different ones across the configurations"),
        "{md}"
    );
    assert!(
        md.contains("(baseline) | `c20k3-p2a-c50k3-p2a-f200-f19` | 373,449 |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| network=c8k3-p2m-c16k3-p2a-f64-f19 | `c8k3-p2m-c16k3-p2a-f64-f19` | 39,483 |"
        ),
        "{md}"
    );

    // The fold-paired comparison of the two networks, recomputed from the CSV.
    let csv = report(&state, "csv");
    for row in csv_rows(&csv) {
        let c: usize = if row["configuration"] == "network=reference" {
            0
        } else {
            1
        };
        assert_eq!(row["network"], hand[c].0, "{row:?}");
        assert_eq!(row["parameters"], hand[c].1.to_string(), "{row:?}");
    }
    let checked = check_comparisons_against_csv(&json, &csv);
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert_eq!(checked[0].pairs, 2, "{checked:?}");
    let accuracy = |c: usize| -> Vec<f64> {
        jobs.iter()
            .filter(|j| j["configuration"] == c)
            .map(|j| j["test_accuracy"].as_f64().unwrap())
            .collect()
    };
    eprintln!(
        "network sweep: {JOBS} jobs; reference {:?} ({} parameters, {} FLOPs/sample), \
         {} {:?} ({} parameters, {} FLOPs/sample); Δ {:?} pp; attempts {attempts:?}; \
         worker killed at {at_kill:?}; {:.0} s",
        accuracy(0),
        hand[0].1,
        hand[0].2,
        hand[1].0,
        accuracy(1),
        hand[1].1,
        hand[1].2,
        checked[0].mean_difference_pp,
        start.elapsed().as_secs_f64()
    );
}

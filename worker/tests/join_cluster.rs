//! A real coordinator and three real workers on loopback, training a tiny
//! experiment (2 seeds × 4 folds × 2 variants, T = 2, 2 epochs) on the CPU:
//! 1. undisturbed: every job finishes exactly once;
//! 2. a worker is SIGKILLed mid-job after its first checkpoint reached the
//!    coordinator: the job resumes from that checkpoint on another worker and
//!    every result (metrics and final weights) is bit-identical to run 1;
//! 3. the coordinator is SIGKILLed mid-run and restarted on the same state:
//!    the workers carry on by themselves, and again every result matches run 1.
//!
//! Also: a worker whose data set differs is refused and exits non-zero.
//!
//! The coordinator binary must sit beside the worker binary: `cargo test
//! --workspace` builds both; otherwise `cargo build -p spikecv-coordinator` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use join_support::*;

const LIMIT: Duration = Duration::from_secs(300);
const JOBS: u64 = 16;

fn all_succeeded(c: &std::collections::BTreeMap<String, u64>) -> bool {
    c.get("succeeded").copied() == Some(JOBS)
}

struct Run {
    dir: PathBuf,
    port: u16,
    metrics: u16,
}

impl Run {
    fn new(root: &Path, name: &str) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            dir,
            port: free_port(),
            metrics: free_port(),
        }
    }

    fn coordinator(&self, experiment: &Path, log: &str) -> Proc {
        start_coordinator(
            self.port,
            experiment,
            &self.dir.join("state.db"),
            self.metrics,
            &self.dir.join(log),
        )
    }

    fn work(&self, i: usize) -> PathBuf {
        self.dir.join(format!("w{i}"))
    }

    fn worker(&self, data: &Path, i: usize) -> Proc {
        start_worker(self.port, data, &self.work(i), &format!("w{i}"))
    }

    fn works(&self) -> Vec<PathBuf> {
        (0..3).map(|i| self.work(i)).collect()
    }
}

fn assert_same(baseline: &Results, other: &Results, what: &str) {
    assert_eq!(baseline.len(), JOBS as usize);
    assert_eq!(other.len(), JOBS as usize, "{what}: jobs with results");
    for (key, (metrics, weights)) in baseline {
        let (m, w) = &other[key];
        assert_eq!(
            m, metrics,
            "{what}: metrics of job {key:?} differ from the undisturbed run"
        );
        assert!(
            w == weights,
            "{what}: final weights of job {key:?} differ from the undisturbed run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_finish_every_job_once_and_survive_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 7);
    let experiment = tmp.path().join("experiment.toml");
    write_experiment(&experiment, &data);
    coordinator_bin();

    // 1. Undisturbed.
    let run1 = Run::new(tmp.path(), "undisturbed");
    let _c1 = run1.coordinator(&experiment, "coordinator.log");
    // A worker with another data set is refused for good.
    let other = tmp.path().join("other-data");
    make_data(&other, 8);
    let mut stranger = start_worker(run1.port, &other, &tmp.path().join("stranger"), "stranger");
    assert_eq!(
        stranger.wait_for(Duration::from_secs(60)).code(),
        Some(3),
        "a refusal exits 3, which service managers do not restart"
    );
    let log = std::fs::read_to_string(tmp.path().join("stranger/worker.log")).unwrap();
    assert!(
        log.contains("fingerprint"),
        "the refusal names the fingerprints: {log}"
    );

    let mut workers: Vec<Proc> = (0..3).map(|i| run1.worker(&data, i)).collect();
    for w in &mut workers {
        assert!(
            w.wait_for(LIMIT).success(),
            "{} exits 0 when the work is done",
            w.name
        );
    }
    let counts = wait_counts(run1.port, Duration::from_secs(10), all_succeeded).await;
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0);
    let baseline = collect_results(&run1.works());
    assert_eq!(
        baseline.len(),
        JOBS as usize,
        "every job finished exactly once"
    );
    // A finished job keeps its weights and metrics, not its resume checkpoint;
    // the coordinator's copies are gone too.
    for w in run1.works() {
        for job in std::fs::read_dir(&w).unwrap() {
            let ckpt = job.unwrap().path().join("checkpoint.safetensors");
            assert!(!ckpt.exists(), "{} left behind", ckpt.display());
        }
    }
    // The coordinator keeps them in `<state file name>.checkpoints/`.
    let coordinator_ckpts = std::fs::read_dir(run1.dir.join("state.db.checkpoints"))
        .unwrap()
        .count();
    assert_eq!(coordinator_ckpts, 0, "coordinator checkpoint files left");

    // 2. A worker killed mid-job; its job resumes elsewhere from its checkpoint.
    let run2 = Run::new(tmp.path(), "worker-killed");
    let _c2 = run2.coordinator(&experiment, "coordinator.log");
    let mut first = run2.worker(&data, 0);
    let start = std::time::Instant::now();
    loop {
        let uploaded = metrics_text(run2.metrics)
            .and_then(|t| metric(&t, "spikecv_checkpoint_bytes_in_total"))
            .unwrap_or(0.0);
        if uploaded > 0.0 {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "no checkpoint reached the coordinator"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill();
    let mut rest: Vec<Proc> = (1..3).map(|i| run2.worker(&data, i)).collect();
    for w in &mut rest {
        assert!(w.wait_for(LIMIT).success(), "{} exits 0", w.name);
    }
    wait_counts(run2.port, Duration::from_secs(10), all_succeeded).await;
    let resumed = (1..3).any(|i| {
        std::fs::read_to_string(run2.work(i).join("worker.log"))
            .unwrap()
            .contains("checkpoint downloaded")
    });
    assert!(
        resumed,
        "the killed worker's job resumed from its checkpoint"
    );
    // The kill can land after a job of the killed worker wrote its results but
    // before the coordinator had them: that job runs again, identically.
    let after_kill = collect_results_after_kill(&run2.works(), Some(&run2.work(0)));
    assert_same(&baseline, &after_kill, "worker killed");

    // 3. The coordinator killed mid-run and restarted on the same state.
    let run3 = Run::new(tmp.path(), "coordinator-killed");
    let mut c3 = run3.coordinator(&experiment, "coordinator-1.log");
    let mut workers: Vec<Proc> = (0..3).map(|i| run3.worker(&data, i)).collect();
    wait_counts(run3.port, LIMIT, |c| {
        c.get("succeeded").copied().unwrap_or(0) >= 3
    })
    .await;
    c3.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _c3b = run3.coordinator(&experiment, "coordinator-2.log");
    for w in &mut workers {
        assert!(
            w.wait_for(LIMIT).success(),
            "{} exits 0 after the restart",
            w.name
        );
    }
    let counts = wait_counts(run3.port, Duration::from_secs(10), all_succeeded).await;
    assert_eq!(counts.get("failed").copied().unwrap_or(0), 0);
    assert_same(
        &baseline,
        &collect_results(&run3.works()),
        "coordinator restarted",
    );
}

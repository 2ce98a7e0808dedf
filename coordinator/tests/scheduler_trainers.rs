//! Training scripts in the scheduler (docs/trainers.md), without a network:
//! a job of trainer `X` goes only to a worker that registered `X`, native
//! jobs go to every worker, and jobs no live worker can run are reported as
//! waiting for their trainer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use sched_support::{registration, scheduler, submission_over};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::trainer::TrainerInfo;
use spikecv_coordinator::scheduler::{ManualClock, WorkerRegistration};

const BASE: &str =
    "[data]\nroot = \"d\"\n[protocol]\nseeds = [0]\nvariants = [\"whole\"]\nfolds = 2\n";

fn with_trainer(name: &str, reg: WorkerRegistration) -> WorkerRegistration {
    WorkerRegistration {
        trainers: vec![TrainerInfo {
            name: name.to_owned(),
            script_sha256: "ab".repeat(32),
            deterministic: false,
        }],
        ..reg
    }
}

fn slots(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("cuda:{i}")).collect()
}

#[test]
fn a_script_job_waits_for_a_worker_that_has_its_trainer() {
    let clock = ManualClock::new(1_000);
    let mut s = scheduler(&clock);
    let text = format!("{BASE}[trainer]\nname = \"stbp-pytorch\"\n");
    s.submit(&submission_over(&text, 8, None, &["a", "b"]))
        .unwrap();

    let plain = s.register(&registration("plain", 2)).unwrap();
    assert!(
        s.lease(&plain.id, &slots(2))
            .unwrap()
            .assignments
            .is_empty()
    );
    let status = s.status().unwrap();
    assert_eq!(
        status.waiting_for_trainers,
        vec![("stbp-pytorch".to_owned(), 2)]
    );

    let other = s
        .register(&with_trainer("another", registration("other", 1)))
        .unwrap();
    assert!(
        s.lease(&other.id, &slots(1))
            .unwrap()
            .assignments
            .is_empty()
    );

    let able = s
        .register(&with_trainer("stbp-pytorch", registration("able", 2)))
        .unwrap();
    assert!(s.status().unwrap().waiting_for_trainers.is_empty());
    let lease = s.lease(&able.id, &slots(2)).unwrap();
    assert_eq!(lease.assignments.len(), 2);
    for a in &lease.assignments {
        let config = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        assert_eq!(
            config.trainer.map(|t| t.name).as_deref(),
            Some("stbp-pytorch")
        );
    }
}

#[test]
fn a_sweep_over_trainers_gives_native_jobs_to_every_worker() {
    let clock = ManualClock::new(1_000);
    let mut s = scheduler(&clock);
    let text = format!(
        "{BASE}[trainer]\nframes = true\n[trainer.params]\nhidden = 8\n[sweep]\n\"trainer.name\" = [\"native\", \"py\"]\n"
    );
    s.submit(&submission_over(&text, 8, None, &["a", "b"]))
        .unwrap();

    let plain = s.register(&registration("plain", 4)).unwrap();
    let lease = s.lease(&plain.id, &slots(4)).unwrap();
    // Two folds of the native configuration; the script's two wait.
    assert_eq!(lease.assignments.len(), 2);
    for a in &lease.assignments {
        let config = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        assert!(config.trainer.is_none(), "{}", a.config_toml);
    }
    assert_eq!(
        s.status().unwrap().waiting_for_trainers,
        vec![("py".to_owned(), 2)]
    );

    let able = s
        .register(&with_trainer("py", registration("able", 4)))
        .unwrap();
    let lease = s.lease(&able.id, &slots(4)).unwrap();
    assert_eq!(lease.assignments.len(), 2);
    for a in &lease.assignments {
        let config = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        let trainer = config.trainer.unwrap();
        assert_eq!(trainer.name, "py");
        assert!(trainer.frames);
        assert_eq!(
            trainer.params.get("hidden").and_then(|v| v.as_integer()),
            Some(8)
        );
    }
}

#[test]
fn a_lost_worker_does_not_count_as_having_the_trainer() {
    let clock = ManualClock::new(1_000);
    let mut s = scheduler(&clock);
    let able = s
        .register(&with_trainer("py", registration("able", 1)))
        .unwrap();
    let text = format!("{BASE}[trainer]\nname = \"py\"\n");
    s.submit(&submission_over(&text, 8, None, &["a", "b"]))
        .unwrap();
    assert!(s.status().unwrap().waiting_for_trainers.is_empty());
    // Silent past every lease and liveness deadline: the worker is lost.
    clock.advance_ms(24 * 3_600_000);
    s.expire_leases().unwrap();
    assert_eq!(
        s.status().unwrap().waiting_for_trainers,
        vec![("py".to_owned(), 2)],
        "{:?}",
        s.status().unwrap().workers
    );
    let _ = able;
}

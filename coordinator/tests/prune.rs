//! Median pruning in the scheduler: a sweep's losing configuration is stopped
//! on validation accuracy after its warm-up, the worker hears it, the others
//! run on; test accuracy never decides. Plain Rust, no network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use sched_support::{scheduler, submission_over, sweep_epoch as epoch};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_coordinator::scheduler::{
    Assignment, FailureClass, ManualClock, Progress, Scheduler, SlotInfo, Submission, WorkerId,
    WorkerRegistration,
};

const T0: i64 = 1_700_000_000_000;

/// Two learning rates (the first the baseline), one seed, two folds:
/// four jobs, train-val-test.
fn config(prune: &str) -> ExperimentConfig {
    ExperimentConfig::from_toml_str(&format!(
        "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [0]\n\
         variants = [\"whole\"]\n[training]\nepochs = 6\n\
         [sweep]\n\"training.lr\" = [0.001, 0.0000001]\n{prune}"
    ))
    .unwrap()
}

fn submission(config: ExperimentConfig) -> Submission {
    submission_over(&config.to_toml_string(), 8, None, &["cat", "dog"])
}

fn worker(s: &mut Scheduler, slots: usize) -> WorkerId {
    s.register_worker(&WorkerRegistration {
        name: "w".into(),
        host: "node1".into(),
        slots: (0..slots)
            .map(|_| SlotInfo {
                device: "cpu".into(),
                device_name: "cpu".into(),
                memory_bytes: 1 << 30,
                manifest: None,
            })
            .collect(),
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    })
    .unwrap()
}

fn status(s: &Scheduler, job: &JobId) -> JobStatus {
    s.store().job(job).unwrap().unwrap().status
}

/// Submits, leases all four jobs; returns (baseline fold 0, small-lr fold 0,
/// baseline fold 1, small-lr fold 1) assignments.
fn start(s: &mut Scheduler, prune: &str) -> (WorkerId, Vec<Assignment>) {
    let sub = submission(config(prune));
    s.submit(&sub).unwrap();
    let w = worker(s, 4);
    let lease = s.lease(&w, &vec!["cpu".to_owned(); 4]).unwrap();
    assert_eq!(lease.assignments.len(), 4);
    let mut by_plan = Vec::new();
    for (configuration, fold) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let planned = sub
            .jobs
            .iter()
            .find(|j| j.configuration == configuration && j.fold == fold)
            .unwrap();
        let a = lease
            .assignments
            .iter()
            .find(|a| a.job == planned.id)
            .unwrap();
        by_plan.push(a.clone());
    }
    (w, by_plan)
}

#[test]
fn the_losing_configuration_is_pruned_after_its_warmup_and_the_baseline_runs_on() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (w, a) = start(&mut s, "prune = \"median\"\nwarmup_epochs = 2\n");
    let (base, small) = (&a[0], &a[1]);
    for e in 1..=2 {
        assert!(!s.record_epoch(base.attempt, &epoch(e, 0.5, 0.5)).unwrap());
        // Inside the warm-up a far worse job is not pruned.
        assert!(
            !s.record_epoch(small.attempt, &epoch(e, 0.05, 0.05))
                .unwrap()
        );
    }
    assert!(!s.record_epoch(base.attempt, &epoch(3, 0.6, 0.6)).unwrap());
    assert!(
        s.record_epoch(small.attempt, &epoch(3, 0.1, 0.1)).unwrap(),
        "the report's answer tells the worker to stop"
    );
    assert_eq!(status(&s, &small.job), JobStatus::Pruned);
    // The worker's heartbeat lists the attempt to cancel; its later reports are fenced.
    let beat = s
        .heartbeat(
            &w,
            &[Progress {
                attempt: small.attempt,
                epoch: 3,
                of: 6,
            }],
        )
        .unwrap();
    assert_eq!(beat.cancel, vec![small.attempt]);
    assert!(s.record_epoch(small.attempt, &epoch(4, 0.1, 0.1)).is_err());
    // The baseline goes on to its end.
    for e in 4..=6 {
        assert!(!s.record_epoch(base.attempt, &epoch(e, 0.7, 0.7)).unwrap());
    }
    assert_eq!(status(&s, &base.job), JobStatus::Running);
    // The reason is stored with the job.
    let reason: String = s
        .store()
        .conn()
        .query_row(
            "SELECT pruned_json FROM jobs WHERE id = ?1",
            [small.job.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&reason).unwrap();
    assert_eq!(v["epoch"], 3);
    assert_eq!(v["median"], 0.6);
    // Other folds are their own groups: fold 1 was never compared.
    assert_eq!(status(&s, &a[3].job), JobStatus::Leased);
}

#[test]
fn a_job_ahead_of_its_group_is_pruned_when_the_others_catch_up() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, "prune = \"median\"\nwarmup_epochs = 1\n");
    let (base, small) = (&a[0], &a[1]);
    // The small-lr job runs ahead: nothing to compare with yet.
    for e in 1..=3 {
        assert!(!s.record_epoch(small.attempt, &epoch(e, 0.1, 0.9)).unwrap());
    }
    assert_eq!(status(&s, &small.job), JobStatus::Running);
    assert!(!s.record_epoch(base.attempt, &epoch(1, 0.5, 0.1)).unwrap());
    assert_eq!(
        status(&s, &small.job),
        JobStatus::Running,
        "epoch 1 is warm-up"
    );
    // The baseline's epoch 2 makes epoch 2 comparable: the job ahead loses.
    assert!(!s.record_epoch(base.attempt, &epoch(2, 0.5, 0.1)).unwrap());
    assert_eq!(status(&s, &small.job), JobStatus::Pruned);
    assert_eq!(status(&s, &base.job), JobStatus::Running);
}

#[test]
fn a_job_at_its_last_epoch_is_never_pruned() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, "prune = \"median\"\nwarmup_epochs = 1\n");
    // The small-lr job runs ahead to its last epoch (6) with nothing to
    // compare; the baseline then catches up, far better at every epoch.
    // (Had it stopped at epoch 5, it would be pruned: see the next test file
    // case `a_job_ahead_of_its_group_is_pruned_when_the_others_catch_up`.)
    for e in 1..=6 {
        assert!(!s.record_epoch(a[1].attempt, &epoch(e, 0.05, 0.05)).unwrap());
    }
    for e in 1..=5 {
        assert!(!s.record_epoch(a[0].attempt, &epoch(e, 0.9, 0.9)).unwrap());
    }
    assert_eq!(
        status(&s, &a[1].job),
        JobStatus::Running,
        "it trained every epoch: nothing to save"
    );
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, "prune = \"median\"\nwarmup_epochs = 1\n");
    for e in 1..=6 {
        assert!(!s.record_epoch(a[0].attempt, &epoch(e, 0.9, 0.9)).unwrap());
    }
    // Level with the baseline until the last epoch, then far behind: kept.
    for e in 1..=5 {
        assert!(!s.record_epoch(a[1].attempt, &epoch(e, 0.9, 0.9)).unwrap());
    }
    assert!(!s.record_epoch(a[1].attempt, &epoch(6, 0.01, 0.01)).unwrap());
    assert_eq!(status(&s, &a[1].job), JobStatus::Running);
}

#[test]
fn test_accuracy_never_prunes_and_without_prune_nothing_is_pruned() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, "prune = \"median\"\nwarmup_epochs = 1\n");
    // Equal validation accuracy, far worse test accuracy: not pruned.
    for e in 1..=4 {
        assert!(!s.record_epoch(a[0].attempt, &epoch(e, 0.5, 0.9)).unwrap());
        assert!(!s.record_epoch(a[1].attempt, &epoch(e, 0.5, 0.01)).unwrap());
    }
    assert_eq!(status(&s, &a[1].job), JobStatus::Running);

    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, "");
    for e in 1..=4 {
        assert!(!s.record_epoch(a[0].attempt, &epoch(e, 0.9, 0.9)).unwrap());
        assert!(!s.record_epoch(a[1].attempt, &epoch(e, 0.01, 0.01)).unwrap());
    }
    assert_eq!(status(&s, &a[1].job), JobStatus::Running);
}

#[test]
fn a_pruned_job_stays_pruned_on_resubmit_and_runs_again_without_pruning() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, "prune = \"median\"\nwarmup_epochs = 1\n");
    for e in 1..=2 {
        s.record_epoch(a[0].attempt, &epoch(e, 0.8, 0.8)).unwrap();
        s.record_epoch(a[1].attempt, &epoch(e, 0.1, 0.1)).unwrap();
    }
    assert_eq!(status(&s, &a[1].job), JobStatus::Pruned);
    let again = s
        .submit(&submission(config(
            "prune = \"median\"\nwarmup_epochs = 1\n",
        )))
        .unwrap();
    assert_eq!(again.jobs_requeued, 0);
    assert_eq!(status(&s, &a[1].job), JobStatus::Pruned);
    // The same configurations without pruning: the pruned job runs again.
    let without = s.submit(&submission(config(""))).unwrap();
    assert_eq!(without.jobs_requeued, 1);
    assert_eq!(status(&s, &a[1].job), JobStatus::Pending);
    let counts = s.status().unwrap().counts;
    assert_eq!(counts.pruned, 0);
}

/// The attempts `prune_evidence` names for `job`.
fn evidence(s: &Scheduler, job: &JobId) -> Vec<u64> {
    let conn = s.store().conn();
    let mut stmt = conn
        .prepare("SELECT attempt FROM prune_evidence WHERE job = ?1 ORDER BY attempt")
        .unwrap();
    stmt.query_map([job.as_str()], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|a| a.unwrap() as u64)
        .collect()
}

const MEDIAN: &str = "prune = \"median\"\nwarmup_epochs = 1\n";

#[test]
fn a_failed_attempts_metrics_decide_nothing_and_its_decisions_are_undone() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, MEDIAN);
    let (liar, honest) = (&a[0], &a[1]);
    for e in 1..=2 {
        s.record_epoch(liar.attempt, &epoch(e, 1.0, 1.0)).unwrap();
    }
    s.record_epoch(honest.attempt, &epoch(1, 0.5, 0.5)).unwrap();
    assert!(s.record_epoch(honest.attempt, &epoch(2, 0.5, 0.5)).unwrap());
    assert_eq!(status(&s, &honest.job), JobStatus::Pruned);
    // The decision names the attempts whose metrics made it: the liar's
    // (the median) and the pruned job's own.
    assert_eq!(
        evidence(&s, &honest.job),
        vec![liar.attempt.0, honest.attempt.0]
    );

    s.fail(liar.attempt, "gone", FailureClass::Transient)
        .unwrap();
    assert_eq!(status(&s, &honest.job), JobStatus::Pending);
    assert!(evidence(&s, &honest.job).is_empty());

    // Leased again, the honest job reports the same figures: the failed
    // attempt's epochs are left out, so nothing prunes it.
    let w = worker(&mut s, 2);
    let again = s.lease(&w, &["cpu".to_owned(), "cpu".to_owned()]).unwrap();
    let retried = again
        .assignments
        .iter()
        .find(|x| x.job == honest.job)
        .unwrap();
    for e in 1..=3 {
        assert!(
            !s.record_epoch(retried.attempt, &epoch(e, 0.5, 0.5))
                .unwrap()
        );
    }
    assert_eq!(status(&s, &honest.job), JobStatus::Running);
}

#[test]
fn a_lost_lease_undoes_its_decisions_and_a_released_attempt_counts_only_when_resumed() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (w, a) = start(&mut s, MEDIAN);
    let (liar, honest, other_base, other_small) = (&a[0], &a[1], &a[2], &a[3]);
    // Released without a checkpoint: nobody resumes it, its epochs count for nothing.
    for e in 1..=2 {
        s.record_epoch(liar.attempt, &epoch(e, 1.0, 1.0)).unwrap();
    }
    s.release(liar.attempt).unwrap();
    s.record_epoch(honest.attempt, &epoch(1, 0.5, 0.5)).unwrap();
    assert!(!s.record_epoch(honest.attempt, &epoch(2, 0.5, 0.5)).unwrap());
    assert_eq!(status(&s, &honest.job), JobStatus::Running);

    // The other fold: released with a checkpoint and resumed, its epochs count.
    for e in 1..=2 {
        s.record_epoch(other_base.attempt, &epoch(e, 0.9, 0.9))
            .unwrap();
    }
    s.put_checkpoint(other_base.attempt, 2, b"weights").unwrap();
    s.release(other_base.attempt).unwrap();
    s.record_epoch(other_small.attempt, &epoch(1, 0.5, 0.5))
        .unwrap();
    assert!(
        !s.record_epoch(other_small.attempt, &epoch(2, 0.5, 0.5))
            .unwrap()
    );
    let resumed = s.lease(&w, &["cpu".to_owned(), "cpu".to_owned()]).unwrap();
    let resumed = resumed
        .assignments
        .iter()
        .find(|x| x.job == other_base.job)
        .unwrap()
        .clone();
    assert_eq!(resumed.checkpoint_epoch, Some(2));
    assert!(
        s.record_epoch(other_small.attempt, &epoch(3, 0.5, 0.5))
            .is_ok()
    );
    s.record_epoch(resumed.attempt, &epoch(3, 0.9, 0.9))
        .unwrap();
    assert_eq!(
        status(&s, &other_small.job),
        JobStatus::Pruned,
        "the resumed attempt's epoch 3 outranks it"
    );

    // A lease lost after its metrics pruned a job: the decision is undone.
    let (c, d) = (resumed.attempt, other_small.job.clone());
    assert!(evidence(&s, &d).contains(&c.0));
    clock.advance_s(3600);
    s.expire_leases().unwrap();
    assert_eq!(status(&s, &d), JobStatus::Pending);
}

#[test]
fn retry_pruned_puts_pruned_jobs_back_and_forgets_what_pruned_them() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s, MEDIAN);
    let (base, small) = (&a[0], &a[1]);
    for e in 1..=2 {
        s.record_epoch(base.attempt, &epoch(e, 0.9, 0.9)).unwrap();
        s.record_epoch(small.attempt, &epoch(e, 0.1, 0.1)).unwrap();
    }
    assert_eq!(status(&s, &small.job), JobStatus::Pruned);
    let experiment = base.experiment.0.clone();
    let back = s.retry(&experiment, &[JobStatus::Pruned]).unwrap();
    assert_eq!(back, vec![small.job.clone()]);
    assert_eq!(status(&s, &small.job), JobStatus::Pending);
    assert!(evidence(&s, &small.job).is_empty());
}

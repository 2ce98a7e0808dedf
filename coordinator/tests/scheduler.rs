//! The scheduler's state machine: every transition, the fencing races, retries,
//! lost leases, checkpoints and a restart of the store. Plain Rust, no network,
//! a hand-driven clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use sched_support::submission_over;
use spikecv_common::dataset::sl_animals::REDUCED;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, JobResult, JobStatus};
use spikecv_common::experiment::plan::JobId;
use spikecv_coordinator::scheduler::{
    AttemptId, Credentials, FailOutcome, FailureClass, ManualClock, Progress, Scheduler,
    SchedulerError, SchedulerSettings, SlotInfo, Submission, WorkerId, WorkerRegistration,
    WorkerSecret, WorkerState,
};
use spikecv_coordinator::store::{SCHEMA_VERSION, Store, StoreError};

const T0: i64 = 1_700_000_000_000;

fn config(extra: &str) -> ExperimentConfig {
    let text = format!(
        "[data]\nroot = \"d\"\n[protocol]\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\nmax_attempts = 3\n{extra}"
    );
    ExperimentConfig::from_toml_str(&text).unwrap()
}

fn submission(config: ExperimentConfig, fingerprint: Option<&str>) -> Submission {
    submission_over(&config.to_toml_string(), 8, fingerprint, &["cat", "dog"])
}

fn settings() -> SchedulerSettings {
    SchedulerSettings {
        heartbeat_seconds: 5,
        lease_timeout_seconds: 30,
        max_lost: 3,
        ..SchedulerSettings::default()
    }
}

fn scheduler(clock: &ManualClock) -> Scheduler {
    Scheduler::with_store(
        Store::open_in_memory().unwrap(),
        settings(),
        Box::new(clock.clone()),
    )
    .unwrap()
}

/// A worker with four GPU slots (a lease gives at most one job per slot).
fn reg(name: &str, fingerprint: &str) -> WorkerRegistration {
    WorkerRegistration {
        name: name.into(),
        host: "node1".into(),
        slots: (0..4)
            .map(|i| SlotInfo {
                device: format!("cuda:{i}"),
                device_name: "H200".into(),
                memory_bytes: 1 << 37,
                manifest: None,
            })
            .collect(),
        data_fingerprint: fingerprint.into(),
        trainers: Vec::new(),
    }
}

fn slots(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("cuda:{i}")).collect()
}

fn result(acc: f64) -> JobResult {
    let epoch = EpochMetrics {
        epoch: 1,
        train_loss: 0.5,
        train_accuracy: 0.4,
        val_loss: Some(0.6),
        val_accuracy: Some(0.3),
        test_loss: Some(0.7),
        test_accuracy: Some(acc),
        epoch_seconds: 2.0,
        samples_per_second: 100.0,
        firing_rates: Vec::new(),
    };
    JobResult {
        best_epoch: 1,
        test_accuracy: acc,
        test_loss: 0.7,
        val_accuracy: Some(0.3),
        val_loss: Some(0.6),
        confusion: vec![],
        train_seconds: 120.0,
        epochs: vec![epoch],
        optimistic: false,
    }
}

/// Reports epoch `n` of `attempt` (a checkpoint follows its epoch's report).
fn report(s: &mut Scheduler, attempt: AttemptId, n: u32) {
    let mut m = result(0.5).epochs.remove(0);
    m.epoch = n;
    s.record_epoch(attempt, &m).unwrap();
}

fn job_status(s: &Scheduler, job: &JobId) -> JobStatus {
    s.store().job(job).unwrap().unwrap().status
}

/// One submitted experiment (2 jobs), one worker leasing one job.
fn one_lease(clock: &ManualClock) -> (Scheduler, WorkerId, AttemptId, JobId) {
    let (s, w, _secret, attempt, job) = one_lease_with_secret(clock);
    (s, w, attempt, job)
}

fn one_lease_with_secret(
    clock: &ManualClock,
) -> (Scheduler, WorkerId, WorkerSecret, AttemptId, JobId) {
    let mut s = scheduler(clock);
    s.submit(&submission(config(""), None)).unwrap();
    let r = s.register(&reg("a", "")).unwrap();
    let lease = s.lease(&r.id, &slots(1)).unwrap();
    assert_eq!(lease.assignments.len(), 1);
    let a = &lease.assignments[0];
    (s, r.id, r.secret, a.attempt, a.job.clone())
}

#[test]
fn submit_is_idempotent_and_reuses_finished_jobs() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let first = s.submit(&submission(config(""), None)).unwrap();
    assert_eq!(
        (first.jobs_new, first.jobs_reused, first.jobs_in_progress),
        (2, 0, 0)
    );
    let again = s.submit(&submission(config(""), None)).unwrap();
    assert_eq!(again.experiment, first.experiment);
    assert_eq!((again.jobs_new, again.jobs_in_progress), (0, 2));

    // Finish one job, then submit another experiment (other name, more seeds)
    // that plans the same job: it is reused, not run again.
    let w = s.register_worker(&reg("a", "")).unwrap();
    let a = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
    s.complete(a.attempt, &result(0.5)).unwrap();
    let mut other = config("");
    other.name = Some("bigger".into());
    other.protocol.seeds = vec![0, 1];
    let out = s.submit(&submission(other, None)).unwrap();
    assert_ne!(out.experiment, first.experiment);
    assert_eq!(
        (out.jobs_new, out.jobs_reused, out.jobs_in_progress),
        (2, 1, 1)
    );
    let snap = s.status().unwrap();
    assert_eq!(snap.counts.total(), 4);
    let bigger = snap
        .experiments
        .iter()
        .find(|e| e.id == out.experiment)
        .unwrap();
    assert_eq!((bigger.counts.succeeded, bigger.counts.pending), (1, 3));
}

#[test]
fn a_sweep_submits_every_configuration_and_leases_its_values() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let sweep = "[sweep]\n\"training.lr\" = [0.001, 0.0003]\n\"simulation.steps\" = [50, 20]\n";
    let sub = submission(config(sweep), None);
    assert_eq!((sub.configurations.len(), sub.jobs.len()), (4, 4 * 2));
    let out = s.submit(&sub).unwrap();
    assert_eq!(out.jobs_new, 8);
    // Eight slots, one per job of the sweep (a lease is clamped to the slots).
    let mut eight = reg("a", "");
    eight.slots = (0..8).map(|_| eight.slots[0].clone()).collect();
    let w = s.register_worker(&eight).unwrap();
    let lease = s.lease(&w, &slots(8)).unwrap();
    assert_eq!(lease.assignments.len(), 8);
    for (a, planned) in lease.assignments.iter().zip(&sub.jobs) {
        assert_eq!(a.job, planned.id);
        // The worker trains the configuration's values (JobSpec.config comes
        // from the job's stored config).
        let c = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        let want = &sub.configurations[planned.configuration].config;
        assert_eq!(
            (c.training.lr, c.simulation.steps),
            (want.training.lr, want.simulation.steps)
        );
        assert!(c.sweep.is_none());
    }
    let lrs: Vec<f64> = lease
        .assignments
        .iter()
        .map(|a| {
            ExperimentConfig::from_toml_str(&a.config_toml)
                .unwrap()
                .training
                .lr
        })
        .collect();
    assert_eq!(
        lrs,
        [0.001, 0.001, 0.0003, 0.0003, 0.001, 0.001, 0.0003, 0.0003]
    );
    // An experiment without a sweep that sets one configuration's values
    // plans the same jobs: they are not run again.
    let single = submission(
        config("[training]\nlr = 0.0003\n[simulation]\nsteps = 20\n"),
        None,
    );
    let again = s.submit(&single).unwrap();
    assert_eq!((again.jobs_new, again.jobs_in_progress), (0, 2));
}

#[test]
fn lease_gives_one_job_per_free_slot_in_plan_order() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let sub = submission(config(""), None);
    s.submit(&sub).unwrap();
    let w = s.register_worker(&reg("a", "")).unwrap();
    let out = s.lease(&w, &slots(3)).unwrap();
    assert_eq!(out.assignments.len(), 2, "only two jobs exist");
    assert!(!out.all_done);
    for (a, planned) in out.assignments.iter().zip(&sub.jobs) {
        assert_eq!(a.job, planned.id);
        assert_eq!(a.split, planned.split);
        assert_eq!(
            (a.seed, a.fold, a.variant),
            (planned.seed, planned.fold, planned.variant)
        );
        assert_eq!(a.deadline_ms, T0 + 30_000);
        assert!(!a.has_checkpoint());
        assert!(ExperimentConfig::from_toml_str(&a.config_toml).is_ok());
        assert_eq!(job_status(&s, &a.job), JobStatus::Leased);
    }
    assert_ne!(out.assignments[0].attempt, out.assignments[1].attempt);
    assert_eq!(out.assignments[1].device, "cuda:1");
    assert!(s.lease(&w, &slots(1)).unwrap().assignments.is_empty());
    for a in &out.assignments {
        s.complete(a.attempt, &result(0.5)).unwrap();
    }
    assert!(s.lease(&w, &slots(1)).unwrap().all_done);
}

#[test]
fn heartbeat_extends_the_lease_and_marks_running() {
    let clock = ManualClock::new(T0);
    let (mut s, w, attempt, job) = one_lease(&clock);
    for _ in 0..5 {
        clock.advance_s(20);
        let hb = s
            .heartbeat(
                &w,
                &[Progress {
                    attempt,
                    epoch: 3,
                    of: 10,
                }],
            )
            .unwrap();
        assert!(hb.cancel.is_empty() && !hb.drain);
        assert!(
            s.expire_leases().unwrap().is_empty(),
            "heartbeats keep the lease"
        );
    }
    assert_eq!(job_status(&s, &job), JobStatus::Running);
    let snap = s.status().unwrap();
    assert_eq!(snap.running.len(), 1);
    assert_eq!(snap.running[0].progress, Some((3, 10)));
    assert_eq!(snap.workers[0].running, vec![attempt]);
}

#[test]
fn record_epoch_and_complete() {
    let clock = ManualClock::new(T0);
    let (mut s, _w, attempt, job) = one_lease(&clock);
    let r = result(0.75);
    s.record_epoch(attempt, &r.epochs[0]).unwrap();
    assert_eq!(job_status(&s, &job), JobStatus::Running);
    s.complete(attempt, &r).unwrap();
    let row = s.store().job(&job).unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Succeeded);
    assert_eq!(row.test_accuracy, Some(0.75));
    assert_eq!(row.best_epoch, Some(1));
    assert_eq!(row.worker.as_deref(), Some("a"));
    assert_eq!(row.device.as_deref(), Some("cuda:0"));
    assert_eq!(s.store().epochs(&job).unwrap(), r.epochs);
    // Exactly once: a second completion of the same attempt is fenced.
    let err = s.complete(attempt, &r).unwrap_err();
    assert!(
        matches!(
            err,
            SchedulerError::Fenced {
                status: JobStatus::Succeeded,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn two_workers_completing_the_same_job_only_the_current_counts() {
    let clock = ManualClock::new(T0);
    let (mut s, wa, first, job) = one_lease(&clock);
    let wb = s.register_worker(&reg("b", "")).unwrap();
    // A goes silent; its lease expires and B gets the job.
    clock.advance_s(31);
    assert_eq!(s.expire_leases().unwrap(), vec![first]);
    let second = s.lease(&wb, &slots(2)).unwrap();
    let b = second.assignments.iter().find(|a| a.job == job).unwrap();
    // A comes back: its heartbeat is told to cancel, its completion is refused.
    let hb = s
        .heartbeat(
            &wa,
            &[Progress {
                attempt: first,
                epoch: 9,
                of: 10,
            }],
        )
        .unwrap();
    assert_eq!(hb.cancel, vec![first]);
    let err = s.complete(first, &result(0.9)).unwrap_err();
    assert!(
        matches!(err, SchedulerError::Fenced { attempt, .. } if attempt == first),
        "{err}"
    );
    assert!(matches!(
        s.record_epoch(first, &result(0.9).epochs[0]),
        Err(SchedulerError::Fenced { .. })
    ));
    assert!(matches!(
        s.fail(first, "x", FailureClass::Transient),
        Err(SchedulerError::Fenced { .. })
    ));
    assert!(matches!(
        s.release(first),
        Err(SchedulerError::Fenced { .. })
    ));
    assert!(matches!(
        s.put_checkpoint(first, 9, b"x"),
        Err(SchedulerError::Fenced { .. })
    ));
    // B's completion counts, and A's refused one changed nothing.
    s.complete(b.attempt, &result(0.4)).unwrap();
    let row = s.store().job(&job).unwrap().unwrap();
    assert_eq!(
        (row.status, row.test_accuracy),
        (JobStatus::Succeeded, Some(0.4))
    );
    assert_eq!((row.attempts, row.lost_attempts, row.failures), (2, 1, 0));
    assert_eq!(row.worker.as_deref(), Some("b"));
}

#[test]
fn a_completion_in_flight_when_the_lease_expires_is_refused() {
    let clock = ManualClock::new(T0);
    let (mut s, _w, attempt, job) = one_lease(&clock);
    clock.advance_s(30);
    assert_eq!(s.expire_leases().unwrap(), vec![attempt]);
    assert_eq!(job_status(&s, &job), JobStatus::Pending);
    let err = s.complete(attempt, &result(0.9)).unwrap_err();
    assert!(
        matches!(
            err,
            SchedulerError::Fenced {
                status: JobStatus::Pending,
                ..
            }
        ),
        "{err}"
    );
    let row = s.store().job(&job).unwrap().unwrap();
    assert_eq!(
        (row.status, row.test_accuracy, row.result_json),
        (JobStatus::Pending, None, None)
    );
    assert!(
        s.check_current(attempt)
            .unwrap_err()
            .to_string()
            .contains("no longer current")
    );
}

#[test]
fn transient_failures_retry_until_max_attempts() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission(config(""), None)).unwrap();
    let w = s.register_worker(&reg("a", "")).unwrap();
    let job = s.lease(&w, &slots(1)).unwrap().assignments[0].job.clone();
    let mut row = s.store().job(&job).unwrap().unwrap();
    let mut outcomes = Vec::new();
    loop {
        let attempt = row.current_attempt.unwrap();
        outcomes.push(
            s.fail(attempt, "disk hiccup", FailureClass::Transient)
                .unwrap(),
        );
        row = s.store().job(&job).unwrap().unwrap();
        if row.status != JobStatus::Pending {
            break;
        }
        // The same job comes back first (plan order).
        let a = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
        assert_eq!(a.job, job);
        row = s.store().job(&job).unwrap().unwrap();
    }
    assert_eq!(
        outcomes,
        vec![FailOutcome::Retry, FailOutcome::Retry, FailOutcome::Failed]
    );
    assert_eq!(
        (row.status, row.failures, row.attempts),
        (JobStatus::Failed, 3, 3)
    );
    assert_eq!(row.error.as_deref(), Some("disk hiccup"));
}

#[test]
fn a_deterministic_failure_fails_the_job_at_once() {
    let clock = ManualClock::new(T0);
    let (mut s, w, attempt, job) = one_lease(&clock);
    let out = s
        .fail(
            attempt,
            "loss is NaN at epoch 3",
            FailureClass::Deterministic,
        )
        .unwrap();
    assert_eq!(out, FailOutcome::Failed);
    let row = s.store().job(&job).unwrap().unwrap();
    assert_eq!((row.status, row.failures), (JobStatus::Failed, 1));
    // The run goes on with the other job.
    let next = s.lease(&w, &slots(1)).unwrap();
    assert_eq!(next.assignments.len(), 1);
    assert_ne!(next.assignments[0].job, job);
    // Submitting again gives the failed job a fresh budget.
    let again = s.submit(&submission(config(""), None)).unwrap();
    assert_eq!(again.jobs_requeued, 1);
    let row = s.store().job(&job).unwrap().unwrap();
    assert_eq!(
        (row.status, row.failures, row.error.clone()),
        (JobStatus::Pending, 0, None)
    );
}

#[test]
fn release_puts_the_job_back_without_counting_a_failure() {
    let clock = ManualClock::new(T0);
    let (mut s, w, attempt, job) = one_lease(&clock);
    s.drain(&w).unwrap();
    let hb = s
        .heartbeat(
            &w,
            &[Progress {
                attempt,
                epoch: 1,
                of: 4,
            }],
        )
        .unwrap();
    assert!(hb.drain && hb.cancel.is_empty());
    let out = s.lease(&w, &slots(1)).unwrap();
    assert!(out.drain && out.assignments.is_empty());
    s.release(attempt).unwrap();
    let row = s.store().job(&job).unwrap().unwrap();
    assert_eq!(
        (
            row.status,
            row.failures,
            row.lost_attempts,
            row.current_attempt
        ),
        (JobStatus::Pending, 0, 0, None)
    );
    let w2 = s.register_worker(&reg("b", "")).unwrap();
    assert_eq!(s.lease(&w2, &slots(1)).unwrap().assignments[0].job, job);
    assert_eq!(s.status().unwrap().workers[0].state, WorkerState::Draining);
}

#[test]
fn lost_leases_do_not_count_as_failures_but_are_bounded() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission(config(""), None)).unwrap();
    let mut lost_job = None;
    for round in 0..3 {
        let w = s.register_worker(&reg(&format!("w{round}"), "")).unwrap();
        let a = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
        if let Some(j) = &lost_job {
            assert_eq!(&a.job, j);
        }
        lost_job = Some(a.job.clone());
        clock.advance_s(31);
        assert_eq!(s.expire_leases().unwrap(), vec![a.attempt]);
    }
    let row = s.store().job(lost_job.as_ref().unwrap()).unwrap().unwrap();
    assert_eq!(
        (row.status, row.lost_attempts, row.failures),
        (JobStatus::Failed, 3, 0)
    );
    assert!(row.error.as_deref().unwrap().contains("lost 3 leases"));
    let snap = s.status().unwrap();
    assert!(snap.workers.iter().all(|w| w.state == WorkerState::Lost));
}

#[test]
fn cancel_stops_a_running_job_and_fences_its_attempt() {
    let clock = ManualClock::new(T0);
    let (mut s, w, attempt, job) = one_lease(&clock);
    s.cancel(&job).unwrap();
    s.cancel(&job).unwrap(); // idempotent
    assert_eq!(job_status(&s, &job), JobStatus::Cancelled);
    let hb = s
        .heartbeat(
            &w,
            &[Progress {
                attempt,
                epoch: 2,
                of: 4,
            }],
        )
        .unwrap();
    assert_eq!(hb.cancel, vec![attempt]);
    assert!(matches!(
        s.complete(attempt, &result(0.5)),
        Err(SchedulerError::Fenced {
            status: JobStatus::Cancelled,
            ..
        })
    ));
    // A finished job cannot be cancelled; an unknown one is reported as such.
    let other = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
    s.complete(other.attempt, &result(0.5)).unwrap();
    assert!(matches!(
        s.cancel(&other.job),
        Err(SchedulerError::AlreadyFinished { .. })
    ));
    assert!(matches!(
        s.cancel(&JobId::new("nope")),
        Err(SchedulerError::UnknownJob { .. })
    ));
}

#[test]
fn checkpoints_survive_a_lost_lease_and_go_with_success() {
    let clock = ManualClock::new(T0);
    let (mut s, _w, attempt, job) = one_lease(&clock);
    report(&mut s, attempt, 1);
    let sha = s.put_checkpoint(attempt, 1, b"epoch one").unwrap();
    report(&mut s, attempt, 2);
    let sha2 = s.put_checkpoint(attempt, 2, b"epoch two").unwrap();
    assert_ne!(sha, sha2);
    let ck = s.get_checkpoint(&job).unwrap().unwrap();
    assert_eq!(
        (ck.epoch, ck.bytes.as_slice(), ck.sha256.len()),
        (2, b"epoch two".as_slice(), 64)
    );
    assert_eq!(ck.sha256, sha2);
    clock.advance_s(31);
    s.expire_leases().unwrap();
    let w2 = s.register_worker(&reg("b", "")).unwrap();
    let a = s.lease(&w2, &slots(1)).unwrap().assignments.remove(0);
    assert_eq!((a.job.clone(), a.checkpoint_epoch), (job.clone(), Some(2)));
    s.complete(a.attempt, &result(0.5)).unwrap();
    assert!(s.get_checkpoint(&job).unwrap().is_none());
}

#[test]
fn a_restarted_store_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let (w, attempt, job) = {
        let mut s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
        s.submit(&submission(config(""), None)).unwrap();
        let w = s.register_worker(&reg("a", "")).unwrap();
        let a = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
        report(&mut s, a.attempt, 1);
        s.put_checkpoint(a.attempt, 1, b"ck").unwrap();
        (w, a.attempt, a.job)
    };
    // The coordinator restarts: the worker's id and attempt are still valid.
    clock.advance_s(10);
    let mut s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
    assert_eq!(s.store().schema_version().unwrap(), SCHEMA_VERSION);
    let hb = s
        .heartbeat(
            &w,
            &[Progress {
                attempt,
                epoch: 2,
                of: 4,
            }],
        )
        .unwrap();
    assert!(hb.cancel.is_empty());
    assert_eq!(s.get_checkpoint(&job).unwrap().unwrap().bytes, b"ck");
    s.complete(attempt, &result(0.6)).unwrap();
    // Resubmitting after the restart reuses the finished job.
    let out = s.submit(&submission(config(""), None)).unwrap();
    assert_eq!(
        (out.jobs_new, out.jobs_reused, out.jobs_in_progress),
        (0, 1, 1)
    );
    // A lease whose deadline passed while the coordinator was down gets a grace
    // period of one lease timeout: its worker may heartbeat and carry on.
    let b = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
    drop(s);
    clock.advance_s(60);
    let mut s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
    assert!(s.expire_leases().unwrap().is_empty());
    assert_eq!(s.status().unwrap().workers[0].state, WorkerState::Alive);
    clock.advance_s(29);
    assert!(
        s.heartbeat(
            &w,
            &[Progress {
                attempt: b.attempt,
                epoch: 1,
                of: 4
            }]
        )
        .unwrap()
        .cancel
        .is_empty()
    );
    clock.advance_s(29);
    assert!(s.expire_leases().unwrap().is_empty());
    // Without heartbeats it does expire, one timeout later.
    clock.advance_s(2);
    assert_eq!(s.expire_leases().unwrap(), vec![b.attempt]);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NewerSchema { .. })
    ));
}

#[test]
fn workers_with_other_data_are_refused_and_never_leased_to() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission(config(""), Some("f00d"))).unwrap();
    let err = s.register_worker(&reg("stale", "beef")).unwrap_err();
    assert!(
        matches!(&err, SchedulerError::FingerprintMismatch { got, expected, .. }
        if got == "beef" && expected == &vec!["f00d".to_owned()]),
        "{err}"
    );
    assert!(matches!(
        s.register_worker(&reg("empty", "")),
        Err(SchedulerError::FingerprintMismatch { .. })
    ));
    let ok = s.register_worker(&reg("good", "f00d")).unwrap();
    assert_eq!(s.lease(&ok, &slots(2)).unwrap().assignments.len(), 2);
}

#[test]
fn unknown_ids_are_typed_errors_and_known_workers_are_refreshed() {
    let clock = ManualClock::new(T0);
    let (mut s, w, secret, _attempt, _job) = one_lease_with_secret(&clock);
    let ghost = WorkerId("w-ghost".into());
    assert!(matches!(
        s.lease(&ghost, &slots(1)),
        Err(SchedulerError::UnknownWorker { .. })
    ));
    assert!(matches!(
        s.heartbeat(&ghost, &[]),
        Err(SchedulerError::UnknownWorker { .. })
    ));
    assert!(matches!(
        s.complete(AttemptId(999), &result(0.1)),
        Err(SchedulerError::UnknownAttempt { .. })
    ));
    // A worker the store lost re-registers under its own id and secret.
    let ghost_secret = WorkerSecret::presented("ghost-secret");
    assert_eq!(
        s.ensure_worker(&ghost, &ghost_secret, &reg("ghost", ""))
            .unwrap(),
        ghost
    );
    assert!(matches!(
        s.ensure_worker(&ghost, &WorkerSecret::presented("guess"), &reg("ghost", "")),
        Err(SchedulerError::WrongSecret { .. })
    ));
    assert_eq!(s.ensure_worker(&w, &secret, &reg("a2", "")).unwrap(), w);
    let mut names: Vec<String> = s
        .status()
        .unwrap()
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    names.sort();
    assert_eq!(names, vec!["a2", "ghost"]);
    // Another worker's attempt in a heartbeat is answered with cancel.
    let a = s.lease(&ghost, &slots(1)).unwrap().assignments.remove(0);
    let hb = s
        .heartbeat(
            &w,
            &[Progress {
                attempt: a.attempt,
                epoch: 1,
                of: 2,
            }],
        )
        .unwrap();
    assert_eq!(hb.cancel, vec![a.attempt]);
    // Bad results are refused without a change.
    let mut bad = result(0.5);
    bad.test_accuracy = 57.0;
    assert!(matches!(
        s.complete(a.attempt, &bad),
        Err(SchedulerError::BadRequest { .. })
    ));
    assert_eq!(s.check_current(a.attempt).unwrap(), a.job);
}

#[test]
fn status_counts_throughput_and_eta() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let mut c = config("");
    c.protocol.seeds = vec![0, 1];
    s.submit(&submission(c, None)).unwrap();
    let mut one_slot = reg("a", "");
    one_slot.slots.truncate(1);
    let w = s.register_worker(&one_slot).unwrap();
    let snap = s.status().unwrap();
    assert_eq!((snap.counts.pending, snap.eta_seconds), (4, None));
    let a = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
    s.complete(a.attempt, &result(0.5)).unwrap();
    let snap = s.status().unwrap();
    assert_eq!(
        (
            snap.counts.pending,
            snap.counts.succeeded,
            snap.succeeded_last_hour
        ),
        (3, 1, 1)
    );
    // 3 jobs left, one slot, 120 s per job.
    assert_eq!(snap.eta_seconds, Some(360.0));
}

#[test]
fn the_store_is_wal_with_foreign_keys_and_refuses_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).unwrap();
    let mode: String = store
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let fk: i64 = store
        .conn()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), fk), ("wal", 1));
    // A dangling reference is refused by the database itself.
    let err = store
        .conn()
        .execute(
            "INSERT INTO attempts (job, worker, device, leased_ms, deadline_ms) VALUES ('nope', 'nope', 'cpu', 0, 0)",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&junk).unwrap_err();
    assert!(err.to_string().contains("database"), "{err}");
}

/// Checkpoint rows that still hold their bytes in the database.
fn inline_checkpoints(s: &Scheduler) -> i64 {
    s.store()
        .conn()
        .query_row(
            "SELECT count(*) FROM checkpoints WHERE bytes IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The `.ckpt` files in the checkpoint directory, by name.
fn checkpoint_files(s: &Scheduler) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.checkpoint_dir().path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn checkpoint_bytes_live_in_one_file_per_job_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let mut s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
    assert_eq!(
        s.checkpoint_dir().path(),
        dir.path().join("state.db.checkpoints")
    );
    s.submit(&submission(config(""), None)).unwrap();
    let w = s.register_worker(&reg("a", "")).unwrap();
    let lease = s.lease(&w, &slots(2)).unwrap();
    let (a, b) = (&lease.assignments[0], &lease.assignments[1]);
    report(&mut s, a.attempt, 1);
    let sha1 = s.put_checkpoint(a.attempt, 1, b"one").unwrap();
    report(&mut s, a.attempt, 2);
    let sha2 = s.put_checkpoint(a.attempt, 2, b"two").unwrap();
    report(&mut s, b.attempt, 1);
    s.put_checkpoint(b.attempt, 1, b"other job").unwrap();
    // The replaced checkpoint's file is gone; the record names the new file.
    let rec = s.checkpoint_record(&a.job).unwrap().unwrap();
    assert_eq!(
        (rec.epoch, rec.size, rec.sha256.as_str()),
        (2, 3, sha2.as_str())
    );
    assert_eq!(std::fs::read(&rec.path).unwrap(), b"two");
    assert!(!s.checkpoint_dir().file(&a.job, &sha1).exists());
    assert_eq!(checkpoint_files(&s).len(), 2);
    // No database row holds checkpoint bytes.
    assert_eq!(inline_checkpoints(&s), 0);
    // A fenced attempt's upload is refused and its staged file removed.
    clock.advance_s(31);
    s.expire_leases().unwrap();
    let staged = {
        let mut f = s.checkpoint_dir().stage().unwrap();
        f.write(b"late").unwrap();
        f.finish().unwrap()
    };
    let staged_path = staged.path.clone();
    assert!(matches!(
        s.commit_checkpoint(a.attempt, 3, staged),
        Err(SchedulerError::Fenced { .. })
    ));
    assert!(!staged_path.exists());
    assert_eq!(s.get_checkpoint(&a.job).unwrap().unwrap().bytes, b"two");
    // Success removes the job's file with its record.
    let again = s.lease(&w, &slots(2)).unwrap();
    let resumed = again.assignments.iter().find(|x| x.job == a.job).unwrap();
    assert_eq!(resumed.checkpoint_epoch, Some(2));
    s.complete(resumed.attempt, &result(0.5)).unwrap();
    assert!(s.checkpoint_record(&a.job).unwrap().is_none());
    assert!(!rec.path.exists());
    assert_eq!(checkpoint_files(&s).len(), 1);
}

#[test]
fn opening_the_store_sweeps_stray_files_and_drops_records_whose_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let (jobs, kept) = {
        let mut s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
        s.submit(&submission(config(""), None)).unwrap();
        let w = s.register_worker(&reg("a", "")).unwrap();
        let lease = s.lease(&w, &slots(2)).unwrap();
        let (a, b) = (&lease.assignments[0], &lease.assignments[1]);
        report(&mut s, a.attempt, 1);
        s.put_checkpoint(a.attempt, 1, b"kept").unwrap();
        report(&mut s, b.attempt, 1);
        s.put_checkpoint(b.attempt, 1, b"lost").unwrap();
        let lost = s.checkpoint_record(&b.job).unwrap().unwrap().path;
        std::fs::remove_file(lost).unwrap();
        // A crash mid-upload and one between rename and commit leave strays.
        let ckdir = s.checkpoint_dir().path().to_owned();
        std::fs::write(ckdir.join("upload-1-0.part"), b"half").unwrap();
        std::fs::write(
            ckdir.join(format!("{}.{}.ckpt", a.job, "0".repeat(64))),
            b"x",
        )
        .unwrap();
        let kept = s.checkpoint_record(&a.job).unwrap().unwrap().path;
        ((a.job.clone(), b.job.clone()), kept)
    };
    let s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
    let names = checkpoint_files(&s);
    assert_eq!(
        names,
        vec![kept.file_name().unwrap().to_string_lossy().into_owned()]
    );
    assert_eq!(s.get_checkpoint(&jobs.0).unwrap().unwrap().bytes, b"kept");
    assert!(s.checkpoint_record(&jobs.1).unwrap().is_none());
}

#[test]
fn a_job_carries_only_its_own_seed_and_variant() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let mut c = config("");
    c.protocol.seeds = (0..50).collect();
    c.protocol.variants = vec![Variant::WHOLE, REDUCED];
    s.submit(&submission(c.clone(), None)).unwrap();
    let w = s.register_worker(&reg("a", "")).unwrap();
    for a in s.lease(&w, &slots(3)).unwrap().assignments {
        let job = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        assert_eq!(job.protocol.seeds, vec![a.seed]);
        assert_eq!(job.protocol.variants, vec![a.variant]);
        assert_eq!(job.training, c.training);
        assert_eq!(job, c.for_job(a.seed, a.variant));
    }
}

#[test]
fn a_lost_worker_that_calls_again_is_alive_and_leases() {
    let clock = ManualClock::new(T0);
    let (mut s, w, secret, attempt, _job) = one_lease_with_secret(&clock);
    clock.advance_s(31);
    assert_eq!(s.expire_leases().unwrap(), vec![attempt]);
    let state = |s: &Scheduler| s.status().unwrap().workers[0].state;
    assert_eq!(state(&s), WorkerState::Lost);
    // Same registration as before: the call must still revive it.
    assert_eq!(s.ensure_worker(&w, &secret, &reg("a", "")).unwrap(), w);
    assert_eq!(state(&s), WorkerState::Alive);
    let seen = s.status().unwrap().workers[0].last_seen_ms;
    assert_eq!(seen, s.now_ms());
    // An unchanged live worker is left as it is; the lease refreshes it.
    clock.advance_s(5);
    s.ensure_worker(&w, &secret, &reg("a", "")).unwrap();
    assert_eq!(s.status().unwrap().workers[0].last_seen_ms, seen);
    assert_eq!(s.lease(&w, &slots(1)).unwrap().assignments.len(), 1);
    assert_eq!(s.status().unwrap().workers[0].last_seen_ms, s.now_ms());
}

#[test]
fn an_unwritable_checkpoint_directory_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // A plain file where the directory must go.
    std::fs::write(dir.path().join("state.db.checkpoints"), b"not a directory").unwrap();
    let clock = ManualClock::new(T0);
    let err = Scheduler::open(&path, settings(), Box::new(clock)).unwrap_err();
    assert!(
        matches!(err, SchedulerError::CheckpointIo { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("state.db.checkpoints"), "{err}");
}

#[test]
fn a_checkpoint_still_held_inline_is_moved_to_a_file_on_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let job = {
        let mut s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
        s.submit(&submission(config(""), None)).unwrap();
        let w = s.register_worker(&reg("a", "")).unwrap();
        let a = s.lease(&w, &slots(1)).unwrap().assignments.remove(0);
        report(&mut s, a.attempt, 1);
        s.put_checkpoint(a.attempt, 1, b"from schema 1").unwrap();
        // As a schema-1 store left it: the bytes in the row, no file.
        let rec = s.checkpoint_record(&a.job).unwrap().unwrap();
        std::fs::remove_file(&rec.path).unwrap();
        s.store()
            .conn()
            .execute(
                "UPDATE checkpoints SET bytes = ?1 WHERE job = ?2",
                rusqlite::params![b"from schema 1".to_vec(), a.job.as_str()],
            )
            .unwrap();
        a.job
    };
    let s = Scheduler::open(&path, settings(), Box::new(clock)).unwrap();
    let ck = s.get_checkpoint(&job).unwrap().unwrap();
    assert_eq!(
        (ck.epoch, ck.bytes.as_slice()),
        (1, b"from schema 1".as_slice())
    );
    assert_eq!(inline_checkpoints(&s), 0);
}

#[test]
fn an_attempt_is_authorized_only_for_the_worker_that_leased_it_with_its_secret() {
    let clock = ManualClock::new(T0);
    let (mut s, w, secret, attempt, _job) = one_lease_with_secret(&clock);
    let other = s.register(&reg("b", "")).unwrap();
    let own = Credentials {
        worker: w.clone(),
        secret: secret.clone(),
    };
    s.authorize(&own, attempt).unwrap();
    let theirs = Credentials {
        worker: other.id.clone(),
        secret: other.secret.clone(),
    };
    assert!(matches!(
        s.authorize(&theirs, attempt),
        Err(SchedulerError::NotOwner { owner, .. }) if owner == w
    ));
    // The owner's id with a wrong (or empty) secret.
    for guess in ["", "0123", other.secret.expose()] {
        let forged = Credentials {
            worker: w.clone(),
            secret: WorkerSecret::presented(guess),
        };
        assert!(matches!(
            s.authorize(&forged, attempt),
            Err(SchedulerError::WrongSecret { .. })
        ));
    }
    // A worker registered without going through `register` (never handed a
    // secret) cannot be spoken for.
    let ghost = Credentials {
        worker: WorkerId("w-none".into()),
        secret: WorkerSecret::presented("x"),
    };
    assert!(matches!(
        s.authorize(&ghost, attempt),
        Err(SchedulerError::WrongSecret { .. })
    ));
}

#[test]
fn secrets_survive_a_coordinator_restart_on_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let open = |clock: &ManualClock| {
        Scheduler::open(&path, SchedulerSettings::default(), Box::new(clock.clone())).unwrap()
    };
    let mut s = open(&clock);
    s.submit(&submission(config(""), None)).unwrap();
    let r = s.register(&reg("a", "")).unwrap();
    let attempt = s.lease(&r.id, &slots(1)).unwrap().assignments[0].attempt;
    drop(s);
    let mut s = open(&clock);
    let c = Credentials {
        worker: r.id.clone(),
        secret: r.secret.clone(),
    };
    s.authorize(&c, attempt).unwrap();
    assert_eq!(
        s.ensure_worker(&r.id, &r.secret, &reg("a", "")).unwrap(),
        r.id
    );
    let stored: String = s
        .store()
        .conn()
        .query_row("SELECT secret_sha256 FROM workers", [], |row| row.get(0))
        .unwrap();
    assert_ne!(
        stored,
        r.secret.expose(),
        "the store keeps a hash, not the secret"
    );
    assert_eq!(stored, r.secret.digest());
}

#[test]
fn a_lease_gives_at_most_one_job_per_registered_slot() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission(config(""), None)).unwrap();
    let mut one = reg("a", "");
    one.slots.truncate(1);
    let w = s.register_worker(&one).unwrap();
    let asked: Vec<String> = vec!["cuda:0".into(); 500];
    assert_eq!(s.lease(&w, &asked).unwrap().assignments.len(), 1);
    assert_eq!(s.status().unwrap().counts.pending, 1);
}

#[test]
fn registering_again_reuses_the_row_of_a_gone_worker_only_and_prunes_idle_lost_ones() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission(config(""), None)).unwrap();
    let workers = |s: &Scheduler| s.status().unwrap().workers.len();
    let gone = s.register(&reg("a", "")).unwrap();
    // Silent for a lease timeout and holding nothing, it is gone: a worker
    // restarting under its name gets its row back, as often as it restarts.
    let mut first = gone.clone();
    for _ in 0..50 {
        clock.advance_s(31);
        first = s.register(&reg("a", "")).unwrap();
        assert_eq!(first.id, gone.id);
    }
    assert_eq!(workers(&s), 1);
    // Its old secret no longer works: the last registration holds the row.
    assert!(matches!(
        s.ensure_worker(&gone.id, &gone.secret, &reg("a", "")),
        Err(SchedulerError::WrongSecret { .. })
    ));
    // A live worker keeps its row (with an open attempt or none): a second
    // registration under its name gets a new one.
    let lease = s.lease(&first.id, &slots(1)).unwrap();
    assert_eq!(lease.assignments.len(), 1);
    let second = s.register(&reg("a", "")).unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(workers(&s), 2);
    s.ensure_worker(&first.id, &first.secret, &reg("a", ""))
        .unwrap();
    // Workers under other names that never leased anything and went silent are
    // deleted at the next registration.
    for i in 0..20 {
        s.register_worker(&reg(&format!("spam{i}"), "")).unwrap();
    }
    assert_eq!(workers(&s), 22);
    clock.advance_s(31);
    s.expire_leases().unwrap();
    s.register_worker(&reg("late", "")).unwrap();
    // `a` (first row) leased once, so it stays; the second and the spam go.
    let names: Vec<String> = s
        .status()
        .unwrap()
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, vec!["a".to_owned(), "late".to_owned()]);
}

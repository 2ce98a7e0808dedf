//! What a greedy, hung, lying or colliding worker can no longer do: hold
//! more attempts than its slots, hold a job without training it, report
//! epochs outside the experiment or going back, upload a checkpoint ahead of
//! its reports, leave a checkpoint behind a failed, cancelled, pruned or
//! resubmitted job, or take over a live worker's identity. Plain Rust, a
//! hand-driven clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use sched_support::submission_over;
use spikecv_common::experiment::job::{EpochMetrics, JobStatus};
use spikecv_common::experiment::plan::JobId;
use spikecv_coordinator::scheduler::{
    AttemptId, FailureClass, ManualClock, Progress, Scheduler, SchedulerError, SchedulerSettings,
    SlotInfo, Submission, WorkerId, WorkerRegistration,
};
use spikecv_coordinator::store::Store;

const T0: i64 = 1_700_000_000_000;

fn submission(extra: &str) -> Submission {
    submission_over(
        &format!(
            "[data]\nroot = \"d\"\n[protocol]\nfolds = 4\nseeds = [0]\nvariants = [\"whole\"]\n\
             max_attempts = 3\n{extra}\n[training]\nepochs = 3\n"
        ),
        8,
        None,
        &["cat", "dog"],
    )
}

fn scheduler(clock: &ManualClock, max_workers: usize) -> Scheduler {
    Scheduler::with_store(
        Store::open_in_memory().unwrap(),
        SchedulerSettings {
            heartbeat_seconds: 5,
            lease_timeout_seconds: 30,
            max_lost: 3,
            max_workers,
            ..SchedulerSettings::default()
        },
        Box::new(clock.clone()),
    )
    .unwrap()
}

fn reg(name: &str, slots: usize) -> WorkerRegistration {
    WorkerRegistration {
        name: name.into(),
        host: "node1".into(),
        slots: (0..slots)
            .map(|i| SlotInfo {
                device: format!("cuda:{i}"),
                device_name: "H200".into(),
                memory_bytes: 1 << 37,
                manifest: None,
            })
            .collect(),
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    }
}

fn metrics(epoch: u32) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 0.5,
        train_accuracy: 0.4,
        val_loss: Some(0.6),
        val_accuracy: Some(0.3),
        test_loss: None,
        test_accuracy: None,
        epoch_seconds: 2.0,
        samples_per_second: 100.0,
        firing_rates: Vec::new(),
    }
}

fn free(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("cuda:{i}")).collect()
}

fn status(s: &Scheduler, job: &JobId) -> JobStatus {
    s.store().job(job).unwrap().unwrap().status
}

fn lease_one(s: &mut Scheduler, w: &WorkerId) -> (AttemptId, JobId) {
    let out = s.lease(w, &free(1)).unwrap();
    let a = &out.assignments[0];
    (a.attempt, a.job.clone())
}

fn bad_request(r: Result<impl std::fmt::Debug, SchedulerError>) -> String {
    match r {
        Err(SchedulerError::BadRequest { message }) => message,
        other => panic!("expected a bad request, got {other:?}"),
    }
}

#[test]
fn a_worker_never_holds_more_attempts_than_its_slots_however_often_it_leases() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("")).unwrap();
    let w = s.register_worker(&reg("greedy", 1)).unwrap();
    assert_eq!(s.lease(&w, &free(4)).unwrap().assignments.len(), 1);
    for _ in 0..5 {
        assert!(s.lease(&w, &free(4)).unwrap().assignments.is_empty());
    }
    // Another worker gets the rest.
    let other = s.register_worker(&reg("other", 4)).unwrap();
    assert_eq!(s.lease(&other, &free(4)).unwrap().assignments.len(), 3);
}

#[test]
fn an_attempt_without_a_new_epoch_for_the_timeout_is_taken_back_though_it_heartbeats() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("epoch_timeout_s = 100")).unwrap();
    let w = s.register_worker(&reg("hung", 1)).unwrap();
    let (attempt, job) = lease_one(&mut s, &w);
    s.record_epoch(attempt, &metrics(1)).unwrap();
    let beat = |s: &mut Scheduler| {
        s.heartbeat(
            &w,
            &[Progress {
                attempt,
                epoch: 1,
                of: 3,
            }],
        )
        .unwrap()
    };
    // Heartbeats every 20 s keep the lease, and a repeated epoch is no progress.
    for _ in 0..4 {
        clock.advance_s(20);
        assert!(beat(&mut s).cancel.is_empty());
        assert!(s.expire_leases().unwrap().is_empty());
    }
    s.record_epoch(attempt, &metrics(1)).unwrap();
    clock.advance_s(20);
    beat(&mut s);
    assert_eq!(s.expire_leases().unwrap(), vec![attempt]);
    assert_eq!(
        beat(&mut s).cancel,
        vec![attempt],
        "the worker is told to stop"
    );
    assert_eq!(status(&s, &job), JobStatus::Pending);
    // Its next lease gets the job again (one slot, none held).
    assert_eq!(s.lease(&w, &free(1)).unwrap().assignments.len(), 1);
}

#[test]
fn a_new_epoch_restarts_the_timeout_and_zero_turns_it_off() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("epoch_timeout_s = 100")).unwrap();
    let w = s.register_worker(&reg("slow", 1)).unwrap();
    let (attempt, _) = lease_one(&mut s, &w);
    for epoch in 1..=3 {
        clock.advance_s(25);
        s.heartbeat(&w, &[]).unwrap();
        clock.advance_s(25);
        s.heartbeat(&w, &[]).unwrap();
        s.record_epoch(attempt, &metrics(epoch)).unwrap();
        s.heartbeat(
            &w,
            &[Progress {
                attempt,
                epoch,
                of: 3,
            }],
        )
        .unwrap();
        assert!(s.expire_leases().unwrap().is_empty(), "epoch {epoch}");
    }

    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("epoch_timeout_s = 0")).unwrap();
    let w = s.register_worker(&reg("off", 1)).unwrap();
    let (attempt, _) = lease_one(&mut s, &w);
    for _ in 0..100 {
        clock.advance_s(20);
        s.heartbeat(
            &w,
            &[Progress {
                attempt,
                epoch: 0,
                of: 3,
            }],
        )
        .unwrap();
        assert!(s.expire_leases().unwrap().is_empty());
    }
}

#[test]
fn epochs_outside_the_plan_or_going_back_are_refused_and_change_nothing() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("")).unwrap();
    let w = s.register_worker(&reg("liar", 1)).unwrap();
    let (attempt, job) = lease_one(&mut s, &w);
    assert!(bad_request(s.record_epoch(attempt, &metrics(0))).contains("epoch is 0"));
    assert!(bad_request(s.record_epoch(attempt, &metrics(4))).contains("training.epochs"));
    s.record_epoch(attempt, &metrics(2)).unwrap();
    s.record_epoch(attempt, &metrics(2)).unwrap();
    let back = bad_request(s.record_epoch(attempt, &metrics(1)));
    assert!(
        back.contains("goes back") && back.contains("epoch 2"),
        "{back}"
    );
    let mut huge = metrics(3);
    huge.epoch_seconds = 1e308;
    assert!(bad_request(s.record_epoch(attempt, &huge)).contains("epoch_seconds"));
    let stored: Vec<u32> = s
        .store()
        .epochs(&job)
        .unwrap()
        .iter()
        .map(|m| m.epoch)
        .collect();
    assert_eq!(stored, vec![2]);
}

#[test]
fn a_checkpoint_must_follow_its_epochs_report_within_the_plan() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("")).unwrap();
    let w = s.register_worker(&reg("w", 1)).unwrap();
    let (attempt, job) = lease_one(&mut s, &w);
    let e = bad_request(s.put_checkpoint(attempt, 1, b"ckpt"));
    assert!(e.contains("no epoch yet"), "{e}");
    s.record_epoch(attempt, &metrics(1)).unwrap();
    // The last epoch claimed up front would complete the job at once.
    assert!(bad_request(s.put_checkpoint(attempt, 3, b"ckpt")).contains("epoch 1 last"));
    assert!(bad_request(s.check_upload(attempt, 2)).contains("checkpoint epoch 2"));
    s.put_checkpoint(attempt, 1, b"ckpt").unwrap();
    assert_eq!(s.checkpoint_record(&job).unwrap().unwrap().epoch, 1);
}

/// A job with a checkpoint, its attempt and its file.
fn checkpointed(s: &mut Scheduler, w: &WorkerId) -> (AttemptId, JobId, std::path::PathBuf) {
    let (attempt, job) = lease_one(s, w);
    s.record_epoch(attempt, &metrics(1)).unwrap();
    s.put_checkpoint(attempt, 1, b"weights").unwrap();
    let path = s.checkpoint_record(&job).unwrap().unwrap().path;
    assert!(path.is_file());
    (attempt, job, path)
}

#[test]
fn checkpoints_go_with_a_failure_a_cancel_and_a_resubmission_but_stay_for_a_lost_lease() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("")).unwrap();
    let w = s.register_worker(&reg("w", 1)).unwrap();

    // A transient failure: the job is retried, from epoch 0.
    let (attempt, job, file) = checkpointed(&mut s, &w);
    s.fail(attempt, "io", FailureClass::Transient).unwrap();
    assert!(s.checkpoint_record(&job).unwrap().is_none() && !file.exists());
    let again = s.lease(&w, &free(1)).unwrap().assignments.remove(0);
    assert_eq!((again.job.clone(), again.checkpoint_epoch), (job, None));
    s.release(again.attempt).unwrap();

    // A cancel.
    let (_, job, file) = checkpointed(&mut s, &w);
    s.cancel(&job).unwrap();
    assert!(s.checkpoint_record(&job).unwrap().is_none() && !file.exists());

    // A lost lease keeps it: the next attempt resumes.
    let (_, job, file) = checkpointed(&mut s, &w);
    clock.advance_s(31);
    s.expire_leases().unwrap();
    assert!(file.is_file());
    let resumed = s.lease(&w, &free(1)).unwrap().assignments.remove(0);
    assert_eq!(
        (resumed.job.clone(), resumed.checkpoint_epoch),
        (job.clone(), Some(1))
    );
    // A deterministic failure, then the experiment submitted again: the
    // requeued job starts afresh.
    s.record_epoch(resumed.attempt, &metrics(2)).unwrap();
    s.put_checkpoint(resumed.attempt, 2, b"more").unwrap();
    let file = s.checkpoint_record(&job).unwrap().unwrap().path;
    s.fail(resumed.attempt, "bad shape", FailureClass::Deterministic)
        .unwrap();
    assert!(!file.exists());
    assert_eq!(s.submit(&submission("")).unwrap().jobs_requeued, 2);
    let requeued = s.lease(&w, &free(1)).unwrap().assignments.remove(0);
    assert_eq!(requeued.checkpoint_epoch, None);
}

#[test]
fn a_pruned_job_leaves_no_checkpoint() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    let sub = submission_over(
        "[data]\nroot = \"d\"\n[protocol]\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n\
         [training]\nepochs = 4\n[sweep]\n\"training.lr\" = [0.001, 0.01, 0.1]\n\
         prune = \"median\"\nwarmup_epochs = 1\n",
        4,
        None,
        &[],
    );
    s.submit(&sub).unwrap();
    let w = s.register_worker(&reg("w", 8)).unwrap();
    let leased = s.lease(&w, &free(8)).unwrap().assignments;
    assert_eq!(leased.len(), 6);
    let mut pruned_files = Vec::new();
    for epoch in 1..=2 {
        for a in &leased {
            let mut m = metrics(epoch);
            // Configuration by configuration, worse and worse.
            m.val_accuracy = Some(if a.config_toml.contains("lr = 0.1") {
                0.05
            } else {
                0.9
            });
            if s.record_epoch(a.attempt, &m).is_ok() {
                s.put_checkpoint(a.attempt, epoch, &[epoch as u8; 4]).ok();
                if let Some(r) = s.checkpoint_record(&a.job).unwrap() {
                    pruned_files.push((a.job.clone(), r.path));
                }
            }
        }
    }
    let pruned: Vec<&JobId> = leased
        .iter()
        .map(|a| &a.job)
        .filter(|j| status(&s, j) == JobStatus::Pruned)
        .collect();
    assert!(!pruned.is_empty(), "the losing configuration is pruned");
    for job in pruned {
        assert!(s.checkpoint_record(job).unwrap().is_none());
        for (_, path) in pruned_files.iter().filter(|(j, _)| j == job) {
            assert!(!path.exists(), "{}", path.display());
        }
    }
}

#[test]
fn a_second_worker_under_a_live_workers_name_gets_its_own_identity() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 100);
    s.submit(&submission("")).unwrap();
    let first = s.register(&reg("twin", 1)).unwrap();
    // Idle, alive: its identity is not handed out.
    clock.advance_s(10);
    let second = s.register(&reg("twin", 1)).unwrap();
    assert_ne!(first.id, second.id);
    // Both keep working under their own secrets.
    let (a1, _) = lease_one(&mut s, &first.id);
    let (a2, _) = lease_one(&mut s, &second.id);
    let creds = |r: &spikecv_coordinator::scheduler::Registered| {
        spikecv_coordinator::scheduler::Credentials {
            worker: r.id.clone(),
            secret: r.secret.clone(),
        }
    };
    s.authorize(&creds(&first), a1).unwrap();
    s.authorize(&creds(&second), a2).unwrap();
    assert!(matches!(
        s.authorize(&creds(&second), a1),
        Err(SchedulerError::NotOwner { .. })
    ));

    // A worker gone silent for the lease timeout, holding nothing, is gone:
    // a restart under its name gets its row back (the table does not grow).
    s.release(a1).unwrap();
    s.release(a2).unwrap();
    clock.advance_s(31);
    s.heartbeat(&second.id, &[]).unwrap();
    let restarted = s.register(&reg("twin", 1)).unwrap();
    assert_eq!(restarted.id, first.id);
    assert_ne!(restarted.secret, first.secret);
}

#[test]
fn registrations_past_the_worker_cap_are_refused_naming_the_limit() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock, 2);
    s.submit(&submission("")).unwrap();
    s.register(&reg("a", 1)).unwrap();
    s.register(&reg("b", 1)).unwrap();
    let e = s.register(&reg("c", 1)).unwrap_err();
    assert!(
        matches!(e, SchedulerError::TooManyWorkers { limit: 2 }),
        "{e}"
    );
    assert!(e.to_string().contains("--max-workers"), "{e}");
    // Lost workers free their places.
    clock.advance_s(31);
    s.expire_leases().unwrap();
    s.register(&reg("c", 1)).unwrap();
}

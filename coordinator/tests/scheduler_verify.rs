//! Deterministic replay in the scheduler (`[protocol] verify`): a replay
//! goes to another credential, never the original's; agreement marks the
//! job verified; a mismatch gets a third run whose majority is kept, and
//! the worker that disagreed is suspect (no leases) until cleared; replays
//! do not count against `max_attempts`; a slot whose manifest cannot give
//! the same bits waits; a reused job keeps its state; a suspect on the
//! shared token that registers again under a new id is suspect too. Plain
//! Rust, no network, a hand-driven clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use sched_support::verify::{
    self, lease_one, make_suspect, named, provenance, registration_on, verify_submission,
};
use sched_support::{honest_result, scheduler};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{JobResult, JobStatus};
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::plan::JobId;
use spikecv_coordinator::scheduler::{
    FailOutcome, FailureClass, ManualClock, Scheduler, SchedulerError, Submission, WorkerId,
};
use spikecv_coordinator::states::VerifyState;

const T0: i64 = 1_700_000_000_000;
const EPOCHS: u32 = 2;

fn submission(verify: &str, max_attempts: u32, name: &str) -> Submission {
    verify_submission(verify, max_attempts, name, EPOCHS)
}

fn forged() -> JobResult {
    verify::forged(EPOCHS)
}

/// `w` takes every pending job, one at a time, and completes each with `r`.
fn run_all(s: &mut Scheduler, w: &WorkerId, r: &JobResult, p: &Provenance) -> Vec<JobId> {
    let mut done = Vec::new();
    while let Some(a) = lease_one(s, w) {
        s.complete_with(a.attempt, r, Some(p)).unwrap();
        done.push(a.job);
    }
    done
}

fn state(s: &Scheduler, job: &JobId) -> Option<VerifyState> {
    s.verify_state(job).unwrap()
}

#[test]
fn a_replay_goes_to_another_credential_and_agreement_marks_the_job_verified() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let sub = submission("\"all\"", 3, "e");
    assert!(
        sub.config.training.deterministic,
        "verify trains deterministic"
    );
    s.submit(&sub).unwrap();
    let alice = named(&mut s, "alice", 4);
    let honest = provenance(4, "ab");
    let jobs = run_all(&mut s, &alice, &honest_result(EPOCHS), &honest);
    assert_eq!(jobs.len(), 3);
    // Every result is wanted again, but never by the worker that made it.
    let out = s.lease(&alice, &["cuda:0".to_owned()]).unwrap();
    assert!(out.assignments.is_empty() && !out.all_done, "{out:?}");
    assert!(
        jobs.iter()
            .all(|j| state(&s, j) == Some(VerifyState::Wanted))
    );

    let bob = named(&mut s, "bob", 4);
    for _ in 0..3 {
        let a = lease_one(&mut s, &bob).expect("a replay for bob");
        assert_eq!(a.checkpoint_epoch, None, "a replay trains from epoch 0");
        let cfg = ExperimentConfig::from_toml_str(&a.config_toml).unwrap();
        assert_eq!(cfg.training.checkpoint_every, 0);
        assert!(cfg.training.deterministic);
        s.complete_with(a.attempt, &honest_result(EPOCHS), Some(&honest))
            .unwrap();
        assert_eq!(state(&s, &a.job), Some(VerifyState::Bitwise));
        let row = s.store().job(&a.job).unwrap().unwrap();
        assert_eq!((row.status, row.attempts), (JobStatus::Succeeded, 1));
        let runs = s.runs_of(&a.job).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].credentials, ["bob"]);
        assert!(runs[1].comparisons[0].comparison.agrees());
    }
    assert!(lease_one(&mut s, &bob).is_none());
    assert!(s.lease(&bob, &[]).unwrap().all_done);
}

#[test]
fn a_mismatch_gets_a_third_run_whose_majority_is_kept_and_the_liar_is_suspect_until_cleared() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission("\"all\"", 3, "e")).unwrap();
    let mallory = named(&mut s, "mallory", 4);
    let alice = named(&mut s, "alice", 4);
    let bob = named(&mut s, "bob", 4);
    let honest = provenance(4, "ab");
    let lie = provenance(4, "ff");
    // Mallory takes the first job and forges its result.
    let a = lease_one(&mut s, &mallory).unwrap();
    let job = a.job.clone();
    s.complete_with(a.attempt, &forged(), Some(&lie)).unwrap();
    assert_eq!(state(&s, &job), Some(VerifyState::Wanted));
    // Alice replays it (a replay comes before a pending job) and disagrees.
    let r = lease_one(&mut s, &alice).unwrap();
    assert_eq!(r.job, job);
    s.complete_with(r.attempt, &honest_result(EPOCHS), Some(&honest))
        .unwrap();
    assert_eq!(state(&s, &job), Some(VerifyState::Tiebreak));
    // Neither Mallory nor Alice may run the third; Bob does.
    let m = lease_one(&mut s, &mallory).unwrap();
    assert_ne!(m.job, job, "mallory gets a pending job, not the tie-break");
    s.complete_with(m.attempt, &forged(), Some(&lie)).unwrap();
    let a2 = lease_one(&mut s, &alice).unwrap();
    assert_ne!(a2.job, job);
    s.release(a2.attempt).unwrap();
    let t = lease_one(&mut s, &bob).unwrap();
    assert_eq!(t.job, job, "the tie-break waited longest");
    s.complete_with(t.attempt, &honest_result(EPOCHS), Some(&honest))
        .unwrap();
    // The two honest runs agree: their figures stand, Mallory is suspect.
    assert_eq!(state(&s, &job), Some(VerifyState::Bitwise));
    let row = s.store().job(&job).unwrap().unwrap();
    assert_eq!(row.test_accuracy, Some(5.0 / 6.0));
    assert_eq!(row.worker.as_deref(), Some("alice"));
    let suspects = s.suspects().unwrap();
    assert_eq!(suspects.len(), 1);
    assert_eq!(suspects[0].worker, mallory);
    // Its other result is replayed, and it gets nothing, pending jobs or not.
    assert_eq!(state(&s, &m.job), Some(VerifyState::Wanted));
    let out = s.lease(&mallory, &["cuda:0".to_owned()]).unwrap();
    assert!(out.assignments.is_empty());
    // Cleared, it leases again.
    assert!(s.clear_suspect("nobody").is_err());
    s.clear_suspect("mallory").unwrap();
    assert!(s.suspects().unwrap().is_empty());
    assert!(lease_one(&mut s, &mallory).is_some());
}

#[test]
fn replays_do_not_count_against_max_attempts() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission("\"all\"", 1, "e")).unwrap();
    let alice = named(&mut s, "alice", 4);
    let bob = named(&mut s, "bob", 4);
    let carol = named(&mut s, "carol", 4);
    let honest = provenance(4, "ab");
    let a = lease_one(&mut s, &alice).unwrap();
    let job = a.job.clone();
    s.complete_with(a.attempt, &honest_result(EPOCHS), Some(&honest))
        .unwrap();
    // Bob's replay fails twice, transiently: with max_attempts = 1 an
    // original would have failed the job at the first.
    for _ in 0..2 {
        let r = lease_one(&mut s, &bob).unwrap();
        assert_eq!(r.job, job);
        let outcome = s.fail(r.attempt, "disk full", FailureClass::Transient);
        assert_eq!(outcome.unwrap(), FailOutcome::Retry);
        let row = s.store().job(&job).unwrap().unwrap();
        assert_eq!((row.status, row.failures), (JobStatus::Succeeded, 0));
        assert_eq!(state(&s, &job), Some(VerifyState::Wanted));
    }
    let r = lease_one(&mut s, &carol).unwrap();
    assert_eq!(r.job, job);
    s.complete_with(r.attempt, &honest_result(EPOCHS), Some(&honest))
        .unwrap();
    assert_eq!(state(&s, &job), Some(VerifyState::Bitwise));
    assert_eq!(s.store().job(&job).unwrap().unwrap().failures, 0);
}

#[test]
fn a_slot_that_cannot_give_the_same_bits_waits_then_compares_within_tolerance() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission("\"all\"", 3, "e")).unwrap();
    s.set_replay_wait_seconds(60);
    let alice = named(&mut s, "alice", 4);
    let bob = named(&mut s, "bob", 8);
    let a = lease_one(&mut s, &alice).unwrap();
    s.complete_with(
        a.attempt,
        &honest_result(EPOCHS),
        Some(&provenance(4, "ab")),
    )
    .unwrap();
    // Bob's slot runs 8 threads: it gets pending jobs, not the replay.
    let b = lease_one(&mut s, &bob).unwrap();
    assert_ne!(b.job, a.job);
    s.release(b.attempt).unwrap();
    clock.advance_ms(60_000);
    let r = lease_one(&mut s, &bob).unwrap();
    assert_eq!(r.job, a.job, "after the wait any other credential may");
    let mut close = honest_result(EPOCHS);
    close.test_loss = 0.21;
    s.complete_with(r.attempt, &close, Some(&provenance(8, "cd")))
        .unwrap();
    assert_eq!(state(&s, &a.job), Some(VerifyState::Tolerance));
}

#[test]
fn a_replay_keeps_the_jobs_epochs_and_a_reused_job_keeps_its_state() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission("\"all\"", 3, "first")).unwrap();
    let alice = named(&mut s, "alice", 4);
    let bob = named(&mut s, "bob", 4);
    let honest = provenance(4, "ab");
    let jobs = run_all(&mut s, &alice, &honest_result(EPOCHS), &honest);
    let r = lease_one(&mut s, &bob).unwrap();
    // Its worker saves a checkpoint after the last epoch anyway: the upload
    // is refused as not wanted, not fenced (the replay goes on).
    let upload = s.check_upload(r.attempt, 1).unwrap_err();
    assert!(
        matches!(upload, SchedulerError::BadRequest { .. }),
        "{upload:?}"
    );
    let mut other = sched_support::metrics(1);
    other.train_loss = 0.7;
    assert!(!s.record_epoch(r.attempt, &other).unwrap());
    let stored = s.store().epochs(&r.job).unwrap();
    assert_eq!(
        stored[0].train_loss, 0.1,
        "a replay's epoch is not the job's"
    );
    s.complete_with(r.attempt, &honest_result(EPOCHS), Some(&honest))
        .unwrap();
    // Another experiment over the same jobs (another name, a smaller share).
    let out = s.submit(&submission("0.5", 3, "second")).unwrap();
    assert_eq!(out.jobs_reused, 3);
    assert_eq!(state(&s, &r.job), Some(VerifyState::Bitwise));
    let waiting: Vec<_> = jobs.iter().filter(|j| **j != r.job).collect();
    assert!(
        waiting
            .iter()
            .all(|j| state(&s, j) == Some(VerifyState::Wanted))
    );
}

#[test]
fn a_suspect_on_the_shared_token_stays_suspect_when_it_registers_again() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission("\"all\"", 3, "e")).unwrap();
    // Mallory works on the shared token; Alice and Bob have credentials.
    let mallory = s.register_worker(&registration_on("mallory", 4)).unwrap();
    let alice = named(&mut s, "alice", 4);
    let bob = named(&mut s, "bob", 4);
    let job = make_suspect(&mut s, &mallory, [&alice, &bob], EPOCHS);
    let reason = s.suspects().unwrap()[0].reason.clone();

    // A new registration under its name and host (the old id still alive)
    // gets a new id, suspect too: the same reason and job, no leases.
    clock.advance_s(3);
    let again = s.register_worker(&registration_on("mallory", 4)).unwrap();
    assert_ne!(again, mallory);
    let suspects = s.suspects().unwrap();
    let new = suspects.iter().find(|x| x.worker == again).unwrap();
    assert_eq!(new.job, job.as_str());
    assert_eq!(new.name, "mallory");
    assert_eq!(new.since_ms, T0 + 3_000);
    assert_eq!(
        new.reason,
        format!("{reason}; re-registered as {again} (was {mallory})")
    );
    let out = s.lease(&again, &["cuda:0".to_owned()]).unwrap();
    assert!(out.assignments.is_empty() && !out.all_done, "{out:?}");

    // Gone for a lease timeout, the name and host get a row back: suspect
    // still (and the reason names the first suspect, not a chain).
    clock.advance_s(3_600);
    let third = s.register_worker(&registration_on("mallory", 4)).unwrap();
    assert!(lease_one(&mut s, &third).is_none());
    let suspects = s.suspects().unwrap();
    let row = suspects.iter().find(|x| x.worker == third).unwrap();
    assert!(row.reason.starts_with(&reason) && row.reason.matches("re-registered").count() <= 1);

    // Another name, or the same name on another host, is another worker.
    let carol = s.register_worker(&registration_on("carol", 4)).unwrap();
    let a = lease_one(&mut s, &carol).unwrap();
    s.release(a.attempt).unwrap();
    let mut elsewhere = registration_on("mallory", 4);
    elsewhere.host = "other-host".into();
    let elsewhere = s.register_worker(&elsewhere).unwrap();
    let a = lease_one(&mut s, &elsewhere).unwrap();
    s.release(a.attempt).unwrap();
    assert!(
        s.suspects()
            .unwrap()
            .iter()
            .all(|x| x.worker != carol && x.worker != elsewhere)
    );

    // Cleared by name, every id under that name may lease again.
    let ids = s.suspects().unwrap().len();
    assert!(ids >= 2, "the first id and the new one at least");
    assert_eq!(s.clear_suspect("mallory").unwrap(), ids);
    assert!(s.suspects().unwrap().is_empty());
    assert!(lease_one(&mut s, &third).is_some());
}

#[test]
fn the_worker_whose_checkpoint_an_outvoted_result_resumed_is_suspect_too() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    s.submit(&submission("\"all\"", 3, "e")).unwrap();
    let donor = named(&mut s, "donor", 4);
    let mallory = named(&mut s, "mallory", 4);
    let alice = named(&mut s, "alice", 4);
    let bob = named(&mut s, "bob", 4);
    // The donor trains an epoch, checkpoints it and hands the job back.
    let d = lease_one(&mut s, &donor).unwrap();
    s.record_epoch(d.attempt, &sched_support::metrics(1))
        .unwrap();
    s.put_checkpoint(d.attempt, 1, b"epoch one").unwrap();
    s.release(d.attempt).unwrap();
    // Mallory resumes it and forges the result.
    let m = lease_one(&mut s, &mallory).unwrap();
    assert_eq!((&m.job, m.checkpoint_epoch), (&d.job, Some(1)));
    s.complete_with(m.attempt, &forged(), Some(&provenance(4, "ff")))
        .unwrap();
    // Two honest replays outvote it: Mallory and the donor are suspect.
    for w in [&alice, &bob] {
        let r = lease_one(&mut s, w).unwrap();
        assert_eq!(r.job, d.job, "neither donor nor mallory replays it");
        s.complete_with(
            r.attempt,
            &honest_result(EPOCHS),
            Some(&provenance(4, "ab")),
        )
        .unwrap();
    }
    assert_eq!(state(&s, &d.job), Some(VerifyState::Bitwise));
    let suspects = s.suspects().unwrap();
    let mut who: Vec<&WorkerId> = suspects.iter().map(|x| &x.worker).collect();
    who.sort();
    let mut want = vec![&donor, &mallory];
    want.sort();
    assert_eq!(who, want, "{suspects:?}");
    let donor_record = suspects.iter().find(|x| x.worker == donor).unwrap();
    assert!(
        donor_record
            .reason
            .contains("its checkpoint went into mallory's result"),
        "{}",
        donor_record.reason
    );
    assert!(
        s.lease(&donor, &["cuda:0".to_owned()])
            .unwrap()
            .assignments
            .is_empty()
    );
}

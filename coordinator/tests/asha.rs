//! Successive halving in the scheduler (`prune = "asha"`): at a rung, a
//! configuration whose mean validation accuracy falls below the cut stops,
//! every unfinished job of it, the worker hears it, the others run on; test
//! accuracy never decides; a job at its last epoch is never stopped. Plain
//! Rust, no network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use sched_support::{scheduler, submission_over, sweep_epoch as epoch};
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::prune::verdict::PruneKind;
use spikecv_coordinator::scheduler::{
    Assignment, AttemptId, FailureClass, ManualClock, Progress, Scheduler, SlotInfo, Submission,
    WorkerId, WorkerRegistration,
};

const T0: i64 = 1_700_000_000_000;

/// Three learning rates, one seed, two folds: six jobs, 9 epochs, rungs at
/// epochs 1 and 3 (η = 3).
fn submission() -> Submission {
    submission_over(
        "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [0]\n\
         variants = [\"whole\"]\n[training]\nepochs = 9\n\
         [sweep]\n\"training.lr\" = [0.001, 0.01, 0.0000001]\nprune = \"asha\"\nreduction_factor = 3\n",
        8,
        None,
        &["cat", "dog"],
    )
}

/// Submits and leases all six jobs; the assignments by (configuration, fold).
fn start(s: &mut Scheduler) -> (WorkerId, Vec<Vec<Assignment>>) {
    let sub = submission();
    s.submit(&sub).unwrap();
    let w = s
        .register_worker(&WorkerRegistration {
            name: "w".into(),
            host: "node1".into(),
            slots: (0..6)
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
        .unwrap();
    let lease = s.lease(&w, &vec!["cpu".to_owned(); 6]).unwrap();
    assert_eq!(lease.assignments.len(), 6);
    let by = (0..3)
        .map(|configuration| {
            (0..2)
                .map(|fold| {
                    let planned = sub
                        .jobs
                        .iter()
                        .find(|j| j.configuration == configuration && j.fold == fold)
                        .unwrap();
                    lease
                        .assignments
                        .iter()
                        .find(|a| a.job == planned.id)
                        .unwrap()
                        .clone()
                })
                .collect()
        })
        .collect();
    (w, by)
}

/// Records epoch `e` with validation accuracy `val` for `attempt`; whether
/// the job was told to stop.
fn stops(s: &mut Scheduler, attempt: AttemptId, e: u32, val: f64) -> bool {
    s.record_epoch(attempt, &epoch(e, val, 0.0)).unwrap()
}

fn status(s: &Scheduler, job: &JobId) -> JobStatus {
    s.store().job(job).unwrap().unwrap().status
}

#[test]
fn a_configuration_below_the_cut_at_a_rung_stops_whole() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (w, a) = start(&mut s);
    // Rung 1. The first configuration there goes on whatever its score;
    // test accuracy is the opposite of validation accuracy and never counts.
    assert!(
        !s.record_epoch(a[0][0].attempt, &epoch(1, 0.5, 0.1))
            .unwrap()
    );
    assert!(!stops(&mut s, a[1][0].attempt, 1, 0.9));
    // Configuration 2 at 0.2 against [0.5, 0.9]: cut at 2/3, 0.767. Stopped,
    // both its jobs, though its fold 1 has reported nothing yet.
    assert!(
        s.record_epoch(a[2][0].attempt, &epoch(1, 0.2, 1.0))
            .unwrap()
    );
    for job in &a[2] {
        assert_eq!(status(&s, &job.job), JobStatus::Pruned);
    }
    let record = s.store().job(&a[2][0].job).unwrap().unwrap();
    let verdict = record.pruned.clone().expect("the verdict is kept");
    assert_eq!(
        (verdict.rule, verdict.epoch, verdict.compared_with),
        (PruneKind::Asha, 1, 2)
    );
    assert!(
        verdict.to_string().contains("successive halving"),
        "{verdict}"
    );
    // Its worker hears it: the heartbeat lists the other job's attempt to
    // cancel, and a later report of it is refused.
    let beat = s
        .heartbeat(
            &w,
            &[Progress {
                attempt: a[2][1].attempt,
                epoch: 0,
                of: 9,
            }],
        )
        .unwrap();
    assert_eq!(beat.cancel, vec![a[2][1].attempt]);
    assert!(
        s.record_epoch(a[2][1].attempt, &epoch(1, 0.95, 0.0))
            .is_err()
    );
    // Configuration 0's fold 1 brings its mean to 0.7, above the cut of
    // [0.2, 0.9] (0.667): it runs on, as does configuration 1.
    assert!(!stops(&mut s, a[0][1].attempt, 1, 0.9));
    assert!(!stops(&mut s, a[1][1].attempt, 1, 0.9));
    // Epoch 2 is not a rung: a collapse there stops nothing.
    assert!(!stops(&mut s, a[0][0].attempt, 2, 0.0));
    for (c, jobs) in a[..2].iter().enumerate() {
        for (fold, job) in jobs.iter().enumerate() {
            assert_eq!(status(&s, &job.job), JobStatus::Running, "{c} {fold}");
        }
    }
}

#[test]
fn a_job_at_its_last_epoch_is_never_stopped() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_w, a) = start(&mut s);
    // Configuration 1's fold 1 runs ahead to its last epoch first.
    for e in 1..=9 {
        assert!(!stops(&mut s, a[1][1].attempt, e, 0.1));
    }
    assert!(!stops(&mut s, a[0][0].attempt, 1, 0.9));
    assert!(!stops(&mut s, a[2][0].attempt, 1, 0.8));
    // Configuration 1's fold 0 at 0.1: mean 0.1, far below: its unfinished
    // job stops, the one at its last epoch keeps its result.
    assert!(stops(&mut s, a[1][0].attempt, 1, 0.1));
    assert_eq!(status(&s, &a[1][0].job), JobStatus::Pruned);
    assert_eq!(status(&s, &a[1][1].job), JobStatus::Running);
}

#[test]
fn a_liars_rung_score_stops_a_configuration_until_its_attempt_fails() {
    let clock = ManualClock::new(T0);
    let mut s = scheduler(&clock);
    let (_, a) = start(&mut s);
    // Configuration 1 reports first; configuration 0's fold 0 lies at the
    // rung. Configuration 2 at 0.7 against [0.6, 1.0]: cut at 2/3, 0.867;
    // stopped on the liar's score.
    assert!(!stops(&mut s, a[1][0].attempt, 1, 0.6));
    assert!(!stops(&mut s, a[0][0].attempt, 1, 1.0));
    assert!(stops(&mut s, a[2][0].attempt, 1, 0.7));
    for job in &a[2] {
        assert_eq!(status(&s, &job.job), JobStatus::Pruned);
    }
    // The liar's attempt fails: both jobs of configuration 2 are back.
    s.fail(a[0][0].attempt, "gone", FailureClass::Transient)
        .unwrap();
    for job in &a[2] {
        assert_eq!(status(&s, &job.job), JobStatus::Pending);
    }
    // Leased again, the same 0.7 is judged against configuration 1's 0.6
    // alone (the failed attempt's score is left out): it goes on.
    let w = s
        .register_worker(&sched_support::registration("again", 3))
        .unwrap();
    let again = s.lease(&w, &vec!["cuda:0".to_owned(); 3]).unwrap();
    let retried = again
        .assignments
        .iter()
        .find(|x| x.job == a[2][0].job)
        .unwrap();
    assert!(!stops(&mut s, retried.attempt, 1, 0.7));
    assert_eq!(status(&s, &a[2][0].job), JobStatus::Running);
}

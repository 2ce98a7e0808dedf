//! The scheduler against a model: a small, plainly written model of the job
//! state machine (vectors and maps: jobs pending / leased / running /
//! succeeded / failed, attempts with their deadlines and epoch clocks,
//! workers alive or lost), driven by thousands of seeded random call
//! sequences from several workers, honest and hostile (forged credentials,
//! another worker's attempt, unknown attempts, late, repeated and
//! out-of-order reports, results and metrics out of range), with time
//! moving. After every call the implementation's answer (accepted, or the
//! kind of refusal; the jobs a lease hands out, the attempts a heartbeat
//! cancels, what a failure or an expiry did) and its state (each job's
//! state, attempts, failures, lost leases and current attempt; each
//! attempt's openness and last epoch; each worker's state) equal the
//! model's. The model is written from the documented rules in
//! `scheduler/mod.rs` and the operations' docs, not from the store's tables.
//!
//! One sequence in [`VERIFY_EVERY`] runs an experiment with `[protocol]
//! verify = "all"` and workers with credentials of their own: the model
//! adds each job's runs (the original, replays and third runs; honest or a
//! forgery that passes every check), replay attempts (leased before a
//! pending job to a worker that has not run the job, longest waiting first;
//! their heartbeats, epochs, failures, releases and expiry touch nothing of
//! the job; five failed or lost leave it unverified), the decision of a
//! replay and a third run, and suspect workers (no leases). The others run
//! exactly as before `verify` existed.
//!
//! Cost: every sequence starts from an in-memory copy of one store with the
//! experiment already submitted (`Store::copy_in_memory`; migrating and
//! submitting afresh took more than half the time), and the state after a
//! call is read with one query per table; the store's typed reads of the
//! jobs are compared with that read at each sequence's end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use std::collections::{BTreeMap, BTreeSet};

use sched_support::{metrics, registration, submission_over};
use spikecv_common::experiment::job::{EpochMetrics, JobResult, JobStatus};
use spikecv_common::experiment::plan::JobId;
use spikecv_coordinator::scheduler::{
    AttemptId, CredentialName, Credentials, FailOutcome, FailureClass, ManualClock, Progress,
    Scheduler, SchedulerError, SchedulerSettings, Submission, WorkerId, WorkerSecret, WorkerState,
};
use spikecv_coordinator::states::VerifyState;
use spikecv_coordinator::store::Store;

/// Epochs every job trains.
const EPOCHS: u32 = 3;
/// Transient failures a job may have.
const MAX_ATTEMPTS: u32 = 2;
/// Seconds an attempt may go without a new epoch.
const EPOCH_TIMEOUT_MS: i64 = 60_000;
/// Milliseconds a lease lasts without a heartbeat.
const LEASE_TIMEOUT_MS: i64 = 30_000;
/// Lost leases before a job fails.
const MAX_LOST: u32 = 3;
/// Workers a sequence registers at most.
const MAX_WORKERS: usize = 4;
/// Sequences per run, calls per sequence.
const SEQUENCES: u64 = 10_000;
const CALLS: usize = 30;
/// One sequence in this many verifies every job.
const VERIFY_EVERY: u64 = 8;
/// Calls of a verifying sequence: a replay, and a third run after a forged
/// result, need a job finished first.
const VERIFY_CALLS: usize = 90;

/// The experiment; `verify`: with `[protocol] verify = "all"`.
fn submission(verify: bool) -> Submission {
    let verify = if verify { "verify = \"all\"\n" } else { "" };
    submission_over(
        &format!(
            "[data]\nroot = \"d\"\n[protocol]\nfolds = 3\nseeds = [0, 1]\nvariants = [\"whole\"]\n\
             max_attempts = {MAX_ATTEMPTS}\nepoch_timeout_s = {}\n{verify}[training]\nepochs = {EPOCHS}\n",
            EPOCH_TIMEOUT_MS / 1000
        ),
        9,
        None,
        // Two classes, three test recordings per fold: six test samples.
        &["a", "b"],
    )
}

/// xorshift64*: small, seeded, enough for choosing calls.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

fn honest_result() -> JobResult {
    sched_support::honest_result(EPOCHS)
}

/// A hostile result, and whether it is refused whatever the attempt (its
/// numbers are wrong in themselves) or only against the job (epochs,
/// classes, test set size).
fn hostile_result(kind: usize) -> (JobResult, bool) {
    let honest = honest_result();
    match kind {
        0 => (
            JobResult {
                test_accuracy: 1.0,
                ..honest
            },
            true,
        ),
        1 => (
            JobResult {
                train_seconds: f64::INFINITY,
                ..honest
            },
            true,
        ),
        2 => (
            JobResult {
                epochs: vec![metrics(2), metrics(1)],
                ..honest
            },
            true,
        ),
        3 => (
            JobResult {
                best_epoch: EPOCHS + 1,
                ..honest
            },
            false,
        ),
        4 => (
            JobResult {
                test_accuracy: 1.0,
                confusion: vec![vec![2, 0, 0], vec![0, 2, 0], vec![0, 0, 2]],
                ..honest
            },
            false,
        ),
        _ => (
            JobResult {
                confusion: vec![vec![30, 0], vec![10, 20]],
                ..honest
            },
            false,
        ),
    }
}

/// A forged result that passes every check: only a replay tells it from an
/// honest one (its test loss is far from the honest run's).
fn forged_result() -> JobResult {
    JobResult {
        test_loss: 0.9,
        ..honest_result()
    }
}

/// Replays of a job that may fail or be lost before it stays unverified.
const MAX_FAILED_REPLAYS: usize = 5;

/// What a call answered, as far as the model predicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Ok,
    Leased(Vec<(u64, usize)>, bool),
    Cancel(Vec<u64>),
    Failed(FailOutcome),
    Expired(Vec<u64>),
    BadRequest,
    Fenced,
    UnknownAttempt,
    UnknownWorker,
    WrongSecret,
    NotOwner,
}

fn refusal(e: &SchedulerError) -> Answer {
    match e {
        SchedulerError::BadRequest { .. } => Answer::BadRequest,
        SchedulerError::Fenced { .. } => Answer::Fenced,
        SchedulerError::UnknownAttempt { .. } => Answer::UnknownAttempt,
        SchedulerError::UnknownWorker { .. } => Answer::UnknownWorker,
        SchedulerError::WrongSecret { .. } => Answer::WrongSecret,
        SchedulerError::NotOwner { .. } => Answer::NotOwner,
        other => panic!("a refusal the model does not know: {other}"),
    }
}

/// A job in the model.
#[derive(Debug, Clone, PartialEq)]
struct MJob {
    status: JobStatus,
    attempts: u32,
    failures: u32,
    lost: u32,
    current: Option<u64>,
    /// Where it stands in deterministic replay (`[protocol] verify`).
    verify: Option<VerifyState>,
}

/// A job's runs under `verify`: (worker, honest), the original first, and
/// since when a run is wanted.
#[derive(Debug, Clone, Default)]
struct MRuns {
    runs: Vec<(usize, bool)>,
    since: i64,
}

/// An attempt in the model.
#[derive(Debug, Clone, PartialEq)]
struct MAttempt {
    job: usize,
    worker: usize,
    open: bool,
    last_epoch: Option<u32>,
    deadline: i64,
    progress: i64,
    /// A replay of a succeeded job (`verify`).
    replay: bool,
    /// A replay that failed or was lost.
    failed_replay: bool,
}

/// A worker in the model (`None` state: forgotten by the store).
#[derive(Debug, Clone, PartialEq)]
struct MWorker {
    slots: usize,
    lost: bool,
    last_seen: i64,
    forgotten: bool,
    ever_leased: bool,
}

/// The model: plain vectors and a map, the rules written out.
#[derive(Debug, Default)]
struct Model {
    now: i64,
    jobs: Vec<MJob>,
    attempts: BTreeMap<u64, MAttempt>,
    workers: Vec<MWorker>,
    next_attempt: u64,
    /// The experiment verifies every job; workers have credentials of their own.
    verify: bool,
    runs: Vec<MRuns>,
    suspects: BTreeSet<usize>,
}

impl Model {
    fn new(jobs: usize, now: i64) -> Self {
        Model {
            now,
            jobs: vec![
                MJob {
                    status: JobStatus::Pending,
                    attempts: 0,
                    failures: 0,
                    lost: 0,
                    current: None,
                    verify: None,
                };
                jobs
            ],
            runs: vec![MRuns::default(); jobs],
            next_attempt: 1,
            ..Model::default()
        }
    }

    fn touch(&mut self, w: usize) {
        let w = &mut self.workers[w];
        w.last_seen = self.now;
        w.lost = false;
    }

    /// The attempt is its job's current one and the job is live.
    fn current(&self, a: u64) -> bool {
        self.attempts.get(&a).is_some_and(|at| {
            let j = &self.jobs[at.job];
            at.open
                && j.current == Some(a)
                && matches!(j.status, JobStatus::Leased | JobStatus::Running)
        })
    }

    /// The fence every attempt operation passes first.
    fn fence(&self, a: u64) -> Result<(), Answer> {
        if !self.attempts.contains_key(&a) {
            Err(Answer::UnknownAttempt)
        } else if !self.current(a) {
            Err(Answer::Fenced)
        } else {
            Ok(())
        }
    }

    fn register(&mut self, slots: usize) -> usize {
        // A shared-token registration forgets idle lost workers; a named
        // one (under `verify`) does not.
        let verify = self.verify;
        for w in self.workers.iter_mut().filter(|_| !verify) {
            if w.lost && !w.ever_leased {
                w.forgotten = true;
            }
        }
        self.workers.push(MWorker {
            slots,
            lost: false,
            last_seen: self.now,
            forgotten: false,
            ever_leased: false,
        });
        self.workers.len() - 1
    }

    fn authorize(&self, caller: usize, secret_ok: bool, a: u64) -> Result<(), Answer> {
        if !secret_ok || self.workers[caller].forgotten {
            return Err(Answer::WrongSecret);
        }
        match self.attempts.get(&a) {
            None => Err(Answer::UnknownAttempt),
            Some(at) if at.worker != caller => Err(Answer::NotOwner),
            Some(_) => Ok(()),
        }
    }

    fn lease(&mut self, w: usize, asked: usize) -> Answer {
        if self.workers[w].forgotten {
            return Answer::UnknownWorker;
        }
        self.touch(w);
        let held = self
            .attempts
            .values()
            .filter(|a| a.open && a.worker == w)
            .count();
        let room = self.workers[w].slots.saturating_sub(held).min(asked);
        let mut out = Vec::new();
        if self.suspects.contains(&w) {
            return Answer::Leased(out, self.all_done());
        }
        for _ in 0..room {
            if let Some(j) = self.wanted_replay(w) {
                let id = self.open_attempt(j, w, true);
                out.push((id, j));
                continue;
            }
            let Some(j) = self
                .jobs
                .iter()
                .position(|j| j.status == JobStatus::Pending)
            else {
                break;
            };
            let id = self.open_attempt(j, w, false);
            let job = &mut self.jobs[j];
            job.status = JobStatus::Leased;
            job.attempts += 1;
            job.current = Some(id);
            out.push((id, j));
        }
        Answer::Leased(out, self.all_done())
    }

    fn all_done(&self) -> bool {
        self.jobs.iter().all(|j| {
            let unfinished = matches!(
                j.status,
                JobStatus::Pending | JobStatus::Leased | JobStatus::Running
            );
            let wants_run =
                j.status == JobStatus::Succeeded && j.verify.is_some_and(|v| v.wants_run());
            !unfinished && !wants_run
        })
    }

    fn open_attempt(&mut self, j: usize, w: usize, replay: bool) -> u64 {
        let id = self.next_attempt;
        self.next_attempt += 1;
        self.attempts.insert(
            id,
            MAttempt {
                job: j,
                worker: w,
                open: true,
                last_epoch: None,
                deadline: self.now + LEASE_TIMEOUT_MS,
                progress: self.now,
                replay,
                failed_replay: false,
            },
        );
        self.workers[w].ever_leased = true;
        id
    }

    /// The succeeded job wanting a run that `w` may take: none of its runs
    /// is `w`'s, no replay of it is open; the longest waiting first.
    fn wanted_replay(&self, w: usize) -> Option<usize> {
        (0..self.jobs.len())
            .filter(|&j| {
                let job = &self.jobs[j];
                job.status == JobStatus::Succeeded
                    && job.verify.is_some_and(|v| v.wants_run())
                    && !self.runs[j].runs.iter().any(|(rw, _)| *rw == w)
                    && !self
                        .attempts
                        .values()
                        .any(|a| a.job == j && a.replay && a.open)
            })
            .min_by_key(|&j| (self.runs[j].since, j))
    }

    fn set_verify(&mut self, j: usize, state: VerifyState) {
        self.jobs[j].verify = Some(state);
        self.runs[j].since = self.now;
    }

    /// After a replay of `j` ended without a result.
    fn give_up_if_failing(&mut self, j: usize) {
        let failed = self
            .attempts
            .values()
            .filter(|a| a.job == j && a.failed_replay)
            .count();
        if failed >= MAX_FAILED_REPLAYS {
            self.set_verify(j, VerifyState::Unverified);
        }
    }

    fn suspect(&mut self, w: usize) {
        self.suspects.insert(w);
        for j in 0..self.jobs.len() {
            if self.runs[j].runs.first().is_some_and(|(o, _)| *o == w)
                && self.jobs[j].status == JobStatus::Succeeded
                && self.jobs[j].verify.is_none()
            {
                self.set_verify(j, VerifyState::Wanted);
            }
        }
    }

    /// A replay's result: compared with every earlier run (runs agree
    /// when both are honest or both the same forgery), then decided.
    fn decide(&mut self, j: usize, w: usize, honest: bool) {
        let earlier = self.runs[j].runs.clone();
        self.runs[j].runs.push((w, honest));
        match earlier.as_slice() {
            [(_, o)] => {
                let state = if *o == honest {
                    VerifyState::Tolerance
                } else {
                    VerifyState::Tiebreak
                };
                self.set_verify(j, state);
            }
            [(ow, o), (rw, r)] => {
                let state = match (*o == honest, *r == honest) {
                    (true, agrees_with_replay) => {
                        if !agrees_with_replay {
                            self.suspect(*rw);
                        }
                        VerifyState::Tolerance
                    }
                    (false, true) => {
                        self.suspect(*ow);
                        VerifyState::Tolerance
                    }
                    (false, false) => VerifyState::Disputed,
                };
                self.set_verify(j, state);
            }
            _ => {}
        }
    }

    fn is_replay(&self, a: u64) -> bool {
        self.attempts.get(&a).is_some_and(|at| at.replay)
    }

    /// A replay's fence: its attempt still open.
    fn replay_fence(&self, a: u64) -> Result<(), Answer> {
        if self.attempts[&a].open {
            Ok(())
        } else {
            Err(Answer::Fenced)
        }
    }

    fn extend(&mut self, a: u64) {
        let now = self.now;
        let at = self.attempts.get_mut(&a).unwrap();
        at.deadline = at.deadline.max(now + LEASE_TIMEOUT_MS);
        let w = at.worker;
        self.touch(w);
    }

    fn heartbeat(&mut self, w: usize, attempts: &[u64]) -> Answer {
        if self.workers[w].forgotten {
            return Answer::UnknownWorker;
        }
        // Every heartbeat says epoch 1: progress more than one epoch below
        // what a current attempt of its own reported refuses the whole
        // heartbeat (nothing changes, not even its last-seen time).
        let behind = attempts.iter().any(|a| {
            let live = self.current(*a) || (self.is_replay(*a) && self.attempts[a].open);
            live && self.attempts[a].worker == w
                && self.attempts[a].last_epoch.is_some_and(|l| l > 2)
        });
        if behind {
            return Answer::BadRequest;
        }
        self.touch(w);
        let mut cancel = Vec::new();
        for &a in attempts {
            if self.is_replay(a) {
                if self.attempts[&a].open && self.attempts[&a].worker == w {
                    self.extend(a);
                } else {
                    cancel.push(a);
                }
                continue;
            }
            if self.current(a) && self.attempts[&a].worker == w {
                self.extend(a);
                let j = self.attempts[&a].job;
                self.jobs[j].status = JobStatus::Running;
            } else {
                cancel.push(a);
            }
        }
        Answer::Cancel(cancel)
    }

    /// `sane`: the metrics are in range in themselves (else refused first).
    fn record_epoch(&mut self, a: u64, epoch: u32, sane: bool) -> Answer {
        if !sane || epoch == 0 {
            return Answer::BadRequest;
        }
        let replay = self.is_replay(a);
        let fenced = if replay {
            self.replay_fence(a)
        } else {
            self.fence(a)
        };
        if let Err(e) = fenced {
            return e;
        }
        let at = &self.attempts[&a];
        if epoch > EPOCHS || at.last_epoch.is_some_and(|l| epoch < l) {
            return Answer::BadRequest;
        }
        let now = self.now;
        let at = self.attempts.get_mut(&a).unwrap();
        if at.last_epoch.is_none_or(|l| epoch > l) {
            at.progress = now;
        }
        at.last_epoch = Some(at.last_epoch.unwrap_or(0).max(epoch));
        let j = at.job;
        self.extend(a);
        if !replay {
            self.jobs[j].status = JobStatus::Running;
        }
        Answer::Ok
    }

    /// `wrong_in_itself`: refused before the fence; `wrong_for_job`: after.
    /// `honest`: an accepted result is the honest one (else a forgery).
    fn complete(
        &mut self,
        a: u64,
        wrong_in_itself: bool,
        wrong_for_job: bool,
        honest: bool,
    ) -> Answer {
        if wrong_in_itself {
            return Answer::BadRequest;
        }
        let replay = self.is_replay(a);
        let fenced = if replay {
            self.replay_fence(a)
        } else {
            self.fence(a)
        };
        if let Err(e) = fenced {
            return e;
        }
        if wrong_for_job {
            return Answer::BadRequest;
        }
        let at = self.attempts.get_mut(&a).unwrap();
        at.open = false;
        let (j, w) = (at.job, at.worker);
        self.touch(w);
        if replay {
            self.decide(j, w, honest);
            return Answer::Ok;
        }
        let job = &mut self.jobs[j];
        job.status = JobStatus::Succeeded;
        job.current = None;
        if self.verify {
            self.runs[j].runs.push((w, honest));
            self.set_verify(j, VerifyState::Wanted);
        }
        Answer::Ok
    }

    /// A replay ends without a result (`failed`: failed, else released).
    fn end_replay(&mut self, a: u64, failed: bool) -> Answer {
        if let Err(e) = self.replay_fence(a) {
            return e;
        }
        let at = self.attempts.get_mut(&a).unwrap();
        at.open = false;
        at.failed_replay = failed;
        let (j, w) = (at.job, at.worker);
        self.touch(w);
        self.give_up_if_failing(j);
        if failed {
            Answer::Failed(FailOutcome::Retry)
        } else {
            Answer::Ok
        }
    }

    fn fail(&mut self, a: u64, class: FailureClass) -> Answer {
        if self.is_replay(a) {
            return self.end_replay(a, true);
        }
        if let Err(e) = self.fence(a) {
            return e;
        }
        let at = self.attempts.get_mut(&a).unwrap();
        at.open = false;
        let (j, w) = (at.job, at.worker);
        let job = &mut self.jobs[j];
        job.failures += 1;
        job.current = None;
        let outcome = if class == FailureClass::Deterministic || job.failures >= MAX_ATTEMPTS {
            job.status = JobStatus::Failed;
            FailOutcome::Failed
        } else {
            job.status = JobStatus::Pending;
            FailOutcome::Retry
        };
        self.touch(w);
        Answer::Failed(outcome)
    }

    fn release(&mut self, a: u64) -> Answer {
        if self.is_replay(a) {
            return self.end_replay(a, false);
        }
        if let Err(e) = self.fence(a) {
            return e;
        }
        let at = self.attempts.get_mut(&a).unwrap();
        at.open = false;
        let (j, w) = (at.job, at.worker);
        self.jobs[j].status = JobStatus::Pending;
        self.jobs[j].current = None;
        self.touch(w);
        Answer::Ok
    }

    fn expire(&mut self) -> Answer {
        let now = self.now;
        let mut out: Vec<u64> = self
            .attempts
            .iter()
            .filter(|(_, a)| a.open && a.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let stalled: Vec<u64> = self
            .attempts
            .iter()
            .filter(|(id, a)| a.open && a.progress + EPOCH_TIMEOUT_MS <= now && !out.contains(id))
            .map(|(id, _)| *id)
            .collect();
        out.extend(stalled);
        for a in &out {
            let at = self.attempts.get_mut(a).unwrap();
            at.open = false;
            if at.replay {
                at.failed_replay = true;
                let j = at.job;
                self.give_up_if_failing(j);
                continue;
            }
            let job = &mut self.jobs[at.job];
            job.current = None;
            job.lost += 1;
            job.status = if job.lost >= MAX_LOST {
                JobStatus::Failed
            } else {
                JobStatus::Pending
            };
        }
        for w in &mut self.workers {
            if !w.forgotten && !w.lost && w.last_seen <= now - LEASE_TIMEOUT_MS {
                w.lost = true;
            }
        }
        Answer::Expired(out)
    }
}

/// A worker as the test drives it.
struct Driven {
    id: WorkerId,
    secret: WorkerSecret,
}

/// The implementation's jobs in the model's terms, as the store's typed
/// reads give them (`Store::job`, `Scheduler::verify_state`): checked once
/// a sequence against [`observed`]'s plain read of the same columns.
fn observed_jobs(s: &Scheduler, jobs: &[JobId]) -> Vec<MJob> {
    jobs.iter()
        .map(|id| {
            let j = s.store().job(id).unwrap().unwrap();
            MJob {
                status: j.status,
                attempts: j.attempts,
                failures: j.failures,
                lost: j.lost_attempts,
                current: j.current_attempt.map(|a| a.0),
                verify: s.verify_state(id).unwrap(),
            }
        })
        .collect()
}

/// The implementation's state in the model's terms, read after every call:
/// each job's columns in one query (the typed reads parse every job's whole
/// row, split and config included, and cost most of the time a call took),
/// each attempt, each worker, the suspects.
fn observed(s: &Scheduler, jobs: &[JobId], workers: &[Driven]) -> (Vec<MJob>, Vec<String>) {
    let conn = s.store().conn();
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, status, attempts, failures, lost_attempts, current_attempt, verify
             FROM jobs",
        )
        .unwrap();
    let mut by_id: BTreeMap<String, MJob> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                MJob {
                    status: r.get(1)?,
                    attempts: r.get(2)?,
                    failures: r.get(3)?,
                    lost: r.get(4)?,
                    current: r.get(5)?,
                    verify: r.get(6)?,
                },
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let out: Vec<MJob> = jobs
        .iter()
        .map(|id| by_id.remove(id.as_str()).unwrap())
        .collect();
    assert!(by_id.is_empty(), "jobs nobody planned: {by_id:?}");
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, ended_ms IS NULL, coalesce(last_epoch, -1), replay FROM attempts ORDER BY id",
        )
        .unwrap();
    let mut rows: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "attempt {} open {} last {} replay {}",
                r.get::<_, i64>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, bool>(3)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut stmt = conn
        .prepare_cached("SELECT state FROM workers WHERE id = ?1")
        .unwrap();
    for (i, w) in workers.iter().enumerate() {
        let state: Option<WorkerState> = stmt.query_row([w.id.0.as_str()], |r| r.get(0)).ok();
        rows.push(format!("worker {i} {state:?}"));
    }
    for suspect in s.suspects().unwrap() {
        let i = workers.iter().position(|w| w.id == suspect.worker).unwrap();
        rows.push(format!("suspect {i}"));
    }
    (out, rows)
}

/// The model's state in the same terms.
fn expected(m: &Model) -> (Vec<MJob>, Vec<String>) {
    let mut rows: Vec<String> = m
        .attempts
        .iter()
        .map(|(id, a)| {
            format!(
                "attempt {id} open {} last {} replay {}",
                a.open,
                a.last_epoch.map_or(-1, i64::from),
                a.replay
            )
        })
        .collect();
    for (i, w) in m.workers.iter().enumerate() {
        let state = match (w.forgotten, w.lost) {
            (true, _) => None,
            (false, true) => Some(WorkerState::Lost),
            (false, false) => Some(WorkerState::Alive),
        };
        rows.push(format!("worker {i} {state:?}"));
    }
    rows.extend(m.suspects.iter().map(|i| format!("suspect {i}")));
    (m.jobs.clone(), rows)
}

/// Counts of what the sequences did, so the test shows it reached every side.
#[derive(Debug, Default)]
struct Tally {
    calls: usize,
    accepted: usize,
    refused: usize,
    completed: usize,
    expired: usize,
    /// Jobs a replay verified, and workers found suspect, at the sequences' ends.
    verified: usize,
    suspects: usize,
}

/// An attempt to call about: mostly one the caller holds, sometimes any
/// attempt ever leased (late, another's), sometimes one never leased.
fn pick_attempt(rng: &mut Rng, m: &Model, w: usize) -> u64 {
    let own: Vec<u64> = m
        .attempts
        .iter()
        .filter(|(_, a)| a.worker == w)
        .map(|(id, _)| *id)
        .collect();
    match rng.below(10) {
        0 => m.next_attempt + rng.below(3) as u64,
        1..=2 if !m.attempts.is_empty() => {
            let all: Vec<u64> = m.attempts.keys().copied().collect();
            all[rng.below(all.len())]
        }
        _ if !own.is_empty() => own[rng.below(own.len())],
        _ => 1 + rng.below(m.next_attempt as usize) as u64,
    }
}

/// When every sequence starts (ms).
const START_MS: i64 = 1_000_000_000;

/// The scheduler's settings in every sequence.
fn settings() -> SchedulerSettings {
    SchedulerSettings {
        heartbeat_seconds: 5,
        lease_timeout_seconds: (LEASE_TIMEOUT_MS / 1000) as u32,
        max_lost: MAX_LOST,
        ..SchedulerSettings::default()
    }
}

/// A scheduler over a new in-memory store with `sub` submitted at
/// [`START_MS`]: what every sequence starts from, as a copy.
fn template(sub: &Submission) -> Scheduler {
    let clock = ManualClock::new(START_MS);
    let mut s = Scheduler::with_store(
        Store::open_in_memory().unwrap(),
        settings(),
        Box::new(clock),
    )
    .unwrap();
    s.submit(sub).unwrap();
    s
}

/// Runs one sequence; panics at the first call where model and
/// implementation differ.
/// `verify`: the experiment verifies every job (`verify = "all"`, replays
/// leased at once) and each worker has a credential of its own.
fn run(seed: u64, template: &Scheduler, sub: &Submission, verify: bool, tally: &mut Tally) {
    let clock = ManualClock::new(START_MS);
    // A copy of the template's store (`sub` submitted at the same time):
    // migrating and submitting afresh took more than half the time.
    let mut s = Scheduler::with_store(
        template.store().copy_in_memory().unwrap(),
        settings(),
        Box::new(clock.clone()),
    )
    .unwrap();
    s.set_replay_wait_seconds(0);
    let jobs: Vec<JobId> = sub.jobs.iter().map(|j| j.id.clone()).collect();
    let mut m = Model::new(jobs.len(), START_MS);
    m.verify = verify;
    let mut rng = Rng::new(seed);
    let mut workers: Vec<Driven> = Vec::new();
    let mut history: Vec<String> = Vec::new();

    let calls = if verify { VERIFY_CALLS } else { CALLS };
    for step in 0..calls {
        let op = if workers.is_empty() { 0 } else { rng.below(16) };
        let w = rng.below(workers.len());
        let (what, got, want) = match op {
            0 if workers.len() < MAX_WORKERS => {
                let slots = 1 + rng.below(3);
                let name = format!("w{}", workers.len());
                let r = if verify {
                    let named = CredentialName::parse(&format!("n{}", workers.len())).unwrap();
                    s.add_credential(&named, slots as u32).unwrap();
                    s.register_as(&named.worker_id(), &registration(&name, slots))
                        .unwrap()
                } else {
                    s.register(&registration(&name, slots)).unwrap()
                };
                workers.push(Driven {
                    id: r.id,
                    secret: r.secret,
                });
                m.register(slots);
                (format!("register {slots} slots"), Answer::Ok, Answer::Ok)
            }
            0..=2 => {
                let asked = rng.below(m.workers[w].slots + 3);
                let free: Vec<String> = (0..asked).map(|i| format!("cuda:{i}")).collect();
                let got = match s.lease(&workers[w].id, &free) {
                    Ok(out) => Answer::Leased(
                        out.assignments
                            .iter()
                            .map(|a| (a.attempt.0, jobs.iter().position(|j| *j == a.job).unwrap()))
                            .collect(),
                        out.all_done,
                    ),
                    Err(e) => refusal(&e),
                };
                (format!("worker {w} leases {asked}"), got, m.lease(w, asked))
            }
            3 => {
                // Its own open attempts as it believes them, plus, sometimes,
                // another's or an unknown one.
                let mut mine: Vec<u64> = m
                    .attempts
                    .iter()
                    .filter(|(_, a)| a.worker == w && rng.below(4) != 0)
                    .map(|(id, _)| *id)
                    .collect();
                if rng.below(3) == 0 {
                    mine.push(pick_attempt(&mut rng, &m, w));
                }
                let progress: Vec<Progress> = mine
                    .iter()
                    .map(|&a| Progress {
                        attempt: AttemptId(a),
                        epoch: 1,
                        of: EPOCHS,
                    })
                    .collect();
                let got = match s.heartbeat(&workers[w].id, &progress) {
                    Ok(out) => Answer::Cancel(out.cancel.iter().map(|a| a.0).collect()),
                    Err(e) => refusal(&e),
                };
                (
                    format!("worker {w} heartbeats {mine:?}"),
                    got,
                    m.heartbeat(w, &mine),
                )
            }
            4 => {
                let advance = rng.below(4) as i64 * 15_000;
                clock.advance_s(advance / 1000);
                m.now += advance;
                let got = match s.expire_leases() {
                    Ok(out) => Answer::Expired(out.iter().map(|a| a.0).collect()),
                    Err(e) => refusal(&e),
                };
                (
                    format!("{} s pass, expiry", advance / 1000),
                    got,
                    m.expire(),
                )
            }
            _ => attempt_call(op, w, &mut rng, &mut s, &mut m, &workers, tally),
        };
        history.push(format!("{step}: {what}: {got:?}"));
        tally.calls += 1;
        if matches!(
            got,
            Answer::BadRequest
                | Answer::Fenced
                | Answer::UnknownAttempt
                | Answer::UnknownWorker
                | Answer::WrongSecret
                | Answer::NotOwner
        ) {
            tally.refused += 1;
        } else {
            tally.accepted += 1;
        }
        if let Answer::Expired(e) = &got {
            tally.expired += e.len();
        }
        assert_eq!(
            got,
            want,
            "seed {seed}: the implementation answered otherwise than the model\n{}",
            history.join("\n")
        );
        let (real_jobs, real_rest) = observed(&s, &jobs, &workers);
        let (model_jobs, model_rest) = expected(&m);
        assert_eq!(
            real_jobs,
            model_jobs,
            "seed {seed}: jobs differ after the last call\n{}",
            history.join("\n")
        );
        assert_eq!(
            real_rest,
            model_rest,
            "seed {seed}: attempts or workers differ after the last call\n{}",
            history.join("\n")
        );
    }
    assert_eq!(
        observed_jobs(&s, &jobs),
        m.jobs,
        "seed {seed}: the store's typed reads differ from its columns"
    );
    tally.verified += m
        .jobs
        .iter()
        .filter(|j| j.verify.is_some_and(VerifyState::is_verified))
        .count();
    tally.suspects += m.suspects.len();
}

/// One call about an attempt, as the service makes it: the caller's
/// credentials first (`authorize`), then the operation.
fn attempt_call(
    op: usize,
    w: usize,
    rng: &mut Rng,
    s: &mut Scheduler,
    m: &mut Model,
    workers: &[Driven],
    tally: &mut Tally,
) -> (String, Answer, Answer) {
    let a = pick_attempt(rng, m, w);
    // One call in ten forges the secret.
    let secret_ok = rng.below(10) != 0;
    let creds = Credentials {
        worker: workers[w].id.clone(),
        secret: if secret_ok {
            workers[w].secret.clone()
        } else {
            WorkerSecret::presented("forged")
        },
    };
    let authorized = s.authorize(&creds, AttemptId(a)).map_err(|e| refusal(&e));
    let model_authorized = m.authorize(w, secret_ok, a);
    let prefix = format!("worker {w} (secret {secret_ok}) on attempt {a}");
    if authorized.is_err() || model_authorized.is_err() {
        let got = authorized.err().unwrap_or(Answer::Ok);
        let want = model_authorized.err().unwrap_or(Answer::Ok);
        return (format!("{prefix}: authorize"), got, want);
    }
    let last = m.attempts.get(&a).and_then(|x| x.last_epoch).unwrap_or(0);
    let answer = |r: Result<(), SchedulerError>| r.map_or_else(|e| refusal(&e), |()| Answer::Ok);
    match op {
        5..=7 => {
            // Honest: the next epoch; sometimes the same one again.
            let epoch = if rng.below(4) == 0 {
                last.max(1)
            } else {
                (last + 1).min(EPOCHS)
            };
            let got = answer(s.record_epoch(AttemptId(a), &metrics(epoch)).map(|_| ()));
            let want = m.record_epoch(a, epoch, true);
            (format!("{prefix}: epoch {epoch}"), got, want)
        }
        8 => {
            // Out of order or out of range.
            let (mx, epoch, sane) = match rng.below(4) {
                0 => (metrics(0), 0, true),
                1 => (metrics(EPOCHS + 1), EPOCHS + 1, true),
                2 => (
                    metrics(last.saturating_sub(1)),
                    last.saturating_sub(1),
                    true,
                ),
                _ => (
                    EpochMetrics {
                        val_accuracy: Some(1.5),
                        ..metrics(last + 1)
                    },
                    last + 1,
                    false,
                ),
            };
            let got = answer(s.record_epoch(AttemptId(a), &mx).map(|_| ()));
            let want = m.record_epoch(a, epoch, sane);
            (
                format!("{prefix}: hostile epoch {epoch} sane {sane}"),
                got,
                want,
            )
        }
        9 | 10 => {
            let got = answer(s.complete(AttemptId(a), &honest_result()));
            let want = m.complete(a, false, false, true);
            if got == Answer::Ok {
                tally.completed += 1;
            }
            (format!("{prefix}: complete"), got, want)
        }
        11 if m.verify && rng.below(2) == 0 => {
            let got = answer(s.complete(AttemptId(a), &forged_result()));
            let want = m.complete(a, false, false, false);
            (format!("{prefix}: forged result"), got, want)
        }
        11 => {
            let kind = rng.below(6);
            let (r, in_itself) = hostile_result(kind);
            let got = answer(s.complete(AttemptId(a), &r));
            let want = m.complete(a, in_itself, !in_itself, false);
            (format!("{prefix}: hostile result {kind}"), got, want)
        }
        12 | 13 => {
            let class = if rng.below(3) == 0 {
                FailureClass::Deterministic
            } else {
                FailureClass::Transient
            };
            let got = match s.fail(AttemptId(a), "failed", class) {
                Ok(o) => Answer::Failed(o),
                Err(e) => refusal(&e),
            };
            (format!("{prefix}: fail {class:?}"), got, m.fail(a, class))
        }
        _ => {
            let got = answer(s.release(AttemptId(a)));
            (format!("{prefix}: release"), got, m.release(a))
        }
    }
}

#[test]
fn the_scheduler_answers_and_moves_as_the_model_does_over_random_sequences() {
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    // One sequence in VERIFY_EVERY verifies every job (named workers, replays,
    // forged results); the others run as they did before it existed.
    let (plain, verified) = (submission(false), submission(true));
    let (plain_start, verified_start) = (template(&plain), template(&verified));
    for seed in 0..SEQUENCES {
        if seed % VERIFY_EVERY == VERIFY_EVERY - 1 {
            run(seed, &verified_start, &verified, true, &mut tally);
        } else {
            run(seed, &plain_start, &plain, false, &mut tally);
        }
    }
    eprintln!(
        "{SEQUENCES} sequences of {CALLS} calls ({VERIFY_CALLS} verifying): {tally:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The sequences reach every side: accepted and refused calls, completed
    // jobs, leases taken back.
    let verifying = (SEQUENCES / VERIFY_EVERY) as usize;
    assert_eq!(
        tally.calls,
        (SEQUENCES as usize - verifying) * CALLS + verifying * VERIFY_CALLS
    );
    assert!(
        tally.accepted > 100_000
            && tally.refused > 30_000
            && tally.completed > 5_000
            && tally.expired > 2_000
            && tally.verified > 100
            && tally.suspects > 10,
        "{tally:?}"
    );
}

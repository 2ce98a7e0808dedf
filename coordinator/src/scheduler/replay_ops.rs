//! Deterministic replay, the report side: what a replay attempt's calls do
//! and how its result decides (docs/semantics.md, "Verified results").
//!
//! A replay attempt's heartbeats and epochs keep it alive (its epochs are
//! not stored over the job's); its checkpoints are refused (it writes none);
//! a failure, release or lost lease ends it and the run is wanted again
//! (after [`MAX_FAILED_REPLAYS`] failed or lost ones the job stays
//! unverified). Nothing of it counts against the job's `max_attempts`.
//!
//! Its result is compared with every earlier run by
//! [`spikecv_common::experiment::replay::compare`]. Agreeing with the
//! original marks the job verified (bitwise or tolerance). Disagreeing wants
//! a third run on a third credential; that run decides: the result two runs
//! agree on is kept (the job's figures are replaced when the original was
//! the odd one out) and the worker whose run disagreed is suspect: no new
//! leases until `coordinator worker clear`, and its other unverified
//! results are replayed. Three runs that all disagree leave the job
//! disputed, its figures the original's.

use rusqlite::Connection;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::experiment::manifest::{Agreement, Provenance};
use spikecv_common::experiment::replay::compare;

use super::fence::extend;

use super::types::{AttemptId, Progress, WorkerId};
use super::validate::{Expected, check_epoch, check_progress, check_result, expected};
use super::verify::{MAX_FAILED_REPLAYS, credentials_of_run};
use super::{Scheduler, SchedulerError};
use crate::states::{AttemptOutcome, VerifyState};
use crate::store::jobs::{self, AttemptRow, JobRow};
use crate::store::verify_rows::{self, RunComparison, RunRecord, SuspectRecord};
use crate::store::{StoreError, lease_writes};

type Result<T> = std::result::Result<T, SchedulerError>;

/// The replay attempt `attempt` and its job while the attempt is open;
/// `None` when `attempt` is no replay; [`SchedulerError::Fenced`] once it
/// ended.
pub(super) fn replay_fence(
    conn: &Connection,
    attempt: AttemptId,
) -> Result<Option<(AttemptRow, JobRow)>> {
    if !verify_rows::is_replay(conn, attempt)? {
        return Ok(None);
    }
    let a = jobs::attempt(conn, attempt)?.ok_or(SchedulerError::UnknownAttempt { attempt })?;
    let job = jobs::job(conn, &a.job)?
        .ok_or_else(|| SchedulerError::UnknownJob { job: a.job.clone() })?;
    if a.ended_ms.is_some() {
        return Err(SchedulerError::Fenced {
            attempt,
            status: job.status,
            job: job.id,
        });
    }
    Ok(Some((a, job)))
}

/// A heartbeat's progress of `p.attempt` when it is a replay: `None` when
/// it is not one; else whether the worker must stop it.
pub(super) fn replay_heartbeat(
    conn: &Connection,
    worker: &WorkerId,
    index: usize,
    p: &Progress,
    deadline: i64,
    now: i64,
) -> Result<Option<bool>> {
    let (a, job) = match replay_fence(conn, p.attempt) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(SchedulerError::Fenced { .. } | SchedulerError::UnknownAttempt { .. }) => {
            return Ok(Some(true));
        }
        Err(e) => return Err(e),
    };
    if a.worker != *worker {
        return Ok(Some(true));
    }
    let reported = lease_writes::last_epoch(conn, p.attempt)?;
    check_progress(index, p.epoch, p.of, job.planned_epochs, reported)?;
    extend(conn, p.attempt, deadline, worker, now)?;
    Ok(Some(false))
}

/// An epoch of a replay attempt: checked, counted as progress, not stored
/// over the job's epochs. False when `attempt` is no replay.
pub(super) fn replay_epoch(
    conn: &Connection,
    attempt: AttemptId,
    m: &EpochMetrics,
    deadline: i64,
    now: i64,
) -> Result<bool> {
    let Some((a, job)) = replay_fence(conn, attempt)? else {
        return Ok(false);
    };
    check_epoch(m, job.planned_epochs)?;
    if let Some(last) = lease_writes::last_epoch(conn, attempt)?
        && m.epoch < last
    {
        return Err(SchedulerError::BadRequest {
            message: format!(
                "epoch {} goes back: attempt {attempt} already reported epoch {last}",
                m.epoch
            ),
        });
    }
    lease_writes::note_epoch(conn, attempt, m.epoch, now)?;
    extend(conn, attempt, deadline, &a.worker, now)?;
    Ok(true)
}

/// A replay attempt ends without a result (`outcome`: failed, released,
/// lost): the run is wanted again, or the job is left unverified after too
/// many failed or lost replays. False when `attempt` is no replay.
pub(super) fn end_replay(
    conn: &Connection,
    attempt: AttemptId,
    outcome: AttemptOutcome,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    let Some((a, job)) = replay_fence(conn, attempt)? else {
        return Ok(false);
    };
    lease_writes::end_attempt(conn, attempt, now, outcome, error)?;
    lease_writes::touch_worker(conn, &a.worker, now)?;
    give_up_if_failing(conn, &job, now)?;
    tracing::info!(job = %job.id, %attempt, outcome = outcome.as_str(), "replay ended without a result");
    Ok(true)
}

/// Leaves `job` unverified once [`MAX_FAILED_REPLAYS`] replays failed or
/// were lost.
pub(super) fn give_up_if_failing(conn: &Connection, job: &JobRow, now: i64) -> Result<()> {
    if verify_rows::failed_replays(conn, &job.id)? >= MAX_FAILED_REPLAYS {
        verify_rows::set_state(conn, &job.id, Some(VerifyState::Unverified), now)?;
        tracing::warn!(job = %job.id, "replays keep failing: the result stays unverified");
    }
    Ok(())
}

/// The verified state two runs that agree under `agreement` give.
fn verified(agreement: &Agreement) -> VerifyState {
    match agreement {
        Agreement::Bitwise => VerifyState::Bitwise,
        Agreement::Tolerance { .. } => VerifyState::Tolerance,
    }
}

fn provenance(run: &RunRecord) -> Provenance {
    run.provenance.clone().unwrap_or_default()
}

/// Marks `run`'s worker suspect over `job`, and the workers whose
/// checkpoints the run resumed (the result is theirs too: which of them lied
/// is not known), and wants a replay of each of their other results that
/// nobody checked.
fn suspect(conn: &Connection, run: &RunRecord, reason: String, now: i64) -> Result<()> {
    mark(conn, &run.worker, &run.worker_name, &run.job, reason, now)?;
    let mut at = run.attempt;
    // A chain of resumes is at most the job's attempts long; bound it anyway.
    for _ in 0..1000 {
        let Some((previous, donor)) = verify_rows::resumed_from(conn, at)? else {
            break;
        };
        if donor != run.worker && !verify_rows::is_suspect(conn, &donor)? {
            let name = verify_rows::worker_name(conn, &donor)?.unwrap_or_else(|| donor.0.clone());
            let why = format!(
                "its checkpoint went into {}'s result of job {}, which disagreed with two other runs",
                run.worker_name, run.job
            );
            mark(conn, &donor, &name, &run.job, why, now)?;
        }
        at = previous;
    }
    Ok(())
}

/// Marks `worker` (named `name`) suspect over `job` for `reason` and wants a
/// replay of each of its other results that nobody checked.
fn mark(
    conn: &Connection,
    worker: &WorkerId,
    name: &str,
    job: &str,
    reason: String,
    now: i64,
) -> Result<()> {
    verify_rows::mark_suspect(
        conn,
        &SuspectRecord {
            worker: worker.clone(),
            name: name.to_owned(),
            job: job.to_owned(),
            reason,
            since_ms: now,
        },
    )?;
    let others = verify_rows::unchecked_originals_of(conn, worker)?;
    for job in &others {
        verify_rows::set_state(conn, job, Some(VerifyState::Wanted), now)?;
    }
    tracing::warn!(worker = %worker, name = %name, job = %job,
        replayed = others.len(), "worker marked suspect: a result of it disagreed with two other runs");
    Ok(())
}

/// What the runs of `job` decide, the newest last.
fn decide(conn: &Connection, job: &JobRow, runs: &[RunRecord], now: i64) -> Result<()> {
    let Some((newest, earlier)) = runs.split_last() else {
        return Ok(());
    };
    let agrees_with = |other: &RunRecord| {
        newest
            .comparisons
            .iter()
            .find(|c| c.with == other.attempt)
            .filter(|c| c.comparison.agrees())
            .map(|c| c.comparison.agreement.clone())
    };
    match earlier {
        [original] => {
            let state = match agrees_with(original) {
                Some(agreement) => verified(&agreement),
                None => VerifyState::Tiebreak,
            };
            verify_rows::set_state(conn, &job.id, Some(state), now)?;
            tracing::info!(job = %job.id, state = state.as_str(), "replay compared");
        }
        [original, replay] => {
            let state = match (agrees_with(original), agrees_with(replay)) {
                (Some(agreement), other) => {
                    if other.is_none() {
                        let why = format!(
                            "its replay of job {} disagreed with the original and a third run",
                            job.id
                        );
                        suspect(conn, replay, why, now)?;
                    }
                    verified(&agreement)
                }
                (None, Some(agreement)) => {
                    verify_rows::replace_result(conn, &job.id, replay, now)?;
                    let why = format!("its result of job {} disagreed with two replays", job.id);
                    suspect(conn, original, why, now)?;
                    verified(&agreement)
                }
                (None, None) => VerifyState::Disputed,
            };
            verify_rows::set_state(conn, &job.id, Some(state), now)?;
            tracing::info!(job = %job.id, state = state.as_str(), "third run decided");
        }
        _ => {}
    }
    Ok(())
}

impl Scheduler {
    /// Completes a replay attempt, when `attempt` is one: its result is
    /// stored as a run of the job, compared with the earlier runs, and
    /// decides ([`decide`]). False when `attempt` is no replay.
    pub(super) fn complete_replay(
        &mut self,
        attempt: AttemptId,
        result: &JobResult,
        provenance_given: Option<&Provenance>,
    ) -> Result<bool> {
        let now = self.now_ms();
        check_result(result, &Expected::default())?;
        let tx = self.store.transaction()?;
        let Some((a, job)) = replay_fence(&tx, attempt)? else {
            return Ok(false);
        };
        check_result(result, &expected(&tx, &job)?)?;
        lease_writes::end_attempt(&tx, attempt, now, AttemptOutcome::Succeeded, None)?;
        lease_writes::touch_worker(&tx, &a.worker, now)?;
        let mut runs = verify_rows::runs_of(&tx, job.id.as_str())?;
        let mut run = RunRecord {
            attempt,
            job: job.id.as_str().to_owned(),
            worker_name: verify_rows::worker_name(&tx, &a.worker)?
                .unwrap_or_else(|| a.worker.0.clone()),
            credentials: credentials_of_run(&tx, attempt, &a.worker)?,
            worker: a.worker.clone(),
            replay: true,
            result: result.clone(),
            provenance: provenance_given.cloned(),
            comparisons: Vec::new(),
            finished_ms: now,
        };
        let mine = provenance(&run);
        run.comparisons = runs
            .iter()
            .map(|r| RunComparison {
                with: r.attempt,
                comparison: compare((&r.result, &provenance(r)), (result, &mine)),
            })
            .collect();
        verify_rows::insert_run(&tx, &run)?;
        runs.push(run);
        decide(&tx, &job, &runs, now)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(true)
    }

    /// Clears the suspect worker(s) whose id or name is `name`: they get
    /// leases again. Refused with [`SchedulerError::NotSuspect`] when none is.
    pub fn clear_suspect(&mut self, name: &str) -> Result<usize> {
        let tx = self.store.transaction()?;
        let n = verify_rows::clear_suspect(&tx, name)?;
        if n == 0 {
            return Err(SchedulerError::NotSuspect {
                name: name.to_owned(),
            });
        }
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(worker = name, "suspect worker cleared");
        Ok(n)
    }

    /// Every suspect worker.
    pub fn suspects(&self) -> Result<Vec<SuspectRecord>> {
        Ok(verify_rows::suspects(self.store.conn())?)
    }

    /// Where `job` stands in verification (`None`: not sampled, or not
    /// verified at all).
    pub fn verify_state(
        &self,
        job: &spikecv_common::experiment::plan::JobId,
    ) -> Result<Option<VerifyState>> {
        Ok(verify_rows::job_verify(self.store.conn(), job)?.state)
    }

    /// Every run of `job` kept for verification, oldest first.
    pub fn runs_of(&self, job: &spikecv_common::experiment::plan::JobId) -> Result<Vec<RunRecord>> {
        Ok(verify_rows::runs_of(self.store.conn(), job.as_str())?)
    }
}

//! What a current attempt reports, each call one store transaction fenced
//! by the attempt's id: its epochs (which may prune the job), its result, a
//! failure, or the job handed back. A replay's calls are answered by
//! `replay_ops` first and leave the job alone.

use spikecv_common::experiment::job::{EpochMetrics, JobResult, JobStatus};
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::plan::JobId;

use super::asha::halve_after_epoch;
use super::checkpoint_ops::{drop_checkpoint, keep_records_true, take_checkpoint_record};
use super::fence::{extend, fence};
use super::prune::{prune_after_epoch, undo_decisions_of};
use super::replay_ops::{end_replay, replay_epoch};
use super::types::{AttemptId, FailOutcome, FailureClass};
use super::validate::{Expected, check_epoch, check_result, expected};
use super::verify;
use super::{Scheduler, SchedulerError};
use crate::checkpoints::remove_quietly;
use crate::states::AttemptOutcome;
use crate::store::{StoreError, job_writes, lease_writes};

type Result<T> = std::result::Result<T, SchedulerError>;

impl Scheduler {
    /// The attempt's job if the attempt is current, else the typed refusal.
    pub fn check_current(&self, attempt: AttemptId) -> Result<JobId> {
        fence(self.store.conn(), attempt).map(|(_, job)| job.id)
    }

    /// Stores one epoch's metrics of a current attempt (and extends its lease).
    /// Returns true when the job was pruned on this report (its sweep's median
    /// pruner): the worker must stop the attempt.
    ///
    /// The epoch must lie in `1..=epochs` of the job and not go back below one
    /// the attempt already reported (the same one again is a retry and is
    /// taken when its figures are the same: a checkpoint's record was checked
    /// against them); a new epoch restarts the attempt's epoch timeout.
    pub fn record_epoch(&mut self, attempt: AttemptId, m: &EpochMetrics) -> Result<bool> {
        let now = self.now_ms();
        let deadline = self.lease_deadline(now);
        check_epoch(m, None)?;
        let tx = self.store.transaction()?;
        if replay_epoch(&tx, attempt, m, deadline, now)? {
            tx.commit().map_err(StoreError::from)?;
            return Ok(false);
        }
        let (a, job) = fence(&tx, attempt)?;
        check_epoch(m, job.planned_epochs)?;
        if let Some(last) = lease_writes::last_epoch(&tx, attempt)?
            && m.epoch < last
        {
            return Err(SchedulerError::BadRequest {
                message: format!(
                    "epoch {} goes back: attempt {attempt} already reported epoch {last}",
                    m.epoch
                ),
            });
        }
        let mut dropped = Vec::new();
        keep_records_true(&tx, &job.id, attempt, m, &mut dropped)?;
        job_writes::upsert_epoch(&tx, &job.id, attempt, m)?;
        lease_writes::note_epoch(&tx, attempt, m.epoch, now)?;
        extend(&tx, attempt, deadline, &a.worker, now)?;
        job_writes::set_running(&tx, &job.id, m.epoch, None, now)?;
        let pruned = prune_after_epoch(
            &tx,
            &mut self.prune_rules,
            &job.id,
            m.epoch,
            now,
            &mut dropped,
        )?;
        let halved = !pruned
            && halve_after_epoch(
                &tx,
                &mut self.prune_rules,
                &job.id,
                m.epoch,
                now,
                &mut dropped,
            )?;
        tx.commit().map_err(StoreError::from)?;
        self.remove_checkpoint_files(&dropped);
        Ok(pruned || halved)
    }

    /// Records a current attempt's result: the job succeeded (exactly once; a
    /// second completion is fenced).
    pub fn complete(&mut self, attempt: AttemptId, result: &JobResult) -> Result<()> {
        self.complete_with(attempt, result, None)
    }

    /// [`Scheduler::complete`] with what the result was computed on and with
    /// (kept with the job for reports and replays).
    pub fn complete_with(
        &mut self,
        attempt: AttemptId,
        result: &JobResult,
        provenance: Option<&Provenance>,
    ) -> Result<()> {
        if self.complete_replay(attempt, result, provenance)? {
            return Ok(());
        }
        let now = self.now_ms();
        check_result(result, &Expected::default())?;
        let tx = self.store.transaction()?;
        let (a, job) = fence(&tx, attempt)?;
        check_result(result, &expected(&tx, &job)?)?;
        lease_writes::end_attempt(&tx, attempt, now, AttemptOutcome::Succeeded, None)?;
        for m in &result.epochs {
            job_writes::upsert_epoch(&tx, &job.id, attempt, m)?;
        }
        job_writes::complete_job(&tx, &job.id, result, provenance, now)?;
        verify::sample_succeeded(&tx, &job.id, now)?;
        let checkpoint = take_checkpoint_record(&tx, &job.id)?;
        lease_writes::touch_worker(&tx, &a.worker, now)?;
        tx.commit().map_err(StoreError::from)?;
        if let Some(sha) = checkpoint {
            remove_quietly(&self.checkpoint_dir().file(&job.id, &sha));
        }
        tracing::info!(job = %job.id, %attempt, test_accuracy = result.test_accuracy, "job succeeded");
        Ok(())
    }

    /// Records a current attempt's failure. Deterministic: the job fails at once.
    /// Transient: back to pending while its failures are below `max_attempts`.
    /// Jobs pruned on the attempt's metrics go back to pending.
    /// Either way the job's checkpoint is dropped: the failure may come from
    /// it, and the next attempt trains from epoch 0.
    pub fn fail(
        &mut self,
        attempt: AttemptId,
        error: &str,
        class: FailureClass,
    ) -> Result<FailOutcome> {
        let now = self.now_ms();
        let tx = self.store.transaction()?;
        if end_replay(&tx, attempt, AttemptOutcome::Failed, Some(error), now)? {
            tx.commit().map_err(StoreError::from)?;
            tracing::warn!(%attempt, ?class, error, "replay attempt failed");
            return Ok(FailOutcome::Retry);
        }
        let (a, job) = fence(&tx, attempt)?;
        lease_writes::end_attempt(&tx, attempt, now, AttemptOutcome::Failed, Some(error))?;
        undo_decisions_of(&tx, attempt, now)?;
        let failures = job.failures + 1;
        let outcome = if class == FailureClass::Deterministic || failures >= job.max_attempts {
            FailOutcome::Failed
        } else {
            FailOutcome::Retry
        };
        let status = match outcome {
            FailOutcome::Failed => JobStatus::Failed,
            FailOutcome::Retry => JobStatus::Pending,
        };
        job_writes::fail_job(&tx, &job.id, status, failures, error, now)?;
        let mut dropped = Vec::new();
        drop_checkpoint(&tx, &job.id, &mut dropped)?;
        lease_writes::touch_worker(&tx, &a.worker, now)?;
        tx.commit().map_err(StoreError::from)?;
        self.remove_checkpoint_files(&dropped);
        tracing::warn!(job = %job.id, %attempt, ?class, ?outcome, error, "job attempt failed");
        Ok(outcome)
    }

    /// A current attempt gives its job back (worker draining): pending again, not
    /// counted as a failure, unless the job has been released more than
    /// `max_releases` times: then the release counts as a transient failure
    /// (the job fails once its failures reach `max_attempts`).
    pub fn release(&mut self, attempt: AttemptId) -> Result<()> {
        let now = self.now_ms();
        let tx = self.store.transaction()?;
        if end_replay(&tx, attempt, AttemptOutcome::Released, None, now)? {
            tx.commit().map_err(StoreError::from)?;
            return Ok(());
        }
        let (a, job) = fence(&tx, attempt)?;
        lease_writes::end_attempt(&tx, attempt, now, AttemptOutcome::Released, None)?;
        let released = lease_writes::worker_releases(&tx, &job.id)?;
        if released <= self.settings.max_releases {
            job_writes::release_job(&tx, &job.id, now)?;
        } else {
            let failures = job.failures + 1;
            let error = format!(
                "released {released} times, more than {} (--max-releases-per-job): each further release counts as a failure",
                self.settings.max_releases
            );
            let status = if failures >= job.max_attempts {
                JobStatus::Failed
            } else {
                JobStatus::Pending
            };
            job_writes::fail_job(&tx, &job.id, status, failures, &error, now)?;
            tracing::warn!(job = %job.id, %attempt, released, failures, status = %status.as_str(), "release counted as a failure");
        }
        lease_writes::touch_worker(&tx, &a.worker, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(job = %job.id, %attempt, "job released");
        Ok(())
    }
}

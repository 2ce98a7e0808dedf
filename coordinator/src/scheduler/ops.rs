//! The scheduler's operations; each is one store transaction.

use spikecv_common::experiment::job::{EpochMetrics, JobResult, JobStatus};
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::sections::DEFAULT_EPOCH_TIMEOUT_S;
use spikecv_common::experiment::trainer;

use super::asha::halve_after_epoch;
use super::checkpoint_ops::{drop_checkpoint, keep_records_true, take_checkpoint_record};
use super::fence::{extend, fence, sha256_hex, to_json};
use super::prune::{prune_after_epoch, undo_decisions_of};
use super::replay_ops::{end_replay, give_up_if_failing, replay_epoch, replay_heartbeat};
use super::types::{
    Assignment, AttemptId, ExperimentId, FailOutcome, FailureClass, HeartbeatOutcome, LeaseOutcome,
    Progress, SubmitOutcome, WorkerId, WorkerState,
};
use super::validate::{Expected, check_epoch, check_progress, check_result, expected};
use super::verify;
use super::{Scheduler, SchedulerError, Submission};
use crate::checkpoints::remove_quietly;
use crate::states::AttemptOutcome;
use crate::store::job_writes::{self, NewExperiment, NewJob};
use crate::store::jobs;
use crate::store::{StoreError, lease_writes, prune_evidence, verify_rows, worker_rows};

type Result<T> = std::result::Result<T, SchedulerError>;

/// Hex digits of the config hash kept in an experiment id.
const EXPERIMENT_ID_HEX_LEN: usize = 12;

impl Scheduler {
    pub(super) fn deadline_from(&self, now: i64) -> i64 {
        self.lease_deadline(now)
    }

    /// Removes the files of checkpoint records dropped by a committed
    /// transaction ([`drop_checkpoint`]).
    pub(super) fn remove_checkpoint_files(&self, dropped: &[(JobId, String)]) {
        for (job, sha) in dropped {
            remove_quietly(&self.checkpoint_dir().file(job, sha));
        }
    }

    /// Stores an experiment and its jobs. Submitting the same config again is
    /// idempotent; a job that already succeeded (in this or another experiment) is
    /// reused, a failed or cancelled one is put back to pending with a fresh retry
    /// budget, a pending or running one is left alone.
    pub fn submit(&mut self, s: &Submission) -> Result<SubmitOutcome> {
        let now = self.now_ms();
        let normalised = s.config.to_toml_string();
        let config_hash = sha256_hex(normalised.as_bytes());
        let experiment = ExperimentId(config_hash[..EXPERIMENT_ID_HEX_LEN].to_owned());
        let mut out = SubmitOutcome {
            experiment: experiment.clone(),
            jobs_new: 0,
            jobs_reused: 0,
            jobs_in_progress: 0,
            jobs_requeued: 0,
        };
        let tx = self.store.transaction()?;
        job_writes::insert_experiment(
            &tx,
            &NewExperiment {
                id: &experiment,
                name: s.config.name.as_deref(),
                config_toml: &s.config_toml,
                config_hash: &config_hash,
                data_fingerprint: s.data_fingerprint.as_deref(),
                class_names: &s.class_names,
                sample_counts: s.sample_counts.as_ref(),
                created_ms: now,
            },
        )?;
        let max_attempts = s.config.protocol.max_attempts;
        let prunes = s.config.pruning().ok().flatten().is_some();
        if s.config.protocol.verify.is_some() {
            verify_rows::keep_secret(&tx, &experiment.0, &verify::new_secret())?;
        }
        let mut dropped = Vec::new();
        for (position, job) in s.jobs.iter().enumerate() {
            match jobs::job(&tx, &job.id)? {
                None => {
                    let job_config = s.job_config(job);
                    job_writes::insert_job(
                        &tx,
                        &NewJob {
                            id: &job.id,
                            experiment: &experiment,
                            variant: job.variant.as_str(),
                            seed: i64::try_from(job.seed).map_err(|_| {
                                SchedulerError::BadRequest {
                                    message: format!("seed {} is too large", job.seed),
                                }
                            })?,
                            fold: job.fold,
                            protocol: job.protocol.as_str(),
                            config_toml: &job_config.to_toml_string(),
                            split_json: &to_json(&job.split)?,
                            data_fingerprint: s.data_fingerprint.as_deref(),
                            max_attempts,
                            epochs: job_config.training.epochs,
                            epoch_timeout_s: job_config.protocol.epoch_timeout_s,
                            trainer: trainer::name_of(job_config.trainer.as_ref()),
                            now,
                        },
                    )?;
                    out.jobs_new += 1;
                }
                Some(row) => match row.status {
                    JobStatus::Succeeded => out.jobs_reused += 1,
                    JobStatus::Pending | JobStatus::Leased | JobStatus::Running => {
                        out.jobs_in_progress += 1
                    }
                    // A pruned job stays pruned where the sweep prunes; an
                    // experiment without pruning runs it to its end.
                    JobStatus::Pruned if prunes => out.jobs_reused += 1,
                    JobStatus::Failed | JobStatus::Cancelled | JobStatus::Pruned => {
                        // A fresh start: nothing of an earlier run is resumed.
                        drop_checkpoint(&tx, &job.id, &mut dropped)?;
                        job_writes::requeue_job(&tx, &job.id, max_attempts, now)?;
                        out.jobs_requeued += 1;
                    }
                },
            }
            job_writes::link_job(&tx, &experiment, &job.id, position, job.configuration)?;
            if let Some(v) = s.job_config(job).protocol.verify {
                verify_rows::raise_fraction(&tx, &job.id, v.fraction())?;
                // A job reused from an earlier experiment keeps its state;
                // one never sampled is sampled now.
                verify::sample_succeeded(&tx, &job.id, now)?;
            }
        }
        tx.commit().map_err(StoreError::from)?;
        self.remove_checkpoint_files(&dropped);
        tracing::info!(experiment = %out.experiment, new = out.jobs_new, reused = out.jobs_reused,
            in_progress = out.jobs_in_progress, requeued = out.jobs_requeued, "experiment submitted");
        Ok(out)
    }

    /// Leases up to one pending job per free slot to `worker` (jobs in submission
    /// order, only those whose data fingerprint the worker has); the worker
    /// never holds more open attempts than it registered slots, counted here,
    /// whatever `free_slots` says.
    pub fn lease(&mut self, worker: &WorkerId, free_slots: &[String]) -> Result<LeaseOutcome> {
        let now = self.now_ms();
        let deadline = self.deadline_from(now);
        let tx = self.store.transaction()?;
        let w = worker_rows::worker(&tx, worker)?.ok_or_else(|| SchedulerError::UnknownWorker {
            worker: worker.clone(),
        })?;
        lease_writes::touch_worker(&tx, worker, now)?;
        let mut out = LeaseOutcome::default();
        if w.state == WorkerState::Draining {
            out.drain = true;
            out.all_done = job_writes::all_finished(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            return Ok(out);
        }
        // A suspect worker gets nothing until an operator clears it.
        if verify_rows::is_suspect(&tx, worker)? {
            out.all_done = job_writes::all_finished(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            return Ok(out);
        }
        // At most one open attempt per slot the worker registered, whatever it asks for.
        let held = lease_writes::open_attempts_of(&tx, worker)?;
        let room = w.slots.len().saturating_sub(held);
        for device in free_slots.iter().take(room) {
            if let Some(job) = verify::replay_for(&tx, &w, device, now, self.replay_wait_ms)? {
                let assignment = verify::lease_replay(&tx, job, worker, device, now, deadline)?;
                out.assignments.push(assignment);
                continue;
            }
            let Some(job) = jobs::next_pending_job(&tx, &w.data_fingerprint, &w.trainers)? else {
                break;
            };
            let timeout_s = job.epoch_timeout_s.unwrap_or(DEFAULT_EPOCH_TIMEOUT_S);
            let attempt = lease_writes::insert_attempt(
                &tx,
                &job.id,
                worker,
                device,
                now,
                deadline,
                i64::from(timeout_s) * 1000,
            )?;
            job_writes::lease_job(&tx, &job.id, attempt, &w.name, device, now)?;
            let checkpoint_epoch = jobs::checkpoint_epoch(&tx, &job.id)?;
            if checkpoint_epoch.is_some() {
                prune_evidence::note_resumed(&tx, attempt, &job.id)?;
            }
            tracing::info!(job = %job.id, %attempt, worker = %worker, device = %device, "job leased");
            out.assignments.push(Assignment {
                attempt,
                variant: job.variant,
                seed: job.seed,
                fold: job.fold,
                protocol: job.protocol,
                job: job.id,
                experiment: job.experiment,
                device: device.clone(),
                deadline_ms: deadline,
                config_toml: job.config_toml,
                split: job.split,
                checkpoint_epoch,
            });
        }
        out.all_done = job_writes::all_finished(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Extends the leases of the worker's current attempts in `progress` (a leased
    /// job becomes running) and lists the attempts it must stop. Progress that
    /// cannot be (past the job's epochs, or back below what the attempt
    /// reported) refuses the whole heartbeat, naming the field.
    pub fn heartbeat(
        &mut self,
        worker: &WorkerId,
        progress: &[Progress],
    ) -> Result<HeartbeatOutcome> {
        let now = self.now_ms();
        let deadline = self.deadline_from(now);
        let tx = self.store.transaction()?;
        let w = worker_rows::worker(&tx, worker)?.ok_or_else(|| SchedulerError::UnknownWorker {
            worker: worker.clone(),
        })?;
        lease_writes::touch_worker(&tx, worker, now)?;
        let mut out = HeartbeatOutcome {
            cancel: Vec::new(),
            drain: w.state == WorkerState::Draining,
        };
        for (index, p) in progress.iter().enumerate() {
            if let Some(cancel) = replay_heartbeat(&tx, worker, index, p, deadline, now)? {
                if cancel {
                    out.cancel.push(p.attempt);
                }
                continue;
            }
            let current = match fence(&tx, p.attempt) {
                Ok((a, job)) if a.worker == *worker => Some(job),
                Ok(_)
                | Err(SchedulerError::Fenced { .. } | SchedulerError::UnknownAttempt { .. }) => {
                    None
                }
                Err(e) => return Err(e),
            };
            let Some(job) = current else {
                out.cancel.push(p.attempt);
                continue;
            };
            let reported = lease_writes::last_epoch(&tx, p.attempt)?;
            check_progress(index, p.epoch, p.of, job.planned_epochs, reported)?;
            extend(&tx, p.attempt, deadline, worker, now)?;
            job_writes::set_running(&tx, &job.id, p.epoch, Some(p.of), now)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

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
        let deadline = self.deadline_from(now);
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

    /// Ends every lease past its deadline, and every attempt that reported no
    /// new epoch within its epoch timeout (its worker hears it at its next
    /// heartbeat): the job goes back to pending (not a failure) unless it has
    /// lost `max_lost` leases, then it fails. Workers silent for the lease
    /// timeout are marked lost. Jobs pruned on a taken-back attempt's metrics
    /// go back to pending. Returns the attempts taken back.
    pub fn expire_leases(&mut self) -> Result<Vec<AttemptId>> {
        let now = self.now_ms();
        let timeout_ms = i64::from(self.settings.lease_timeout_seconds) * 1000;
        let max_lost = self.settings.max_lost;
        let tx = self.store.transaction()?;
        let mut expired: Vec<(AttemptId, JobId, String)> =
            lease_writes::expired_attempts(&tx, now)?
                .into_iter()
                .map(|(a, j)| (a, j, "lease expired".to_owned()))
                .collect();
        for (attempt, job, ms) in lease_writes::stalled_attempts(&tx, now)? {
            if !expired.iter().any(|(a, _, _)| *a == attempt) {
                let why = format!(
                    "no new epoch for {} s (protocol.epoch_timeout_s)",
                    ms / 1000
                );
                expired.push((attempt, job, why));
            }
        }
        let mut out = Vec::with_capacity(expired.len());
        for (attempt, job_id, why) in expired {
            lease_writes::end_attempt(&tx, attempt, now, AttemptOutcome::Lost, Some(&why))?;
            undo_decisions_of(&tx, attempt, now)?;
            out.push(attempt);
            let Some(job) = jobs::job(&tx, &job_id)? else {
                continue;
            };
            if job.current_attempt != Some(attempt) {
                if verify_rows::is_replay(&tx, attempt)? {
                    give_up_if_failing(&tx, &job, now)?;
                }
                continue;
            }
            let lost = job.lost_attempts + 1;
            if lost >= max_lost {
                let error = format!(
                    "lost {lost} leases (the last: {why}): its workers stopped heartbeating or training every time"
                );
                job_writes::lose_lease(&tx, &job.id, lost, Some(&error), now)?;
                tracing::warn!(job = %job.id, %attempt, lost, reason = %why, "attempt taken back; job failed");
            } else {
                job_writes::lose_lease(&tx, &job.id, lost, None, now)?;
                tracing::warn!(job = %job.id, %attempt, lost, reason = %why, "attempt taken back; job back to pending");
            }
        }
        lease_writes::mark_silent_workers_lost(&tx, now - timeout_ms)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Pushes every open lease's deadline to at least one lease timeout from now,
    /// and counts every worker not already lost as seen now (done by `open`, for a
    /// coordinator that was down while its workers ran). Returns the leases extended.
    pub fn grant_restart_grace(&mut self) -> Result<usize> {
        let now = self.now_ms();
        let deadline = self.deadline_from(now);
        let tx = self.store.transaction()?;
        let n = lease_writes::extend_open_attempts(&tx, deadline)?;
        lease_writes::restart_progress_clocks(&tx, now)?;
        lease_writes::see_every_worker(&tx, now)?;
        tx.commit().map_err(StoreError::from)?;
        if n > 0 {
            tracing::info!(leases = n, "open leases extended after a restart");
        }
        Ok(n)
    }

    /// Cancels a job that has not finished (its worker is told at its next
    /// heartbeat). Cancelling a cancelled job is a no-op.
    pub fn cancel(&mut self, job: &JobId) -> Result<()> {
        let now = self.now_ms();
        let tx = self.store.transaction()?;
        let row =
            jobs::job(&tx, job)?.ok_or_else(|| SchedulerError::UnknownJob { job: job.clone() })?;
        match row.status {
            JobStatus::Cancelled => return Ok(()),
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Pruned => {
                return Err(SchedulerError::AlreadyFinished {
                    job: job.clone(),
                    status: row.status,
                });
            }
            JobStatus::Pending | JobStatus::Leased | JobStatus::Running => {}
        }
        if let Some(attempt) = row.current_attempt {
            lease_writes::end_attempt(&tx, attempt, now, AttemptOutcome::Cancelled, None)?;
        }
        job_writes::stop_job(&tx, job, JobStatus::Cancelled, None, now)?;
        let mut dropped = Vec::new();
        drop_checkpoint(&tx, job, &mut dropped)?;
        tx.commit().map_err(StoreError::from)?;
        self.remove_checkpoint_files(&dropped);
        tracing::info!(job = %job, "job cancelled");
        Ok(())
    }

    /// Drains a worker: it gets no new leases and its heartbeats answer `drain`.
    pub fn drain(&mut self, worker: &WorkerId) -> Result<()> {
        let tx = self.store.transaction()?;
        if !lease_writes::set_worker_state(&tx, worker, WorkerState::Draining)? {
            return Err(SchedulerError::UnknownWorker {
                worker: worker.clone(),
            });
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }
}

//! A lease's life: jobs handed out to a worker's free slots (a wanted
//! replay first), heartbeats that keep its attempts alive and say which to
//! stop, expiry of leases and of attempts that stopped training, and the
//! grace a restarted coordinator gives. Each operation is one store
//! transaction.

use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::sections::DEFAULT_EPOCH_TIMEOUT_S;

use super::fence::{extend, fence};
use super::prune::undo_decisions_of;
use super::replay_ops::{give_up_if_failing, replay_heartbeat};
use super::types::{
    Assignment, AttemptId, HeartbeatOutcome, LeaseOutcome, Progress, WorkerId, WorkerState,
};
use super::validate::check_progress;
use super::verify;
use super::{Scheduler, SchedulerError};
use crate::states::AttemptOutcome;
use crate::store::jobs;
use crate::store::{
    StoreError, job_writes, lease_writes, prune_evidence, verify_rows, worker_rows,
};

type Result<T> = std::result::Result<T, SchedulerError>;

impl Scheduler {
    /// Leases up to one pending job per free slot to `worker` (jobs in submission
    /// order, only those whose data fingerprint the worker has); the worker
    /// never holds more open attempts than it registered slots, counted here,
    /// whatever `free_slots` says.
    pub fn lease(&mut self, worker: &WorkerId, free_slots: &[String]) -> Result<LeaseOutcome> {
        let now = self.now_ms();
        let deadline = self.lease_deadline(now);
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
        let deadline = self.lease_deadline(now);
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
        let deadline = self.lease_deadline(now);
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
}

//! The scheduler's operations; each is one store transaction.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use spikecv_common::job::{EpochMetrics, JobResult, JobStatus};
use spikecv_common::plan::JobId;
use spikecv_common::prune::prune_rule;

use super::checkpoint_ops::take_checkpoint_record;
use super::prune::prune_after_epoch;
use super::types::{
    Assignment, AttemptId, ExperimentId, FailOutcome, FailureClass, HeartbeatOutcome, LeaseOutcome,
    Progress, SubmitOutcome, WorkerId, WorkerState,
};
use super::validate::{check_epoch, check_result};
use super::{Scheduler, SchedulerError, Submission};
use crate::checkpoints::remove_quietly;
use crate::store::StoreError;
use crate::store::reads::{self, AttemptRow, JobRow};

type Result<T> = std::result::Result<T, SchedulerError>;

/// Hex digits of the config hash kept in an experiment id.
const EXPERIMENT_ID_HEX_LEN: usize = 12;

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs one write statement through the connection's statement cache (the
/// same few statements run on every call; parsing them each time was a
/// measurable share of the scheduler thread under load).
pub(super) fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

pub(super) fn attempt_key(attempt: AttemptId) -> Result<i64> {
    i64::try_from(attempt.0).map_err(|_| SchedulerError::UnknownAttempt { attempt })
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| SchedulerError::BadRequest {
        message: format!("cannot encode as JSON: {e}"),
    })
}

/// The attempt and its job, if the attempt is its job's current one; else the
/// typed refusal. Reads only.
pub(super) fn fence(conn: &Connection, attempt: AttemptId) -> Result<(AttemptRow, JobRow)> {
    let a = reads::attempt(conn, attempt)?.ok_or(SchedulerError::UnknownAttempt { attempt })?;
    let job = reads::job(conn, &a.job)?
        .ok_or_else(|| SchedulerError::UnknownJob { job: a.job.clone() })?;
    let live = matches!(job.status, JobStatus::Leased | JobStatus::Running);
    if job.current_attempt != Some(attempt) || a.ended_ms.is_some() || !live {
        return Err(SchedulerError::Fenced {
            attempt,
            job: job.id,
            status: job.status,
        });
    }
    Ok((a, job))
}

pub(super) fn end_attempt(
    conn: &Connection,
    attempt: AttemptId,
    now: i64,
    outcome: &str,
    error: Option<&str>,
) -> Result<()> {
    exec(
        conn,
        "UPDATE attempts SET ended_ms = ?2, outcome = ?3, error = ?4 WHERE id = ?1",
        params![attempt_key(attempt)?, now, outcome, error],
    )?;
    Ok(())
}

pub(super) fn extend(
    conn: &Connection,
    attempt: AttemptId,
    deadline: i64,
    worker: &WorkerId,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE attempts SET deadline_ms = max(deadline_ms, ?2) WHERE id = ?1",
        params![attempt_key(attempt)?, deadline],
    )?;
    touch_worker(conn, worker, now)?;
    Ok(())
}

pub(super) fn touch_worker(conn: &Connection, worker: &WorkerId, now: i64) -> Result<()> {
    exec(
        conn,
        "UPDATE workers SET last_seen_ms = ?2,
                state = CASE state WHEN 'lost' THEN 'alive' ELSE state END
         WHERE id = ?1",
        params![worker.0, now],
    )?;
    Ok(())
}

fn upsert_epoch(
    conn: &Connection,
    job: &JobId,
    attempt: AttemptId,
    m: &EpochMetrics,
) -> Result<()> {
    exec(conn,
        "INSERT INTO epoch_metrics (job, epoch, attempt, metrics_json) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (job, epoch) DO UPDATE SET attempt = excluded.attempt, metrics_json = excluded.metrics_json",
        params![job.as_str(), m.epoch, attempt_key(attempt)?, to_json(m)?],
    )?;
    Ok(())
}

/// Whether every job is finished (an index probe, not a count: this runs on
/// every lease).
fn all_finished(conn: &Connection) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE status IN ('pending', 'leased', 'running'))",
    )?;
    Ok(stmt.query_row([], |r| r.get(0))?)
}

impl Scheduler {
    pub(super) fn deadline_from(&self, now: i64) -> i64 {
        self.lease_deadline(now)
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
        exec(
            &tx,
            "INSERT OR IGNORE INTO experiments
             (id, name, config_toml, config_hash, data_fingerprint, class_names_json, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                experiment.0,
                s.config.name,
                s.config_toml,
                config_hash,
                s.data_fingerprint,
                to_json(&s.class_names)?,
                now
            ],
        )?;
        let max_attempts = s.config.protocol.max_attempts;
        let prunes = prune_rule(&s.config).ok().flatten().is_some();
        for (position, job) in s.jobs.iter().enumerate() {
            match reads::job(&tx, &job.id)? {
                None => {
                    let job_config = s.job_config(job);
                    let job_toml = job_config.to_toml_string();
                    exec(&tx,
                        "INSERT INTO jobs (id, experiment, variant, seed, fold, protocol, config_toml,
                             split_json, data_fingerprint, max_attempts, status, created_ms, updated_ms,
                             epochs)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?11, ?12)",
                        params![
                            job.id.as_str(),
                            experiment.0,
                            job.variant.as_str(),
                            i64::try_from(job.seed).map_err(|_| SchedulerError::BadRequest {
                                message: format!("seed {} is too large", job.seed)
                            })?,
                            job.fold,
                            job.protocol.as_str(),
                            job_toml,
                            to_json(&job.split)?,
                            s.data_fingerprint,
                            max_attempts,
                            now,
                            job_config.training.epochs
                        ],
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
                        exec(
                            &tx,
                            "UPDATE jobs SET status = 'pending', failures = 0, lost_attempts = 0,
                                 current_attempt = NULL, error = NULL, finished_ms = NULL,
                                 pruned_json = NULL,
                                 max_attempts = ?2, updated_ms = ?3
                             WHERE id = ?1",
                            params![job.id.as_str(), max_attempts, now],
                        )?;
                        out.jobs_requeued += 1;
                    }
                },
            }
            exec(
                &tx,
                "INSERT OR IGNORE INTO experiment_jobs (experiment, job, position, configuration)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    experiment.0,
                    job.id.as_str(),
                    i64::try_from(position).unwrap_or(i64::MAX),
                    i64::try_from(job.configuration).unwrap_or(i64::MAX)
                ],
            )?;
        }
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(experiment = %out.experiment, new = out.jobs_new, reused = out.jobs_reused,
            in_progress = out.jobs_in_progress, requeued = out.jobs_requeued, "experiment submitted");
        Ok(out)
    }

    /// Leases up to one pending job per free slot to `worker` (jobs in submission
    /// order, only those whose data fingerprint the worker has); never more jobs
    /// than the worker registered slots.
    pub fn lease(&mut self, worker: &WorkerId, free_slots: &[String]) -> Result<LeaseOutcome> {
        let now = self.now_ms();
        let deadline = self.deadline_from(now);
        let tx = self.store.transaction()?;
        let w = reads::worker(&tx, worker)?.ok_or_else(|| SchedulerError::UnknownWorker {
            worker: worker.clone(),
        })?;
        touch_worker(&tx, worker, now)?;
        let mut out = LeaseOutcome::default();
        if w.state == WorkerState::Draining {
            out.drain = true;
            out.all_done = all_finished(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            return Ok(out);
        }
        // At most one job per slot the worker registered, whatever it asks for.
        for device in free_slots.iter().take(w.slots.len()) {
            let next = reads::first_job(
                &tx,
                "WHERE status = 'pending' AND (data_fingerprint IS NULL OR data_fingerprint = ?1)",
                [w.data_fingerprint.as_str()],
            )?;
            let Some(job) = next else {
                break;
            };
            exec(
                &tx,
                "INSERT INTO attempts (job, worker, device, leased_ms, deadline_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job.id.as_str(), worker.0, device, now, deadline],
            )?;
            let attempt = AttemptId(tx.last_insert_rowid().unsigned_abs());
            exec(&tx,
                "UPDATE jobs SET status = 'leased', attempts = attempts + 1, current_attempt = ?2,
                     worker = ?3, device = ?4, progress_epoch = NULL, progress_of = NULL, updated_ms = ?5
                 WHERE id = ?1",
                params![job.id.as_str(), attempt_key(attempt)?, w.name, device, now],
            )?;
            let checkpoint_epoch: Option<u32> = tx
                .query_row(
                    "SELECT epoch FROM checkpoints WHERE job = ?1",
                    [job.id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            tracing::info!(job = %job.id, %attempt, worker = %worker, device = %device, "job leased");
            out.assignments.push(Assignment {
                attempt,
                job: job.id,
                experiment: job.experiment,
                device: device.clone(),
                deadline_ms: deadline,
                config_toml: job.config_toml,
                variant: job.variant,
                seed: job.seed,
                fold: job.fold,
                protocol: job.protocol,
                split: job.split,
                checkpoint_epoch,
            });
        }
        out.all_done = all_finished(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Extends the leases of the worker's current attempts in `progress` (a leased
    /// job becomes running) and lists the attempts it must stop.
    pub fn heartbeat(
        &mut self,
        worker: &WorkerId,
        progress: &[Progress],
    ) -> Result<HeartbeatOutcome> {
        let now = self.now_ms();
        let deadline = self.deadline_from(now);
        let tx = self.store.transaction()?;
        let w = reads::worker(&tx, worker)?.ok_or_else(|| SchedulerError::UnknownWorker {
            worker: worker.clone(),
        })?;
        touch_worker(&tx, worker, now)?;
        let mut out = HeartbeatOutcome {
            cancel: Vec::new(),
            drain: w.state == WorkerState::Draining,
        };
        for p in progress {
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
            extend(&tx, p.attempt, deadline, worker, now)?;
            exec(&tx,
                "UPDATE jobs SET status = 'running', progress_epoch = ?2, progress_of = ?3, updated_ms = ?4
                 WHERE id = ?1",
                params![job.id.as_str(), p.epoch, p.of, now],
            )?;
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
    pub fn record_epoch(&mut self, attempt: AttemptId, m: &EpochMetrics) -> Result<bool> {
        let now = self.now_ms();
        let deadline = self.deadline_from(now);
        if m.epoch == 0 {
            return Err(SchedulerError::BadRequest {
                message: "epochs are numbered from 1".into(),
            });
        }
        check_epoch(m)?;
        let tx = self.store.transaction()?;
        let (a, job) = fence(&tx, attempt)?;
        upsert_epoch(&tx, &job.id, attempt, m)?;
        extend(&tx, attempt, deadline, &a.worker, now)?;
        exec(
            &tx,
            "UPDATE jobs SET status = 'running', progress_epoch = ?2, updated_ms = ?3 WHERE id = ?1",
            params![job.id.as_str(), m.epoch, now],
        )?;
        let pruned = prune_after_epoch(&tx, &mut self.prune_rules, &job.id, m.epoch, now)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(pruned)
    }

    /// Records a current attempt's result: the job succeeded (exactly once; a
    /// second completion is fenced).
    pub fn complete(&mut self, attempt: AttemptId, result: &JobResult) -> Result<()> {
        let now = self.now_ms();
        check_result(result)?;
        let tx = self.store.transaction()?;
        let (a, job) = fence(&tx, attempt)?;
        end_attempt(&tx, attempt, now, "succeeded", None)?;
        for m in &result.epochs {
            upsert_epoch(&tx, &job.id, attempt, m)?;
        }
        exec(&tx,
            "UPDATE jobs SET status = 'succeeded', current_attempt = NULL, error = NULL, result_json = ?2,
                 best_epoch = ?3, test_accuracy = ?4, test_loss = ?5, val_accuracy = ?6, val_loss = ?7,
                 train_seconds = ?8, updated_ms = ?9, finished_ms = ?9
             WHERE id = ?1",
            params![
                job.id.as_str(),
                to_json(result)?,
                result.best_epoch,
                result.test_accuracy,
                result.test_loss,
                result.val_accuracy,
                result.val_loss,
                result.train_seconds,
                now
            ],
        )?;
        let checkpoint = take_checkpoint_record(&tx, &job.id)?;
        touch_worker(&tx, &a.worker, now)?;
        tx.commit().map_err(StoreError::from)?;
        if let Some(sha) = checkpoint {
            remove_quietly(&self.checkpoint_dir().file(&job.id, &sha));
        }
        tracing::info!(job = %job.id, %attempt, test_accuracy = result.test_accuracy, "job succeeded");
        Ok(())
    }

    /// Records a current attempt's failure. Deterministic: the job fails at once.
    /// Transient: back to pending while its failures are below `max_attempts`.
    pub fn fail(
        &mut self,
        attempt: AttemptId,
        error: &str,
        class: FailureClass,
    ) -> Result<FailOutcome> {
        let now = self.now_ms();
        let tx = self.store.transaction()?;
        let (a, job) = fence(&tx, attempt)?;
        end_attempt(&tx, attempt, now, "failed", Some(error))?;
        let failures = job.failures + 1;
        let outcome = if class == FailureClass::Deterministic || failures >= job.max_attempts {
            FailOutcome::Failed
        } else {
            FailOutcome::Retry
        };
        let (status, finished) = match outcome {
            FailOutcome::Failed => ("failed", Some(now)),
            FailOutcome::Retry => ("pending", None),
        };
        exec(
            &tx,
            "UPDATE jobs SET status = ?2, failures = ?3, current_attempt = NULL, error = ?4,
                 updated_ms = ?5, finished_ms = ?6
             WHERE id = ?1",
            params![job.id.as_str(), status, failures, error, now, finished],
        )?;
        touch_worker(&tx, &a.worker, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::warn!(job = %job.id, %attempt, ?class, ?outcome, error, "job attempt failed");
        Ok(outcome)
    }

    /// A current attempt gives its job back (worker draining): pending again, not
    /// counted as a failure.
    pub fn release(&mut self, attempt: AttemptId) -> Result<()> {
        let now = self.now_ms();
        let tx = self.store.transaction()?;
        let (a, job) = fence(&tx, attempt)?;
        end_attempt(&tx, attempt, now, "released", None)?;
        exec(
            &tx,
            "UPDATE jobs SET status = 'pending', current_attempt = NULL, updated_ms = ?2 WHERE id = ?1",
            params![job.id.as_str(), now],
        )?;
        touch_worker(&tx, &a.worker, now)?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(job = %job.id, %attempt, "job released");
        Ok(())
    }

    /// Ends every lease past its deadline: the job goes back to pending (not a
    /// failure) unless it has lost `max_lost` leases, then it fails. Workers silent
    /// for the lease timeout are marked lost. Returns the expired attempts.
    pub fn expire_leases(&mut self) -> Result<Vec<AttemptId>> {
        let now = self.now_ms();
        let timeout_ms = i64::from(self.settings.lease_timeout_seconds) * 1000;
        let max_lost = self.settings.max_lost;
        let tx = self.store.transaction()?;
        let expired: Vec<(i64, String)> = {
            let mut stmt = tx.prepare(
                "SELECT id, job FROM attempts WHERE ended_ms IS NULL AND deadline_ms <= ?1 ORDER BY id",
            )?;
            stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(expired.len());
        for (key, job_id) in expired {
            let attempt = AttemptId(key.unsigned_abs());
            end_attempt(&tx, attempt, now, "lost", Some("lease expired"))?;
            out.push(attempt);
            let Some(job) = reads::job(&tx, &JobId::new(job_id))? else {
                continue;
            };
            if job.current_attempt != Some(attempt) {
                continue;
            }
            let lost = job.lost_attempts + 1;
            if lost >= max_lost {
                let error =
                    format!("lost {lost} leases: its workers stopped heartbeating every time");
                exec(
                    &tx,
                    "UPDATE jobs SET status = 'failed', lost_attempts = ?2, current_attempt = NULL,
                         error = ?3, updated_ms = ?4, finished_ms = ?4
                     WHERE id = ?1",
                    params![job.id.as_str(), lost, error, now],
                )?;
                tracing::warn!(job = %job.id, %attempt, lost, "lease expired; job failed");
            } else {
                exec(&tx,
                    "UPDATE jobs SET status = 'pending', lost_attempts = ?2, current_attempt = NULL,
                         updated_ms = ?3
                     WHERE id = ?1",
                    params![job.id.as_str(), lost, now],
                )?;
                tracing::warn!(job = %job.id, %attempt, lost, "lease expired; job back to pending");
            }
        }
        exec(
            &tx,
            "UPDATE workers SET state = 'lost' WHERE state = 'alive' AND last_seen_ms <= ?1",
            [now - timeout_ms],
        )?;
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
        let n = exec(
            &tx,
            "UPDATE attempts SET deadline_ms = ?1 WHERE ended_ms IS NULL AND deadline_ms < ?1",
            [deadline],
        )?;
        exec(
            &tx,
            "UPDATE workers SET last_seen_ms = ?1 WHERE state != 'lost' AND last_seen_ms < ?1",
            [now],
        )?;
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
            reads::job(&tx, job)?.ok_or_else(|| SchedulerError::UnknownJob { job: job.clone() })?;
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
            end_attempt(&tx, attempt, now, "cancelled", None)?;
        }
        exec(&tx,
            "UPDATE jobs SET status = 'cancelled', current_attempt = NULL, updated_ms = ?2, finished_ms = ?2
             WHERE id = ?1",
            params![job.as_str(), now],
        )?;
        tx.commit().map_err(StoreError::from)?;
        tracing::info!(job = %job, "job cancelled");
        Ok(())
    }

    /// Drains a worker: it gets no new leases and its heartbeats answer `drain`.
    pub fn drain(&mut self, worker: &WorkerId) -> Result<()> {
        let tx = self.store.transaction()?;
        let n = exec(
            &tx,
            "UPDATE workers SET state = 'draining' WHERE id = ?1",
            [worker.0.as_str()],
        )?;
        if n == 0 {
            return Err(SchedulerError::UnknownWorker {
                worker: worker.clone(),
            });
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }
}

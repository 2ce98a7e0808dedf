//! Control of a running experiment by an operator: cancel one job, a
//! configuration or a whole experiment; put failed, cancelled or pruned jobs
//! back in the queue; drain a worker.

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::configurations;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;

use super::checkpoint_ops::drop_checkpoint;
use super::types::{WorkerId, WorkerState};
use super::{Scheduler, SchedulerError};
use crate::states::AttemptOutcome;
use crate::store::experiments::{self, ExperimentRef};
use crate::store::jobs;
use crate::store::{StoreError, job_writes, lease_writes};

type Result<T> = std::result::Result<T, SchedulerError>;

/// What to cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelTarget {
    /// One job.
    Job(JobId),
    /// An experiment (id or name), or one configuration of it (label or
    /// index).
    Experiment {
        /// The experiment's id or name.
        experiment: String,
        /// A configuration's label or index.
        configuration: Option<String>,
    },
}

/// States a job is still to finish in.
const UNFINISHED: [JobStatus; 3] = [JobStatus::Pending, JobStatus::Leased, JobStatus::Running];

fn bad(message: String) -> SchedulerError {
    SchedulerError::BadRequest { message }
}

impl Scheduler {
    /// The one experiment `key` names (an id, or a name used once).
    fn experiment(&self, key: &str) -> Result<ExperimentRef> {
        let mut found = experiments::experiments_by_id_or_name(self.store.conn(), key)?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(bad(format!(
                "experiment {key:?}: no experiment has this id or name"
            ))),
            n => Err(bad(format!(
                "experiment {key:?}: {n} experiments have this name; give an id ({})",
                found
                    .iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The index of the configuration `key` (a label or an index) names.
    fn configuration(experiment: &ExperimentRef, key: &str) -> Result<i64> {
        let config = ExperimentConfig::from_toml_str(&experiment.config_toml)
            .map_err(|e| bad(format!("experiment {}: stored config: {e}", experiment.id)))?;
        let all = configurations(&config)
            .map_err(|e| bad(format!("experiment {}: stored config: {e}", experiment.id)))?;
        let by_label = all.iter().position(|c| c.label == key);
        let by_index = key.parse::<usize>().ok().filter(|&i| i < all.len());
        let index = by_label.or(by_index).ok_or_else(|| {
            bad(format!(
                "configuration {key:?}: experiment {} has no configuration with this label or index (0..{})",
                experiment.id,
                all.len()
            ))
        })?;
        i64::try_from(index).map_err(|_| bad(format!("configuration {key:?}: index too large")))
    }

    /// Cancels the unfinished jobs `target` names; returns them (empty when
    /// nothing was left to cancel). Their workers hear it at their next
    /// heartbeat.
    pub fn cancel_target(&mut self, target: &CancelTarget) -> Result<Vec<JobId>> {
        let jobs = match target {
            CancelTarget::Job(job) => vec![job.clone()],
            CancelTarget::Experiment {
                experiment,
                configuration,
            } => {
                let e = self.experiment(experiment)?;
                let c = configuration
                    .as_deref()
                    .map(|key| Self::configuration(&e, key))
                    .transpose()?;
                jobs::jobs_in_states(self.store.conn(), &e.id, c, &UNFINISHED)?
            }
        };
        let mut cancelled = Vec::new();
        for job in jobs {
            let was = self.store.job(&job)?.map(|row| row.status);
            if was == Some(JobStatus::Cancelled) {
                continue;
            }
            match self.cancel(&job) {
                Ok(()) => cancelled.push(job),
                // A single job that ended meanwhile is reported, not an error.
                Err(SchedulerError::AlreadyFinished { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    /// Puts the jobs of `experiment` in one of `states` (failed, cancelled,
    /// pruned) back in the queue with fresh attempts and no checkpoint;
    /// returns them.
    pub fn retry(&mut self, experiment: &str, states: &[JobStatus]) -> Result<Vec<JobId>> {
        if states.is_empty() || states.iter().any(|s| UNFINISHED.contains(s)) {
            return Err(bad(
                "retry takes failed, cancelled and/or pruned jobs".to_owned()
            ));
        }
        let e = self.experiment(experiment)?;
        let max_attempts = ExperimentConfig::from_toml_str(&e.config_toml)
            .map(|c| c.protocol.max_attempts)
            .map_err(|err| bad(format!("experiment {}: stored config: {err}", e.id)))?;
        let now = self.now_ms();
        let tx = self.store.transaction()?;
        let jobs = jobs::jobs_in_states(&tx, &e.id, None, states)?;
        let mut dropped = Vec::new();
        for job in &jobs {
            drop_checkpoint(&tx, job, &mut dropped)?;
            job_writes::requeue_job(&tx, job, max_attempts, now)?;
        }
        tx.commit().map_err(StoreError::from)?;
        self.remove_checkpoint_files(&dropped);
        tracing::info!(experiment = %e.id, jobs = jobs.len(), "jobs put back in the queue");
        Ok(jobs)
    }
}

impl Scheduler {
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

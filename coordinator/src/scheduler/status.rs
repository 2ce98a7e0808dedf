//! The progress snapshot `coordinator status` shows.

use std::collections::BTreeMap;

use spikecv_common::experiment::config::ExperimentConfig;

use super::types::{
    AttemptId, ExperimentId, ExperimentStatus, RunningJob, StatusCounts, StatusSnapshot, WorkerId,
    WorkerInfo, WorkerState,
};
use super::{Scheduler, SchedulerError};
use crate::eta::eta_seconds;
use crate::store::{experiments, job_writes, jobs, worker_rows};

impl Scheduler {
    /// Jobs per status (overall and per experiment), workers, running attempts,
    /// throughput and an estimate of the time left.
    pub fn status(&self) -> Result<StatusSnapshot, SchedulerError> {
        let now = self.now_ms();
        let conn = self.store.conn();
        // Aggregates in SQL: a status poll must stay cheap with 100,000 jobs.
        let mut counts = StatusCounts::default();
        for (status, n) in jobs::status_counts(conn)? {
            counts.add_many(status, n);
        }
        let mut per_experiment: BTreeMap<String, StatusCounts> = BTreeMap::new();
        for (experiment, status, n) in jobs::status_counts_by_experiment(conn)? {
            per_experiment
                .entry(experiment)
                .or_default()
                .add_many(status, n);
        }
        let experiments = experiments::experiment_records(conn)?
            .into_iter()
            .map(|e| ExperimentStatus {
                counts: per_experiment.remove(&e.id).unwrap_or_default(),
                id: ExperimentId(e.id),
                name: e.name,
            })
            .collect();
        let jobs = jobs::live_jobs(conn)?;

        let mut running = Vec::new();
        let mut per_worker: BTreeMap<WorkerId, Vec<AttemptId>> = BTreeMap::new();
        for job in &jobs {
            let Some(attempt) = job.current_attempt else {
                continue;
            };
            let Some(a) = jobs::attempt(conn, attempt)? else {
                continue;
            };
            per_worker
                .entry(a.worker.clone())
                .or_default()
                .push(attempt);
            running.push(RunningJob {
                job: job.id.clone(),
                attempt,
                variant: job.variant,
                seed: job.seed,
                fold: job.fold,
                worker: a.worker,
                device: a.device,
                progress: job.progress,
            });
        }

        let suspects = crate::store::verify_rows::suspects(conn)?;
        let suspect_of = |id: &WorkerId| {
            suspects
                .iter()
                .find(|s| s.worker == *id)
                .map(|s| s.reason.clone())
        };
        let workers: Vec<WorkerInfo> = worker_rows::query_workers(conn, "", [])?
            .into_iter()
            .map(|w| WorkerInfo {
                suspect: suspect_of(&w.id),
                running: per_worker.remove(&w.id).unwrap_or_default(),
                id: w.id,
                name: w.name,
                host: w.host,
                slots: w.slots,
                state: w.state,
                last_seen_ms: w.last_seen_ms,
            })
            .collect();

        let succeeded_last_hour = jobs::succeeded_since(conn, now - 3_600_000)?;
        let slots: usize = workers
            .iter()
            // Draining workers take no new jobs.
            .filter(|w| w.state == WorkerState::Alive)
            .map(|w| w.slots.len())
            .sum();
        let eta_seconds = eta_seconds(&jobs::eta_inputs(conn, slots)?);
        Ok(StatusSnapshot {
            now_ms: now,
            counts,
            experiments,
            workers,
            running,
            succeeded_last_hour: u32::try_from(succeeded_last_hour).unwrap_or(u32::MAX),
            eta_seconds,
            waiting_for_trainers: jobs::missing_trainers(conn)?,
        })
    }
}

impl Scheduler {
    /// Fills in the epochs of jobs stored before the store kept them (schema
    /// 4), from each job's config; once, when the store opens.
    pub(super) fn fill_in_epochs(&mut self) -> Result<(), SchedulerError> {
        let tx = self.store.transaction()?;
        let rows = jobs::jobs_without_epochs(&tx)?;
        for (id, toml) in &rows {
            // A config that no longer parses keeps NULL: progress_of stands in.
            if let Ok(config) = ExperimentConfig::from_toml_str(toml) {
                job_writes::set_epochs(&tx, id, config.training.epochs)?;
            }
        }
        tx.commit().map_err(crate::store::StoreError::from)?;
        if !rows.is_empty() {
            tracing::info!(
                jobs = rows.len(),
                "epochs filled in for jobs stored before schema 4"
            );
        }
        Ok(())
    }
}

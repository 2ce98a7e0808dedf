//! The progress snapshot `coordinator status` shows.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use spikecv_common::config::ExperimentConfig;
use spikecv_common::job::JobStatus;

use super::types::{
    AttemptId, ExperimentId, ExperimentStatus, RunningJob, StatusCounts, StatusSnapshot, WorkerId,
    WorkerInfo, WorkerState,
};
use super::{Scheduler, SchedulerError};
use crate::eta::{EtaInputs, eta_seconds};
use crate::store::reads;

impl Scheduler {
    /// Jobs per status (overall and per experiment), workers, running attempts,
    /// throughput and an estimate of the time left.
    pub fn status(&self) -> Result<StatusSnapshot, SchedulerError> {
        let now = self.now_ms();
        let conn = self.store.conn();
        // Aggregates in SQL: a status poll must stay cheap with 100,000 jobs.
        let mut counts = StatusCounts::default();
        let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM jobs GROUP BY status")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        for (status, n) in rows {
            counts.add_many(parse_status(&status)?, n);
        }
        let mut per_experiment: BTreeMap<String, StatusCounts> = BTreeMap::new();
        let mut stmt = conn.prepare_cached(
            "SELECT ej.experiment, j.status, count(*) FROM experiment_jobs ej
             JOIN jobs j ON j.id = ej.job GROUP BY ej.experiment, j.status",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (experiment, status, n) in rows {
            per_experiment
                .entry(experiment)
                .or_default()
                .add_many(parse_status(&status)?, n);
        }
        let experiments = reads::experiments(conn)?
            .into_iter()
            .map(|e| ExperimentStatus {
                counts: per_experiment.remove(&e.id.0).unwrap_or_default(),
                id: ExperimentId(e.id.0),
                name: e.name,
            })
            .collect();
        let jobs = reads::query_jobs(conn, "WHERE status IN ('leased', 'running')", [])?;

        let mut running = Vec::new();
        let mut per_worker: BTreeMap<WorkerId, Vec<AttemptId>> = BTreeMap::new();
        for job in &jobs {
            let Some(attempt) = job.current_attempt else {
                continue;
            };
            let Some(a) = reads::attempt(conn, attempt)? else {
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

        let workers: Vec<WorkerInfo> = reads::query_workers(conn, "", [])?
            .into_iter()
            .map(|w| WorkerInfo {
                running: per_worker.remove(&w.id).unwrap_or_default(),
                id: w.id,
                name: w.name,
                host: w.host,
                slots: w.slots,
                state: w.state,
                last_seen_ms: w.last_seen_ms,
            })
            .collect();

        let succeeded_last_hour: i64 = conn.query_row(
            "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND finished_ms > ?1",
            params![now - 3_600_000],
            |r| r.get(0),
        )?;
        let slots: usize = workers
            .iter()
            // Draining workers take no new jobs.
            .filter(|w| w.state == WorkerState::Alive)
            .map(|w| w.slots.len())
            .sum();
        let eta_seconds = eta_seconds(&eta_inputs(conn, slots)?);
        Ok(StatusSnapshot {
            now_ms: now,
            counts,
            experiments,
            workers,
            running,
            succeeded_last_hour: u32::try_from(succeeded_last_hour).unwrap_or(u32::MAX),
            eta_seconds,
        })
    }
}

/// The time-left estimate's inputs over every job, from SQL aggregates (a
/// status poll stays cheap with 100,000 jobs).
fn eta_inputs(conn: &Connection, slots: usize) -> Result<EtaInputs, SchedulerError> {
    let (unfinished, epochs_left): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(max(coalesce(progress_of, epochs, 0)
                                           - coalesce(progress_epoch, 0), 0)), 0)
         FROM jobs WHERE status IN ('pending', 'leased', 'running')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (running_epoch_seconds, running): (f64, i64) = conn.query_row(
        "SELECT coalesce(sum(json_extract(m.metrics_json, '$.epoch_seconds')), 0), count(m.job)
         FROM jobs j JOIN epoch_metrics m ON m.job = j.id
              AND m.epoch = (SELECT max(epoch) FROM epoch_metrics WHERE job = j.id)
         WHERE j.status IN ('leased', 'running')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // NULL (None) when no job has a training time yet.
    let finished_epoch_seconds: Option<f64> = conn.query_row(
        "SELECT avg(train_seconds / epochs) FROM jobs
         WHERE train_seconds IS NOT NULL AND epochs > 0",
        [],
        |r| r.get(0),
    )?;
    Ok(EtaInputs {
        unfinished: unfinished.unsigned_abs(),
        epochs_left: epochs_left.unsigned_abs(),
        running_epoch_seconds,
        running: running.unsigned_abs(),
        finished_epoch_seconds,
        slots: slots as u64,
    })
}

impl Scheduler {
    /// Fills in the epochs of jobs stored before the store kept them (schema
    /// 4), from each job's config; once, when the store opens.
    pub(super) fn fill_in_epochs(&mut self) -> Result<(), SchedulerError> {
        let tx = self.store.transaction()?;
        let rows: Vec<(String, String)> = tx
            .prepare("SELECT id, config_toml FROM jobs WHERE epochs IS NULL")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, toml) in &rows {
            // A config that no longer parses keeps NULL: progress_of stands in.
            if let Ok(config) = ExperimentConfig::from_toml_str(toml) {
                tx.execute(
                    "UPDATE jobs SET epochs = ?2 WHERE id = ?1",
                    params![id, config.training.epochs],
                )?;
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

fn parse_status(s: &str) -> Result<JobStatus, SchedulerError> {
    s.parse()
        .map_err(|e| reads::corrupt("jobs", "(status count)", "status", e).into())
}

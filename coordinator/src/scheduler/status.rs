//! The progress snapshot `coordinator status` shows.

use std::collections::BTreeMap;

use rusqlite::params;
use spikecv_common::job::JobStatus;
use spikecv_common::plan::JobId;

use super::types::{
    AttemptId, ExperimentId, ExperimentStatus, RunningJob, StatusCounts, StatusSnapshot, WorkerId,
    WorkerInfo, WorkerState,
};
use super::{Scheduler, SchedulerError};
use crate::store::reads;

impl Scheduler {
    /// Jobs per status (overall and per experiment), workers, running attempts,
    /// throughput and an estimate of the time left.
    pub fn status(&self) -> Result<StatusSnapshot, SchedulerError> {
        let now = self.now_ms();
        let conn = self.store.conn();
        let jobs = reads::query_jobs(conn, "", [])?;
        let mut counts = StatusCounts::default();
        let by_id: BTreeMap<&JobId, &reads::JobRow> = jobs.iter().map(|j| (&j.id, j)).collect();
        for job in &jobs {
            counts.add(job.status);
        }

        let mut experiments = Vec::new();
        for e in reads::experiments(conn)? {
            let mut stmt = conn.prepare("SELECT job FROM experiment_jobs WHERE experiment = ?1")?;
            let ids = stmt
                .query_map([e.id.0.as_str()], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut c = StatusCounts::default();
            for id in ids {
                if let Some(job) = by_id.get(&JobId::new(id)) {
                    c.add(job.status);
                }
            }
            experiments.push(ExperimentStatus {
                id: ExperimentId(e.id.0),
                name: e.name,
                counts: c,
            });
        }

        let mut running = Vec::new();
        let mut per_worker: BTreeMap<WorkerId, Vec<AttemptId>> = BTreeMap::new();
        for job in jobs
            .iter()
            .filter(|j| matches!(j.status, JobStatus::Leased | JobStatus::Running))
        {
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
        let times: Vec<f64> = jobs.iter().filter_map(|j| j.train_seconds).collect();
        let slots: usize = workers
            .iter()
            .filter(|w| w.state != WorkerState::Lost)
            .map(|w| w.slots.len())
            .sum();
        let eta_seconds = if counts.unfinished() == 0 {
            Some(0.0)
        } else if times.is_empty() || slots == 0 {
            None
        } else {
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            let rounds = (f64::from(counts.unfinished()) / slots as f64).ceil();
            Some(rounds * mean)
        };
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

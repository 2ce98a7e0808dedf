//! The aggregates a status snapshot needs, in SQL (a status poll stays cheap
//! with 100,000 jobs).

use rusqlite::{Connection, params};
use spikecv_common::experiment::job::JobStatus;

use super::StoreError;
use crate::eta::EtaInputs;

type Result<T> = std::result::Result<T, StoreError>;

/// Jobs per status over the whole store.
pub(crate) fn status_counts(conn: &Connection) -> Result<Vec<(JobStatus, u32)>> {
    let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM jobs GROUP BY status")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Jobs per experiment and status.
pub(crate) fn status_counts_by_experiment(
    conn: &Connection,
) -> Result<Vec<(String, JobStatus, u32)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ej.experiment, j.status, count(*) FROM experiment_jobs ej
         JOIN jobs j ON j.id = ej.job GROUP BY ej.experiment, j.status",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Jobs that succeeded after `since`.
pub(crate) fn succeeded_since(conn: &Connection, since: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM jobs WHERE status = ?2 AND finished_ms > ?1")?
        .query_row(params![since, JobStatus::Succeeded], |r| r.get(0))?)
}

/// The time-left estimate's inputs over every job (`slots`: the live
/// workers' slots).
pub(crate) fn eta_inputs(conn: &Connection, slots: usize) -> Result<EtaInputs> {
    let (unfinished, epochs_left): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(max(coalesce(progress_of, epochs, 0)
                                           - coalesce(progress_epoch, 0), 0)), 0)
         FROM jobs WHERE status IN ('pending', 'leased', 'running')",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (running_epoch_seconds, running): (f64, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(json_extract(m.metrics_json, '$.epoch_seconds')), 0), count(m.job)
         FROM jobs j JOIN epoch_metrics m ON m.job = j.id
              AND m.epoch = (SELECT max(epoch) FROM epoch_metrics WHERE job = j.id)
         WHERE j.status IN ('leased', 'running')",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    // NULL (None) when no job has a training time yet.
    let finished_epoch_seconds: Option<f64> = conn
        .prepare_cached(
            "SELECT avg(train_seconds / epochs) FROM jobs
         WHERE train_seconds IS NOT NULL AND epochs > 0",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(EtaInputs {
        unfinished: unfinished.unsigned_abs(),
        epochs_left: epochs_left.unsigned_abs(),
        running_epoch_seconds,
        running: running.unsigned_abs(),
        finished_epoch_seconds,
        slots: slots as u64,
    })
}

/// Jobs stored without their epochs (before schema 4): (id, config TOML).
pub(crate) fn jobs_without_epochs(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT id, config_toml FROM jobs WHERE epochs IS NULL")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

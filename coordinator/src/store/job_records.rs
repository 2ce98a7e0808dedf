//! Jobs read back as [`JobRecord`]s over a read-only connection: the one
//! mapping of a job row, every job of an experiment (for a report, with every
//! epoch and the confusion matrix; for the live dashboard, with only the
//! latest epoch of unfinished jobs), one job by id, and the attempts running
//! now with their jobs.

use std::str::FromStr;

use rusqlite::{Connection, Row};
use serde::Serialize;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::sections::ProtocolKind;

use super::error::{FromStoreError, StoreError, corrupt};
use super::metrics::{epochs, latest_epochs};
use super::records::JobRecord;

/// How much of each job to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every epoch and the confusion matrix (reports).
    Full,
    /// The latest epoch of unfinished jobs only, no confusion matrix (the live
    /// dashboard: 10,000 jobs × 400 epochs read in milliseconds).
    Live,
}

/// The job columns every reader takes, in [`record`]'s order (followed by
/// the configuration, the pruner's verdict and the planned epochs).
pub(crate) const COLUMNS: &str = "j.id, j.variant, j.seed, j.fold, j.protocol, j.status, j.attempts, \
    j.best_epoch, j.test_accuracy, j.test_loss, j.val_accuracy, j.val_loss, j.train_seconds, \
    j.worker, j.device, j.error, j.finished_ms, j.progress_epoch, j.progress_of";

/// Stores before schema 4 (read without migrating) have no sweeps and no
/// planned epochs: constants stand in for those columns.
fn schema_4_columns(conn: &Connection, link: bool) -> Result<&'static str, FromStoreError> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(match (version >= 4, link) {
        (true, true) => "coalesce(ej.configuration, 0), j.pruned_json, j.epochs",
        (true, false) => "0, j.pruned_json, j.epochs",
        (false, _) => "0, NULL, NULL",
    })
}

/// How many columns [`record`] reads: [`COLUMNS`] and the three after them.
pub(crate) const RECORD_COLUMNS: usize = 22;

/// One row as a record without epochs or confusion matrix (the one mapping
/// of a job row, for every reader).
pub(crate) fn record(experiment: &str, r: &Row<'_>) -> Result<JobRecord, StoreError> {
    let id: String = r.get(0)?;
    let (variant, protocol, status) = job_kind(
        &id,
        &r.get::<_, String>(1)?,
        &r.get::<_, String>(4)?,
        &r.get::<_, String>(5)?,
    )?;
    let int = |v: i64, column| u32::try_from(v).map_err(|e| corrupt("jobs", &id, column, e));
    let opt_int = |i: usize, column| -> Result<Option<u32>, StoreError> {
        r.get::<_, Option<i64>>(i)?
            .map(|v| int(v, column))
            .transpose()
    };
    let pruned: Option<String> = r.get(20)?;
    Ok(JobRecord {
        experiment: experiment.to_owned(),
        variant,
        seed: u64::try_from(r.get::<_, i64>(2)?).map_err(|e| corrupt("jobs", &id, "seed", e))?,
        fold: int(r.get(3)?, "fold")?,
        protocol,
        status,
        attempts: int(r.get(6)?, "attempts")?,
        best_epoch: opt_int(7, "best_epoch")?,
        test_accuracy: r.get(8)?,
        test_loss: r.get(9)?,
        val_accuracy: r.get(10)?,
        val_loss: r.get(11)?,
        train_seconds: r.get(12)?,
        worker: r.get(13)?,
        device: r.get(14)?,
        error: r.get(15)?,
        epochs: Vec::new(),
        confusion: None,
        finished_unix: r.get::<_, Option<i64>>(16)?.map(|ms| ms.div_euclid(1000)),
        progress_epoch: opt_int(17, "progress_epoch")?,
        progress_of: opt_int(18, "progress_of")?,
        configuration: usize::try_from(r.get::<_, i64>(19)?)
            .map_err(|e| corrupt("experiment_jobs", &id, "configuration", e))?,
        pruned: pruned
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("jobs", &id, "pruned_json", e))?,
        planned_epochs: opt_int(21, "epochs")?,
        provenance: None,
        id,
    })
}

/// Parses the kind columns of the `jobs` row `key`: variant, protocol, status.
pub(crate) fn job_kind(
    key: &str,
    variant: &str,
    protocol: &str,
    status: &str,
) -> Result<(Variant, ProtocolKind, JobStatus), StoreError> {
    let variant = Variant::from_str(variant).map_err(|e| corrupt("jobs", key, "variant", e))?;
    let protocol =
        ProtocolKind::from_str(protocol).map_err(|e| corrupt("jobs", key, "protocol", e))?;
    let status = JobStatus::from_str(status).map_err(|e| corrupt("jobs", key, "status", e))?;
    Ok((variant, protocol, status))
}

/// Every job of experiment `id` (including jobs it shares with an earlier
/// experiment that planned the same job), in plan order, with every epoch and
/// its confusion matrix.
pub fn jobs(conn: &Connection, experiment: &str) -> Result<Vec<JobRecord>, FromStoreError> {
    jobs_at(conn, experiment, Depth::Full)
}

/// Every job of `experiment`, in plan order, read to `depth`.
pub fn jobs_at(
    conn: &Connection,
    experiment: &str,
    depth: Depth,
) -> Result<Vec<JobRecord>, FromStoreError> {
    // The result JSON (for the confusion matrix) comes with the row, after
    // the record's columns; the live view does not read it.
    let result_column = match depth {
        Depth::Full => "j.result_json",
        Depth::Live => "NULL",
    };
    let sql = format!(
        "SELECT {COLUMNS}, {}, {result_column} FROM jobs j
         LEFT JOIN experiment_jobs ej ON ej.job = j.id AND ej.experiment = ?1
         WHERE ej.experiment IS NOT NULL OR j.experiment = ?1
         ORDER BY ej.position, j.rowid",
        schema_4_columns(conn, true)?
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([experiment])?;
    let mut out = Vec::new();
    let mut results: Vec<Option<String>> = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(record(experiment, r)?);
        results.push(r.get(RECORD_COLUMNS)?);
    }
    match depth {
        Depth::Full => {
            for (job, result_json) in out.iter_mut().zip(results) {
                fill_full(conn, job, result_json)?;
            }
        }
        Depth::Live => {
            let mut latest = latest_epochs(conn)?;
            for job in out.iter_mut().filter(|j| !j.status.is_terminal()) {
                job.epochs.extend(latest.remove(&job.id));
            }
        }
    }
    Ok(out)
}

/// Adds a job's epochs and confusion matrix (the result JSON carries both;
/// epochs come from their own table when it has them).
fn fill_full(
    conn: &Connection,
    job: &mut JobRecord,
    result_json: Option<String>,
) -> Result<(), FromStoreError> {
    job.epochs = epochs(conn, &job.id)?;
    job.provenance = provenance(conn, &job.id)?;
    let key = job.id.clone();
    let result: Option<serde_json::Value> = result_json
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("jobs", &key, "result_json", e))?;
    job.confusion = result
        .as_ref()
        .and_then(|r| r.get("confusion"))
        .filter(|c| !c.is_null())
        .map(|c| serde_json::from_value::<Vec<Vec<u32>>>(c.clone()))
        .transpose()
        .map_err(|e| corrupt("jobs", &key, "result_json.confusion", e))?;
    let result_epochs = result.as_ref().and_then(|r| r.get("epochs"));
    if let Some(list) = result_epochs.filter(|_| job.epochs.is_empty()) {
        job.epochs = serde_json::from_value(list.clone())
            .map_err(|e| corrupt("jobs", &key, "result_json.epochs", e))?;
    }
    Ok(())
}

/// A job's provenance (schema 9 on; `None` before, or when its worker sent none).
fn provenance(conn: &Connection, id: &str) -> Result<Option<Provenance>, FromStoreError> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 9 {
        return Ok(None);
    }
    let text: Option<String> = conn.query_row(
        "SELECT provenance_json FROM jobs WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?;
    text.as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("jobs", id, "provenance_json", e).into())
}

/// One job by id (outside any experiment: configuration 0, experiment left
/// empty), with its latest epoch.
pub fn job(conn: &Connection, id: &str) -> Result<Option<JobRecord>, FromStoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, {} FROM jobs j WHERE j.id = ?1",
        schema_4_columns(conn, false)?
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([id])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let mut job = record("", r)?;
    job.epochs.extend(epochs(conn, id)?.pop());
    Ok(Some(job))
}

/// One open attempt: the worker and the job it runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAttempt {
    /// Worker id.
    pub worker: String,
    /// The job.
    pub job: WorkerJob,
}

/// A job a worker runs (as the dashboard lists it under the worker).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerJob {
    /// Job id.
    pub job: String,
    /// Slot.
    pub device: String,
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Last reported epoch.
    pub epoch: Option<u32>,
    /// Epochs in total, as reported.
    pub of: Option<u32>,
}

/// The attempts that are their job's current one and have not ended.
pub fn open_attempts(conn: &Connection) -> Result<Vec<OpenAttempt>, FromStoreError> {
    let mut stmt = conn.prepare(
        "SELECT a.worker, a.job, a.device, j.variant, j.seed, j.fold, j.progress_epoch, j.progress_of
         FROM attempts a JOIN jobs j ON j.current_attempt = a.id
         WHERE a.ended_ms IS NULL ORDER BY a.id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(OpenAttempt {
                worker: r.get(0)?,
                job: WorkerJob {
                    job: r.get(1)?,
                    device: r.get(2)?,
                    variant: r.get(3)?,
                    seed: r.get::<_, i64>(4)?.unsigned_abs(),
                    fold: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                    epoch: r
                        .get::<_, Option<i64>>(6)?
                        .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                    of: r
                        .get::<_, Option<i64>>(7)?
                        .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

//! Rows of the store read back as typed values.

use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row};
use spikecv_common::config::{ProtocolKind, Variant};
use spikecv_common::cv::FoldSplit;
use spikecv_common::job::JobStatus;
use spikecv_common::plan::JobId;

use super::StoreError;
use crate::ids::{AttemptId, ExperimentId, SlotInfo, WorkerId};
use crate::states::WorkerState;

/// A [`StoreError::Corrupt`] for a value that does not parse.
pub(crate) fn corrupt(
    table: &'static str,
    key: &str,
    column: &'static str,
    message: impl ToString,
) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        column,
        message: message.to_string(),
    }
}

/// One `experiments` row.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRow {
    /// Id.
    pub id: ExperimentId,
    /// Name from the config.
    pub name: Option<String>,
    /// The config text as submitted.
    pub config_toml: String,
    /// SHA-256 (hex) of the normalised config.
    pub config_hash: String,
    /// Fingerprint of the data set the plan was made from, when known.
    pub data_fingerprint: Option<String>,
    /// Class names in class order.
    pub class_names: Vec<String>,
    /// Submission time.
    pub created_ms: i64,
}

/// One `jobs` row.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// Id.
    pub id: JobId,
    /// The experiment that created it.
    pub experiment: ExperimentId,
    /// Variant.
    pub variant: Variant,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Config TOML handed to workers.
    pub config_toml: String,
    /// Recordings.
    pub split: FoldSplit,
    /// Data fingerprint the job needs (None: any).
    pub data_fingerprint: Option<String>,
    /// Transient failures allowed.
    pub max_attempts: u32,
    /// Status.
    pub status: JobStatus,
    /// Leases handed out.
    pub attempts: u32,
    /// Failures counted against `max_attempts`.
    pub failures: u32,
    /// Leases lost (expired).
    pub lost_attempts: u32,
    /// The current attempt while leased or running.
    pub current_attempt: Option<AttemptId>,
    /// Last reported (epoch, of).
    pub progress: Option<(u32, u32)>,
    /// Last error.
    pub error: Option<String>,
    /// The JobResult JSON once succeeded.
    pub result_json: Option<String>,
    /// Selected epoch.
    pub best_epoch: Option<u32>,
    /// Test accuracy.
    pub test_accuracy: Option<f64>,
    /// Test loss.
    pub test_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Training seconds.
    pub train_seconds: Option<f64>,
    /// Worker (name) that ran it last.
    pub worker: Option<String>,
    /// Device it ran on last.
    pub device: Option<String>,
    /// Last change.
    pub updated_ms: i64,
    /// When it reached its final state.
    pub finished_ms: Option<i64>,
}

/// One `attempts` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// Id.
    pub id: AttemptId,
    /// Its job.
    pub job: JobId,
    /// Its worker.
    pub worker: WorkerId,
    /// Its slot.
    pub device: String,
    /// Lease time.
    pub leased_ms: i64,
    /// Deadline.
    pub deadline_ms: i64,
    /// End time, once ended.
    pub ended_ms: Option<i64>,
    /// How it ended.
    pub outcome: Option<String>,
}

/// One `workers` row.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// Id.
    pub id: WorkerId,
    /// Name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Slots.
    pub slots: Vec<SlotInfo>,
    /// Data fingerprint.
    pub data_fingerprint: String,
    /// State.
    pub state: WorkerState,
    /// Last call.
    pub last_seen_ms: i64,
}

fn u32_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<u32> {
    row.get::<_, i64>(idx)
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

fn opt_u32_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<Option<u32>> {
    Ok(row
        .get::<_, Option<i64>>(idx)?
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
}

/// Raw job columns; typed conversion happens after the query.
struct RawJob {
    id: String,
    experiment: String,
    variant: String,
    seed: i64,
    fold: u32,
    protocol: String,
    config_toml: String,
    split_json: String,
    data_fingerprint: Option<String>,
    max_attempts: u32,
    status: String,
    attempts: u32,
    failures: u32,
    lost_attempts: u32,
    current_attempt: Option<i64>,
    progress_epoch: Option<u32>,
    progress_of: Option<u32>,
    error: Option<String>,
    result_json: Option<String>,
    best_epoch: Option<u32>,
    test_accuracy: Option<f64>,
    test_loss: Option<f64>,
    val_accuracy: Option<f64>,
    val_loss: Option<f64>,
    train_seconds: Option<f64>,
    worker: Option<String>,
    device: Option<String>,
    updated_ms: i64,
    finished_ms: Option<i64>,
}

/// The columns [`JobRow`] reads, for `SELECT`.
pub(crate) const JOB_COLUMNS: &str = "id, experiment, variant, seed, fold, protocol, config_toml, \
    split_json, data_fingerprint, max_attempts, status, attempts, failures, lost_attempts, \
    current_attempt, progress_epoch, progress_of, error, result_json, best_epoch, test_accuracy, \
    test_loss, val_accuracy, val_loss, train_seconds, worker, device, updated_ms, finished_ms";

fn raw_job(row: &Row<'_>) -> rusqlite::Result<RawJob> {
    Ok(RawJob {
        id: row.get("id")?,
        experiment: row.get("experiment")?,
        variant: row.get("variant")?,
        seed: row.get("seed")?,
        fold: u32_col(row, "fold")?,
        protocol: row.get("protocol")?,
        config_toml: row.get("config_toml")?,
        split_json: row.get("split_json")?,
        data_fingerprint: row.get("data_fingerprint")?,
        max_attempts: u32_col(row, "max_attempts")?,
        status: row.get("status")?,
        attempts: u32_col(row, "attempts")?,
        failures: u32_col(row, "failures")?,
        lost_attempts: u32_col(row, "lost_attempts")?,
        current_attempt: row.get("current_attempt")?,
        progress_epoch: opt_u32_col(row, "progress_epoch")?,
        progress_of: opt_u32_col(row, "progress_of")?,
        error: row.get("error")?,
        result_json: row.get("result_json")?,
        best_epoch: opt_u32_col(row, "best_epoch")?,
        test_accuracy: row.get("test_accuracy")?,
        test_loss: row.get("test_loss")?,
        val_accuracy: row.get("val_accuracy")?,
        val_loss: row.get("val_loss")?,
        train_seconds: row.get("train_seconds")?,
        worker: row.get("worker")?,
        device: row.get("device")?,
        updated_ms: row.get("updated_ms")?,
        finished_ms: row.get("finished_ms")?,
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
    let protocol = [ProtocolKind::TrainValTest, ProtocolKind::TrainTest]
        .into_iter()
        .find(|p| p.as_str() == protocol)
        .ok_or_else(|| {
            corrupt(
                "jobs",
                key,
                "protocol",
                format!("unknown protocol {protocol:?}"),
            )
        })?;
    let status = JobStatus::from_str(status).map_err(|e| corrupt("jobs", key, "status", e))?;
    Ok((variant, protocol, status))
}

impl RawJob {
    fn into_row(self) -> Result<JobRow, StoreError> {
        let key = self.id.clone();
        let (variant, protocol, status) =
            job_kind(&key, &self.variant, &self.protocol, &self.status)?;
        let split: FoldSplit = serde_json::from_str(&self.split_json)
            .map_err(|e| corrupt("jobs", &key, "split_json", e))?;
        Ok(JobRow {
            id: JobId::new(self.id),
            experiment: ExperimentId(self.experiment),
            variant,
            seed: u64::try_from(self.seed).map_err(|e| corrupt("jobs", &key, "seed", e))?,
            fold: self.fold,
            protocol,
            config_toml: self.config_toml,
            split,
            data_fingerprint: self.data_fingerprint,
            max_attempts: self.max_attempts,
            status,
            attempts: self.attempts,
            failures: self.failures,
            lost_attempts: self.lost_attempts,
            current_attempt: self
                .current_attempt
                .and_then(|a| u64::try_from(a).ok())
                .map(AttemptId),
            progress: self.progress_epoch.zip(self.progress_of),
            error: self.error,
            result_json: self.result_json,
            best_epoch: self.best_epoch,
            test_accuracy: self.test_accuracy,
            test_loss: self.test_loss,
            val_accuracy: self.val_accuracy,
            val_loss: self.val_loss,
            train_seconds: self.train_seconds,
            worker: self.worker,
            device: self.device,
            updated_ms: self.updated_ms,
            finished_ms: self.finished_ms,
        })
    }
}

/// Jobs matching `where_sql` (a clause over `jobs`, may be empty), in submission order.
pub(crate) fn query_jobs(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<JobRow>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs {where_sql} ORDER BY rowid");
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(params, raw_job)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(RawJob::into_row).collect()
}

/// The first job (submission order) matching `where_sql`.
fn first_job(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<JobRow>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs {where_sql} ORDER BY rowid LIMIT 1");
    let raw = conn
        .prepare_cached(&sql)?
        .query_row(params, raw_job)
        .optional()?;
    raw.map(RawJob::into_row).transpose()
}

/// The first pending job (in submission order) a worker with data
/// `fingerprint` can run.
pub(crate) fn next_pending_job(
    conn: &Connection,
    fingerprint: &str,
) -> Result<Option<JobRow>, StoreError> {
    first_job(
        conn,
        "WHERE status = 'pending' AND (data_fingerprint IS NULL OR data_fingerprint = ?1)",
        [fingerprint],
    )
}

/// Every leased or running job.
pub(crate) fn live_jobs(conn: &Connection) -> Result<Vec<JobRow>, StoreError> {
    query_jobs(conn, "WHERE status IN ('leased', 'running')", [])
}

/// The epoch of the checkpoint the coordinator holds for `job`, if any.
pub(crate) fn checkpoint_epoch(conn: &Connection, job: &JobId) -> Result<Option<u32>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT epoch FROM checkpoints WHERE job = ?1")?
        .query_row([job.as_str()], |r| r.get(0))
        .optional()?)
}

/// One job by id.
pub(crate) fn job(conn: &Connection, id: &JobId) -> Result<Option<JobRow>, StoreError> {
    Ok(query_jobs(conn, "WHERE id = ?1", [id.as_str()])?
        .into_iter()
        .next())
}

/// One attempt by id.
pub(crate) fn attempt(conn: &Connection, id: AttemptId) -> Result<Option<AttemptRow>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(None);
    };
    let row = conn
        .prepare_cached(
            "SELECT id, job, worker, device, leased_ms, deadline_ms, ended_ms, outcome
             FROM attempts WHERE id = ?1",
        )?
        .query_row([key], |r| {
            Ok(AttemptRow {
                id: AttemptId(r.get::<_, i64>(0)?.unsigned_abs()),
                job: JobId::new(r.get::<_, String>(1)?),
                worker: WorkerId(r.get(2)?),
                device: r.get(3)?,
                leased_ms: r.get(4)?,
                deadline_ms: r.get(5)?,
                ended_ms: r.get(6)?,
                outcome: r.get(7)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// Workers matching `where_sql`, in registration order.
pub(crate) fn query_workers(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<WorkerRow>, StoreError> {
    let sql = format!(
        "SELECT id, name, host, slots_json, data_fingerprint, state, last_seen_ms
         FROM workers {where_sql} ORDER BY registered_ms, id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter()
        .map(
            |(id, name, host, slots_json, data_fingerprint, state, last_seen_ms)| {
                let slots = serde_json::from_str(&slots_json)
                    .map_err(|e| corrupt("workers", &id, "slots_json", e))?;
                let state: WorkerState = state
                    .parse()
                    .map_err(|e: String| corrupt("workers", &id, "state", e))?;
                Ok(WorkerRow {
                    id: WorkerId(id),
                    name,
                    host,
                    slots,
                    data_fingerprint,
                    state,
                    last_seen_ms,
                })
            },
        )
        .collect()
}

/// One worker by id.
pub(crate) fn worker(conn: &Connection, id: &WorkerId) -> Result<Option<WorkerRow>, StoreError> {
    Ok(query_workers(conn, "WHERE id = ?1", [id.0.as_str()])?
        .into_iter()
        .next())
}

/// Experiments, oldest first.
pub(crate) fn experiments(conn: &Connection) -> Result<Vec<ExperimentRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, config_toml, config_hash, data_fingerprint, class_names_json, created_ms
         FROM experiments ORDER BY created_ms, id",
    )?;
    let raws = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter()
        .map(
            |(id, name, config_toml, config_hash, data_fingerprint, names, created_ms)| {
                let class_names = serde_json::from_str(&names)
                    .map_err(|e| corrupt("experiments", &id, "class_names_json", e))?;
                Ok(ExperimentRow {
                    id: ExperimentId(id),
                    name,
                    config_toml,
                    config_hash,
                    data_fingerprint,
                    class_names,
                    created_ms,
                })
            },
        )
        .collect()
}

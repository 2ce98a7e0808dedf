//! Rows of the store read back as typed values.

use std::collections::BTreeMap;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row};
use spikecv_common::dataset::kind::Variant;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::sections::ProtocolKind;

use super::StoreError;
use super::read_jobs;
use super::records::JobRecord;
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

/// One `jobs` row as the scheduler reads it: the one job read model
/// ([`JobRecord`], the same reports and the dashboard get) with what only
/// scheduling needs beside it. Derefs to the record (`row.status`,
/// `row.variant`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// Id.
    pub id: JobId,
    /// The experiment that created it.
    pub experiment: ExperimentId,
    /// The job as every reader sees it.
    pub record: JobRecord,
    /// Config TOML handed to workers.
    pub config_toml: String,
    /// Recordings.
    pub split: FoldSplit,
    /// Data fingerprint the job needs (None: any).
    pub data_fingerprint: Option<String>,
    /// Transient failures allowed.
    pub max_attempts: u32,
    /// Failures counted against `max_attempts`.
    pub failures: u32,
    /// Leases lost (expired).
    pub lost_attempts: u32,
    /// The current attempt while leased or running.
    pub current_attempt: Option<AttemptId>,
    /// Last reported (epoch, of).
    pub progress: Option<(u32, u32)>,
    /// The JobResult JSON once succeeded.
    pub result_json: Option<String>,
    /// Last change.
    pub updated_ms: i64,
    /// Seconds an attempt may go without a new epoch (`protocol.epoch_timeout_s`;
    /// `None` for jobs stored before it was kept: the default applies).
    pub epoch_timeout_s: Option<u32>,
}

impl std::ops::Deref for JobRow {
    type Target = JobRecord;
    fn deref(&self) -> &JobRecord {
        &self.record
    }
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

/// The columns [`JobRow`] reads, for `SELECT ... FROM jobs j`: the record's
/// (see [`super::read_jobs`]) and the scheduler's, from index
/// [`SCHEDULING_COLUMNS_AT`] on. Built once: job reads run on every call.
static JOB_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}, 0, j.pruned_json, j.epochs, j.experiment, j.config_toml, j.split_json, \
         j.data_fingerprint, j.max_attempts, j.failures, j.lost_attempts, j.current_attempt, \
         j.result_json, j.updated_ms, j.epoch_timeout_s",
        read_jobs::COLUMNS
    )
});

/// Where the scheduler's columns start in [`JOB_COLUMNS`].
const SCHEDULING_COLUMNS_AT: usize = read_jobs::RECORD_COLUMNS;

fn job_row(row: &Row<'_>) -> Result<JobRow, StoreError> {
    let at = SCHEDULING_COLUMNS_AT;
    let experiment: String = row.get(at)?;
    let record = read_jobs::record(&experiment, row)?;
    let key = record.id.clone();
    let split_json: String = row.get(at + 2)?;
    let split: FoldSplit =
        serde_json::from_str(&split_json).map_err(|e| corrupt("jobs", &key, "split_json", e))?;
    let int = |i: usize, column| -> Result<u32, StoreError> {
        u32::try_from(row.get::<_, i64>(i)?).map_err(|e| corrupt("jobs", &key, column, e))
    };
    Ok(JobRow {
        id: JobId::new(record.id.clone()),
        experiment: ExperimentId(experiment),
        config_toml: row.get(at + 1)?,
        split,
        data_fingerprint: row.get(at + 3)?,
        max_attempts: int(at + 4, "max_attempts")?,
        failures: int(at + 5, "failures")?,
        lost_attempts: int(at + 6, "lost_attempts")?,
        current_attempt: row
            .get::<_, Option<i64>>(at + 7)?
            .and_then(|a| u64::try_from(a).ok())
            .map(AttemptId),
        progress: record.progress_epoch.zip(record.progress_of),
        result_json: row.get(at + 8)?,
        updated_ms: row.get(at + 9)?,
        epoch_timeout_s: row
            .get::<_, Option<i64>>(at + 10)?
            .map(|s| u32::try_from(s).map_err(|e| corrupt("jobs", &key, "epoch_timeout_s", e)))
            .transpose()?,
        record,
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

/// Jobs matching `where_sql` (a clause over `jobs`, may be empty), in submission order.
pub(crate) fn query_jobs(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<JobRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM jobs j {where_sql} ORDER BY j.rowid",
        *JOB_COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(job_row(r)?);
    }
    Ok(out)
}

/// The first job (submission order) matching `where_sql`.
fn first_job(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<JobRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM jobs j {where_sql} ORDER BY j.rowid LIMIT 1",
        *JOB_COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(job_row).transpose()
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

/// What an experiment's results are checked against.
#[derive(Debug, Default)]
pub(crate) struct SampleShape {
    /// The data set's class count (`None` when it kept no class names).
    pub classes: Option<usize>,
    /// Where recordings hold any number of samples, the samples of each
    /// (`None`: one per class).
    pub counts: Option<BTreeMap<String, u64>>,
}

/// The [`SampleShape`] an experiment stored at submission.
pub(crate) fn sample_shape(
    conn: &Connection,
    experiment: &ExperimentId,
) -> Result<SampleShape, StoreError> {
    let row: Option<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT class_names_json, sample_counts_json FROM experiments WHERE id = ?1",
        )?
        .query_row([experiment.0.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((names, counts)) = row else {
        return Ok(SampleShape::default());
    };
    let names: Vec<String> = serde_json::from_str(&names)
        .map_err(|e| corrupt("experiments", &experiment.0, "class_names_json", e))?;
    let counts = counts
        .map(|c| serde_json::from_str(&c))
        .transpose()
        .map_err(|e| corrupt("experiments", &experiment.0, "sample_counts_json", e))?;
    Ok(SampleShape {
        classes: (!names.is_empty()).then_some(names.len()),
        counts,
    })
}

//! Jobs and attempts read back for the scheduler: [`JobRow`]s (the read
//! model with what only scheduling needs) by id, state or data, attempts by
//! id, a configuration's jobs by state, and the aggregates a status snapshot
//! needs, in SQL (a status poll stays cheap with 100,000 jobs).

use rusqlite::{Connection, OptionalExtension, Row, params};
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::trainer::TrainerInfo;

use super::error::{StoreError, corrupt};
use super::job_records;
use super::records::JobRecord;
use crate::eta::EtaInputs;
use crate::ids::{AttemptId, ExperimentId, WorkerId};

type Result<T, E = StoreError> = std::result::Result<T, E>;

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

/// The columns [`JobRow`] reads, for `SELECT ... FROM jobs j`: the record's
/// (see [`super::job_records`]) and the scheduler's, from index
/// [`SCHEDULING_COLUMNS_AT`] on. Built once: job reads run on every call.
static JOB_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}, 0, j.pruned_json, j.epochs, j.experiment, j.config_toml, j.split_json, \
         j.data_fingerprint, j.max_attempts, j.failures, j.lost_attempts, j.current_attempt, \
         j.result_json, j.updated_ms, j.epoch_timeout_s",
        job_records::COLUMNS
    )
});

/// Where the scheduler's columns start in [`JOB_COLUMNS`].
const SCHEDULING_COLUMNS_AT: usize = job_records::RECORD_COLUMNS;

fn job_row(row: &Row<'_>) -> Result<JobRow, StoreError> {
    let at = SCHEDULING_COLUMNS_AT;
    let experiment: String = row.get(at)?;
    let record = job_records::record(&experiment, row)?;
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
    trainers: &[TrainerInfo],
) -> Result<Option<JobRow>, StoreError> {
    let names = serde_json::to_string(&trainers.iter().map(|t| &t.name).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".to_owned());
    first_job(
        conn,
        "WHERE status = 'pending' AND (data_fingerprint IS NULL OR data_fingerprint = ?1)
           AND (trainer = 'native' OR trainer IN (SELECT value FROM json_each(?2)))",
        rusqlite::params![fingerprint, names],
    )
}

/// The trainers pending jobs wait for that no live worker registered, with
/// how many jobs wait for each (`native` is never missing: every worker
/// runs it).
pub(crate) fn missing_trainers(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.trainer, count(*) FROM jobs j
         WHERE j.status = 'pending' AND j.trainer <> 'native'
           AND NOT EXISTS (
               SELECT 1 FROM workers w, json_each(w.trainers_json) t
               WHERE w.state IN ('alive', 'draining')
                 AND json_extract(t.value, '$.name') = j.trainer)
         GROUP BY j.trainer ORDER BY j.trainer",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .map(|r| r.map(|(t, n)| (t, n.unsigned_abs())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
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

/// The jobs of `experiment` (of one configuration when given) in one of
/// `states`, in plan order.
pub(crate) fn jobs_in_states(
    conn: &Connection,
    experiment: &str,
    configuration: Option<i64>,
    states: &[JobStatus],
) -> Result<Vec<JobId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.status FROM experiment_jobs ej JOIN jobs j ON j.id = ej.job
         WHERE ej.experiment = ?1 AND (?2 IS NULL OR ej.configuration = ?2)
         ORDER BY ej.position",
    )?;
    let rows = stmt
        .query_map(params![experiment, configuration], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, JobStatus>(1)?))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, status)| states.contains(status))
        .map(|(id, _)| JobId::new(id))
        .collect())
}

/// The jobs of `configuration` in `experiment` that have not ended.
pub(crate) fn unfinished_jobs(
    conn: &Connection,
    experiment: &str,
    configuration: i64,
) -> Result<Vec<JobId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id FROM experiment_jobs ej JOIN jobs j ON j.id = ej.job
         WHERE ej.experiment = ?1 AND ej.configuration = ?2
           AND j.status IN ('pending', 'leased', 'running')
         ORDER BY ej.position",
    )?;
    let ids = stmt
        .query_map(params![experiment, configuration], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ids.into_iter().map(JobId::new).collect())
}

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

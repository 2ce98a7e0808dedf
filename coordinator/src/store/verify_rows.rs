//! Deterministic replay's rows (schema 10): experiments' sampling secrets,
//! jobs' verification state, replay attempts, every run of a verified job
//! ([`RunRecord`]: what it produced and how it compared) and suspect
//! workers ([`SuspectRecord`]). The writes are the scheduler's; the readers
//! also serve reports over a read-only connection (an older store has none
//! of it: they read nothing there).

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use spikecv_common::experiment::job::JobResult;
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::replay::Comparison;

use super::error::{StoreError, corrupt};
use super::job_writes::{attempt_key, exec};
use crate::ids::{AttemptId, WorkerId};
use crate::states::VerifyState;

type Result<T> = std::result::Result<T, StoreError>;

/// The schema that has these tables.
const SCHEMA: u32 = 10;

/// One run's comparison with another run of the same job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunComparison {
    /// The other run's attempt.
    pub with: AttemptId,
    /// Bitwise or within tolerance, and every figure compared.
    pub comparison: Comparison,
}

/// One run of a job whose experiment verifies: the original or a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The attempt that produced it.
    pub attempt: AttemptId,
    /// The job.
    pub job: String,
    /// The worker that completed it.
    pub worker: WorkerId,
    /// That worker's name.
    pub worker_name: String,
    /// The credentials the result came from: the completing worker's and
    /// those of workers whose checkpoint it resumed (`shared` for the
    /// shared token).
    pub credentials: Vec<String>,
    /// A replay (else the original run).
    pub replay: bool,
    /// What it reported.
    pub result: JobResult,
    /// What it ran on and with, when the worker said.
    pub provenance: Option<Provenance>,
    /// Its comparisons with earlier runs of the job.
    pub comparisons: Vec<RunComparison>,
    /// When it completed (ms since the Unix epoch).
    pub finished_ms: i64,
}

/// A worker marked suspect: no new leases until an operator clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectRecord {
    /// Its id.
    pub worker: WorkerId,
    /// Its name.
    pub name: String,
    /// The job where its run disagreed with two others.
    pub job: String,
    /// Why, in words.
    pub reason: String,
    /// Since when (ms since the Unix epoch).
    pub since_ms: i64,
}

/// A job's verification columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct JobVerify {
    /// The share its experiments verify (`None`: none does).
    pub fraction: Option<f64>,
    /// Where it stands.
    pub state: Option<VerifyState>,
    /// Since when a run is wanted.
    pub since_ms: Option<i64>,
}

fn has_tables(conn: &Connection) -> Result<bool> {
    let v: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(v >= SCHEMA)
}

/// Keeps `secret` as `experiment`'s sampling secret unless it has one.
pub(crate) fn keep_secret(conn: &Connection, experiment: &str, secret: &str) -> Result<()> {
    exec(
        conn,
        "UPDATE experiments SET verify_secret = coalesce(verify_secret, ?2) WHERE id = ?1",
        params![experiment, secret],
    )?;
    Ok(())
}

/// Raises `job`'s verified share to at least `fraction`.
pub(crate) fn raise_fraction(conn: &Connection, job: &JobId, fraction: f64) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET verify_fraction = max(coalesce(verify_fraction, 0), ?2) WHERE id = ?1",
        params![job.as_str(), fraction],
    )?;
    Ok(())
}

/// `job`'s verification columns.
pub(crate) fn job_verify(conn: &Connection, job: &JobId) -> Result<JobVerify> {
    Ok(conn
        .prepare_cached("SELECT verify_fraction, verify, verify_since_ms FROM jobs WHERE id = ?1")?
        .query_row([job.as_str()], |r| {
            Ok(JobVerify {
                fraction: r.get(0)?,
                state: r.get(1)?,
                since_ms: r.get(2)?,
            })
        })
        .optional()?
        .unwrap_or(JobVerify {
            fraction: None,
            state: None,
            since_ms: None,
        }))
}

/// Sets `job`'s verification state (a wanted run counts its wait from `now`).
pub(crate) fn set_state(
    conn: &Connection,
    job: &JobId,
    state: Option<VerifyState>,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET verify = ?2, verify_since_ms = ?3, updated_ms = ?3 WHERE id = ?1",
        params![job.as_str(), state, now],
    )?;
    Ok(())
}

/// Marks `attempt` a replay.
pub(crate) fn mark_replay(conn: &Connection, attempt: AttemptId) -> Result<()> {
    exec(
        conn,
        "UPDATE attempts SET replay = 1 WHERE id = ?1",
        [attempt_key(attempt)],
    )?;
    Ok(())
}

/// Whether `attempt` is a replay.
pub(crate) fn is_replay(conn: &Connection, attempt: AttemptId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT replay FROM attempts WHERE id = ?1")?
        .query_row([attempt_key(attempt)], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Succeeded jobs a run is wanted of, with no replay open, on data
/// `fingerprint` (or any): (job, state, wanted since), longest waiting first.
pub(crate) fn wanted_runs(
    conn: &Connection,
    fingerprint: &str,
) -> Result<Vec<(JobId, VerifyState, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.verify, coalesce(j.verify_since_ms, 0) FROM jobs j
         WHERE j.verify IN ('wanted', 'tiebreak') AND j.status = 'succeeded'
           AND (j.data_fingerprint IS NULL OR j.data_fingerprint = ?1)
           AND NOT EXISTS (SELECT 1 FROM attempts a
                           WHERE a.job = j.id AND a.replay = 1 AND a.ended_ms IS NULL)
         ORDER BY j.verify_since_ms, j.rowid",
    )?;
    let rows = stmt
        .query_map([fingerprint], |r| {
            Ok((JobId::new(r.get::<_, String>(0)?), r.get(1)?, r.get(2)?))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Replays of `job` that ended without a result (failed or lost).
pub(crate) fn failed_replays(conn: &Connection, job: &JobId) -> Result<u32> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM attempts WHERE job = ?1 AND replay = 1
                 AND outcome IN ('failed', 'lost')",
        )?
        .query_row([job.as_str()], |r| r.get(0))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn json<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode {
        what,
        message: e.to_string(),
    })
}

/// Stores a run with its comparisons.
pub(crate) fn insert_run(conn: &Connection, run: &RunRecord) -> Result<()> {
    let provenance = run
        .provenance
        .as_ref()
        .map(|p| json("run provenance", p))
        .transpose()?;
    exec(
        conn,
        "INSERT OR REPLACE INTO job_runs (attempt, job, worker, worker_name, credentials_json,
             replay, result_json, provenance_json, comparisons_json, finished_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            attempt_key(run.attempt),
            run.job,
            run.worker.0,
            run.worker_name,
            json("run credentials", &run.credentials)?,
            run.replay,
            json("run result", &run.result)?,
            provenance,
            json("run comparisons", &run.comparisons)?,
            run.finished_ms
        ],
    )?;
    Ok(())
}

const RUN_COLUMNS: &str = "attempt, job, worker, worker_name, credentials_json, replay, \
     result_json, provenance_json, comparisons_json, finished_ms";

fn decode<T: serde::de::DeserializeOwned>(at: &str, column: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt("job_runs", at, column, e))
}

fn run_of(r: &Row<'_>) -> Result<RunRecord> {
    let key: i64 = r.get(0)?;
    let job: String = r.get(1)?;
    let at = format!("{job}/{key}");
    let provenance: Option<String> = r.get(7)?;
    let comparisons: Option<String> = r.get(8)?;
    Ok(RunRecord {
        attempt: AttemptId(key.unsigned_abs()),
        worker: WorkerId(r.get(2)?),
        worker_name: r.get(3)?,
        credentials: decode(&at, "credentials_json", &r.get::<_, String>(4)?)?,
        replay: r.get(5)?,
        result: decode(&at, "result_json", &r.get::<_, String>(6)?)?,
        provenance: provenance
            .map(|p| decode(&at, "provenance_json", &p))
            .transpose()?,
        comparisons: comparisons
            .map(|c| decode(&at, "comparisons_json", &c))
            .transpose()?
            .unwrap_or_default(),
        finished_ms: r.get(9)?,
        job,
    })
}

fn query_runs(
    conn: &Connection,
    where_sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<RunRecord>> {
    if !has_tables(conn)? {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {RUN_COLUMNS} FROM job_runs {where_sql} ORDER BY attempt");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(run_of(r)?);
    }
    Ok(out)
}

/// Every run of `job`, oldest first.
pub fn runs_of(conn: &Connection, job: &str) -> Result<Vec<RunRecord>> {
    query_runs(conn, "WHERE job = ?1", [job])
}

/// Every run of the jobs of `experiment`, by job then attempt.
pub fn runs_of_experiment(conn: &Connection, experiment: &str) -> Result<Vec<RunRecord>> {
    query_runs(
        conn,
        "WHERE job IN (SELECT job FROM experiment_jobs WHERE experiment = ?1)",
        [experiment],
    )
}

/// Every job of `experiment` with a verification state: (job, state).
pub fn states_of_experiment(
    conn: &Connection,
    experiment: &str,
) -> Result<Vec<(String, VerifyState)>> {
    if !has_tables(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.verify FROM experiment_jobs ej JOIN jobs j ON j.id = ej.job
         WHERE ej.experiment = ?1 AND j.verify IS NOT NULL ORDER BY ej.position",
    )?;
    let rows = stmt
        .query_map([experiment], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Succeeded jobs whose original run `worker` completed and that are not
/// verified or being verified: what a suspect's other results are.
pub(crate) fn unchecked_originals_of(conn: &Connection, worker: &WorkerId) -> Result<Vec<JobId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT r.job FROM job_runs r JOIN jobs j ON j.id = r.job
         WHERE r.worker = ?1 AND r.replay = 0 AND j.status = 'succeeded' AND j.verify IS NULL",
    )?;
    let rows = stmt
        .query_map([worker.0.as_str()], |r| r.get::<_, String>(0))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().map(JobId::new).collect())
}

/// Marks `worker` suspect (kept as it was when it is already).
pub(crate) fn mark_suspect(conn: &Connection, s: &SuspectRecord) -> Result<()> {
    exec(
        conn,
        "INSERT OR IGNORE INTO suspects (worker, name, job, reason, since_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![s.worker.0, s.name, s.job, s.reason, s.since_ms],
    )?;
    Ok(())
}

/// Whether `worker` is suspect.
pub(crate) fn is_suspect(conn: &Connection, worker: &WorkerId) -> Result<bool> {
    if !has_tables(conn)? {
        return Ok(false);
    }
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM suspects WHERE worker = ?1)")?
        .query_row([worker.0.as_str()], |r| r.get(0))?)
}

/// Clears every suspect whose id or name is `name`; how many.
pub(crate) fn clear_suspect(conn: &Connection, name: &str) -> Result<usize> {
    exec(
        conn,
        "DELETE FROM suspects WHERE worker = ?1 OR name = ?1",
        [name],
    )
}

/// The oldest suspect named `name` whose worker was on `host` (or whose
/// worker row is gone): what a new registration under that name and host
/// inherits.
pub(crate) fn suspect_like(
    conn: &Connection,
    name: &str,
    host: &str,
) -> Result<Option<SuspectRecord>> {
    if !has_tables(conn)? {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached(
            "SELECT s.worker, s.name, s.job, s.reason, s.since_ms
             FROM suspects s LEFT JOIN workers w ON w.id = s.worker
             WHERE s.name = ?1 AND (w.host IS NULL OR w.host = ?2)
             ORDER BY s.since_ms, s.worker LIMIT 1",
        )?
        .query_row([name, host], suspect_of)
        .optional()?)
}

fn suspect_of(r: &Row<'_>) -> rusqlite::Result<SuspectRecord> {
    Ok(SuspectRecord {
        worker: WorkerId(r.get(0)?),
        name: r.get(1)?,
        job: r.get(2)?,
        reason: r.get(3)?,
        since_ms: r.get(4)?,
    })
}

/// Every suspect worker, oldest first.
pub fn suspects(conn: &Connection) -> Result<Vec<SuspectRecord>> {
    if !has_tables(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT worker, name, job, reason, since_ms FROM suspects ORDER BY since_ms, worker",
    )?;
    let rows = stmt
        .query_map([], suspect_of)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A fingerprint of the suspects (how many, the newest): changes when one
/// is marked or cleared; empty in a store without the table.
pub(crate) fn suspects_version(conn: &Connection) -> Result<String> {
    if !has_tables(conn)? {
        return Ok(String::new());
    }
    Ok(conn
        .prepare_cached(
            "SELECT count(*) || '.' || coalesce(max(since_ms), 0) || '.' ||
                    coalesce(group_concat(worker), '') FROM suspects",
        )?
        .query_row([], |r| r.get(0))?)
}

/// The attempt whose checkpoint `attempt`'s lease handed out, if any.
pub(crate) fn resumed_from(
    conn: &Connection,
    attempt: AttemptId,
) -> Result<Option<(AttemptId, WorkerId)>> {
    Ok(conn
        .prepare_cached(
            "SELECT p.id, p.worker FROM attempts a JOIN attempts p ON p.id = a.resumed_from
             WHERE a.id = ?1",
        )?
        .query_row([attempt_key(attempt)], |r| {
            Ok((
                AttemptId(r.get::<_, i64>(0)?.unsigned_abs()),
                WorkerId(r.get(1)?),
            ))
        })
        .optional()?)
}

/// The last succeeded attempt of `job`: (attempt, worker, when it ended).
pub(crate) fn succeeded_attempt(
    conn: &Connection,
    job: &JobId,
) -> Result<Option<(AttemptId, WorkerId, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, worker, coalesce(ended_ms, 0) FROM attempts
             WHERE job = ?1 AND outcome = 'succeeded' AND replay = 0
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([job.as_str()], |r| {
            Ok((
                AttemptId(r.get::<_, i64>(0)?.unsigned_abs()),
                WorkerId(r.get(1)?),
                r.get(2)?,
            ))
        })
        .optional()?)
}

/// `worker`'s name, when it has a row.
pub(crate) fn worker_name(conn: &Connection, worker: &WorkerId) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT name FROM workers WHERE id = ?1")?
        .query_row([worker.0.as_str()], |r| r.get(0))
        .optional()?)
}

/// The provenance kept with `job`'s result, when there is one.
pub(crate) fn job_provenance(conn: &Connection, job: &JobId) -> Result<Option<Provenance>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT provenance_json FROM jobs WHERE id = ?1")?
        .query_row([job.as_str()], |r| r.get(0))
        .optional()?
        .flatten();
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| corrupt("jobs", job.as_str(), "provenance_json", e))
    })
    .transpose()
}

/// The sampling secret for `job`: its own experiment's, else that of the
/// oldest verifying experiment that plans it.
pub(crate) fn secret_for_job(conn: &Connection, job: &JobId) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT e.verify_secret FROM experiments e
             WHERE e.verify_secret IS NOT NULL
               AND (e.id = (SELECT experiment FROM jobs WHERE id = ?1)
                    OR e.id IN (SELECT experiment FROM experiment_jobs WHERE job = ?1))
             ORDER BY e.id = (SELECT experiment FROM jobs WHERE id = ?1) DESC, e.created_ms
             LIMIT 1",
        )?
        .query_row([job.as_str()], |r| r.get(0))
        .optional()?)
}

/// Puts `run`'s figures in place of `job`'s (the original was the odd one
/// out of three): its result, provenance, epochs and worker.
pub(crate) fn replace_result(
    conn: &Connection,
    job: &JobId,
    run: &RunRecord,
    now: i64,
) -> Result<()> {
    super::job_writes::complete_job(conn, job, &run.result, run.provenance.as_ref(), now)?;
    for m in &run.result.epochs {
        super::job_writes::upsert_epoch(conn, job, run.attempt, m)?;
    }
    exec(
        conn,
        "UPDATE jobs SET worker = ?2 WHERE id = ?1",
        params![job.as_str(), run.worker_name],
    )?;
    Ok(())
}

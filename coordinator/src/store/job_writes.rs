//! The state changes of experiments, jobs and their epochs, as typed calls
//! inside the scheduler's transaction (every statement goes through the
//! connection's statement cache: the same few run on every call).

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use spikecv_common::experiment::job::{EpochMetrics, JobResult, JobStatus};
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::plan::JobId;

use super::error::StoreError;
use crate::ids::{AttemptId, ExperimentId};

type Result<T> = std::result::Result<T, StoreError>;

/// Runs one write statement through the statement cache; the rows changed.
pub(crate) fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// An attempt's row key (attempt ids come from SQLite's 63-bit row ids; a
/// larger one names no row).
pub(crate) fn attempt_key(attempt: AttemptId) -> i64 {
    i64::try_from(attempt.0).unwrap_or(i64::MAX)
}

fn json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode {
        what,
        message: e.to_string(),
    })
}

/// A new experiment's row.
#[derive(Debug)]
pub(crate) struct NewExperiment<'a> {
    /// Its id.
    pub id: &'a ExperimentId,
    /// Its human name.
    pub name: Option<&'a str>,
    /// The config text as submitted.
    pub config_toml: &'a str,
    /// Hash of the normalised config.
    pub config_hash: &'a str,
    /// The data set's fingerprint, when known.
    pub data_fingerprint: Option<&'a str>,
    /// Class names in class order.
    pub class_names: &'a [String],
    /// Samples per recording, where they vary (`None`: one per class).
    pub sample_counts: Option<&'a BTreeMap<String, u64>>,
    /// Submission time.
    pub created_ms: i64,
}

/// Stores an experiment unless it is stored already.
pub(crate) fn insert_experiment(conn: &Connection, e: &NewExperiment<'_>) -> Result<()> {
    exec(
        conn,
        "INSERT OR IGNORE INTO experiments
         (id, name, config_toml, config_hash, data_fingerprint, class_names_json, created_ms,
          sample_counts_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            e.id.0,
            e.name,
            e.config_toml,
            e.config_hash,
            e.data_fingerprint,
            json("class names", &e.class_names)?,
            e.created_ms,
            e.sample_counts
                .map(|c| json("sample counts", c))
                .transpose()?
        ],
    )?;
    Ok(())
}

/// A new job's row (it starts pending).
#[derive(Debug)]
pub(crate) struct NewJob<'a> {
    /// Its id.
    pub id: &'a JobId,
    /// The experiment that planned it first.
    pub experiment: &'a ExperimentId,
    /// Variant name.
    pub variant: &'a str,
    /// Seed (at most `i64::MAX`, checked by the caller).
    pub seed: i64,
    /// Fold.
    pub fold: u32,
    /// Protocol name.
    pub protocol: &'a str,
    /// The config the worker trains.
    pub config_toml: &'a str,
    /// The fold's recordings, as JSON.
    pub split_json: &'a str,
    /// The data set's fingerprint, when known.
    pub data_fingerprint: Option<&'a str>,
    /// Transient failures allowed.
    pub max_attempts: u32,
    /// Epochs it trains.
    pub epochs: u32,
    /// Seconds an attempt may go without a new epoch (0: no limit).
    pub epoch_timeout_s: u32,
    /// The trainer that runs it (`native`: the engine).
    pub trainer: &'a str,
    /// Submission time.
    pub now: i64,
}

/// Stores a new pending job.
pub(crate) fn insert_job(conn: &Connection, j: &NewJob<'_>) -> Result<()> {
    exec(
        conn,
        "INSERT INTO jobs (id, experiment, variant, seed, fold, protocol, config_toml,
             split_json, data_fingerprint, max_attempts, status, created_ms, updated_ms, epochs,
             epoch_timeout_s, trainer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15)",
        params![
            j.id.as_str(),
            j.experiment.0,
            j.variant,
            j.seed,
            j.fold,
            j.protocol,
            j.config_toml,
            j.split_json,
            j.data_fingerprint,
            j.max_attempts,
            JobStatus::Pending,
            j.now,
            j.epochs,
            j.epoch_timeout_s,
            j.trainer
        ],
    )?;
    Ok(())
}

/// Puts an ended job back to pending with a fresh retry budget; what pruned
/// it (`prune_evidence`) is forgotten.
pub(crate) fn requeue_job(
    conn: &Connection,
    job: &JobId,
    max_attempts: u32,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET status = ?4, failures = 0, lost_attempts = 0, current_attempt = NULL,
             error = NULL, finished_ms = NULL, pruned_json = NULL, max_attempts = ?2,
             updated_ms = ?3
         WHERE id = ?1",
        params![job.as_str(), max_attempts, now, JobStatus::Pending],
    )?;
    // What pruned it no longer stands.
    exec(
        conn,
        "DELETE FROM prune_evidence WHERE job = ?1",
        [job.as_str()],
    )?;
    Ok(())
}

/// Links a job to an experiment (at its plan position, in its configuration)
/// unless it is linked already.
pub(crate) fn link_job(
    conn: &Connection,
    experiment: &ExperimentId,
    job: &JobId,
    position: usize,
    configuration: usize,
) -> Result<()> {
    exec(
        conn,
        "INSERT OR IGNORE INTO experiment_jobs (experiment, job, position, configuration)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            experiment.0,
            job.as_str(),
            i64::try_from(position).unwrap_or(i64::MAX),
            i64::try_from(configuration).unwrap_or(i64::MAX)
        ],
    )?;
    Ok(())
}

/// Marks a job leased to `attempt` (on `worker_name`'s `device`).
pub(crate) fn lease_job(
    conn: &Connection,
    job: &JobId,
    attempt: AttemptId,
    worker_name: &str,
    device: &str,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET status = ?6, attempts = attempts + 1, current_attempt = ?2,
             worker = ?3, device = ?4, progress_epoch = NULL, progress_of = NULL, updated_ms = ?5
         WHERE id = ?1",
        params![
            job.as_str(),
            attempt_key(attempt),
            worker_name,
            device,
            now,
            JobStatus::Leased
        ],
    )?;
    Ok(())
}

/// A job runs: its last reported epoch (and, from a heartbeat, of how many).
pub(crate) fn set_running(
    conn: &Connection,
    job: &JobId,
    epoch: u32,
    of: Option<u32>,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET status = ?5, progress_epoch = ?2,
             progress_of = coalesce(?3, progress_of), updated_ms = ?4
         WHERE id = ?1",
        params![job.as_str(), epoch, of, now, JobStatus::Running],
    )?;
    Ok(())
}

/// Stores (or replaces) one epoch's metrics of a job.
pub(crate) fn upsert_epoch(
    conn: &Connection,
    job: &JobId,
    attempt: AttemptId,
    m: &EpochMetrics,
) -> Result<()> {
    exec(
        conn,
        "INSERT INTO epoch_metrics (job, epoch, attempt, metrics_json) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (job, epoch) DO UPDATE SET attempt = excluded.attempt,
             metrics_json = excluded.metrics_json",
        params![
            job.as_str(),
            m.epoch,
            attempt_key(attempt),
            json("epoch metrics", m)?
        ],
    )?;
    Ok(())
}

/// A job succeeded with `result`, computed as `provenance` says (when the
/// worker said).
pub(crate) fn complete_job(
    conn: &Connection,
    job: &JobId,
    result: &JobResult,
    provenance: Option<&Provenance>,
    now: i64,
) -> Result<()> {
    let provenance = provenance.map(|p| json("job provenance", p)).transpose()?;
    exec(
        conn,
        "UPDATE jobs SET status = ?10, current_attempt = NULL, error = NULL, result_json = ?2,
             best_epoch = ?3, test_accuracy = ?4, test_loss = ?5, val_accuracy = ?6, val_loss = ?7,
             train_seconds = ?8, updated_ms = ?9, finished_ms = ?9, provenance_json = ?11
         WHERE id = ?1",
        params![
            job.as_str(),
            json("job result", result)?,
            result.best_epoch,
            result.test_accuracy,
            result.test_loss,
            result.val_accuracy,
            result.val_loss,
            result.train_seconds,
            now,
            JobStatus::Succeeded,
            provenance
        ],
    )?;
    Ok(())
}

/// A job's attempt failed: the job is `failed` (ended) or `pending` (retried),
/// with its failures counted and the error kept.
pub(crate) fn fail_job(
    conn: &Connection,
    job: &JobId,
    status: JobStatus,
    failures: u32,
    error: &str,
    now: i64,
) -> Result<()> {
    let finished = status.is_terminal().then_some(now);
    exec(
        conn,
        "UPDATE jobs SET status = ?2, failures = ?3, current_attempt = NULL, error = ?4,
             updated_ms = ?5, finished_ms = ?6
         WHERE id = ?1",
        params![job.as_str(), status, failures, error, now, finished],
    )?;
    Ok(())
}

/// A job's attempt was handed back: pending again, nothing counted.
pub(crate) fn release_job(conn: &Connection, job: &JobId, now: i64) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET status = ?3, current_attempt = NULL, updated_ms = ?2 WHERE id = ?1",
        params![job.as_str(), now, JobStatus::Pending],
    )?;
    Ok(())
}

/// A job's lease expired (its `lost`-th): back to pending, or failed with
/// `error` when it lost too many.
pub(crate) fn lose_lease(
    conn: &Connection,
    job: &JobId,
    lost: u32,
    failed_with: Option<&str>,
    now: i64,
) -> Result<()> {
    let status = if failed_with.is_some() {
        JobStatus::Failed
    } else {
        JobStatus::Pending
    };
    exec(
        conn,
        "UPDATE jobs SET status = ?2, lost_attempts = ?3, current_attempt = NULL,
             error = coalesce(?4, error), updated_ms = ?5,
             finished_ms = CASE WHEN ?4 IS NULL THEN finished_ms ELSE ?5 END
         WHERE id = ?1",
        params![job.as_str(), status, lost, failed_with, now],
    )?;
    Ok(())
}

/// A job ends without a result: cancelled by a user, or pruned by a sweep
/// (with the pruner's verdict as JSON).
pub(crate) fn stop_job(
    conn: &Connection,
    job: &JobId,
    status: JobStatus,
    pruned_json: Option<&str>,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET status = ?2, current_attempt = NULL, pruned_json = coalesce(?3, pruned_json),
             updated_ms = ?4, finished_ms = ?4
         WHERE id = ?1",
        params![job.as_str(), status, pruned_json, now],
    )?;
    Ok(())
}

/// Whether every job ended and no replay is wanted (index probes, not
/// counts: this runs on every lease).
pub(crate) fn all_finished(conn: &Connection) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE status IN ('pending', 'leased', 'running'))
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE verify IN ('wanted', 'tiebreak')
                             AND status = 'succeeded')",
    )?;
    Ok(stmt.query_row([], |r| r.get(0))?)
}

/// Sets the epochs of a job stored without them.
pub(crate) fn set_epochs(conn: &Connection, job: &str, epochs: u32) -> Result<()> {
    exec(
        conn,
        "UPDATE jobs SET epochs = ?2 WHERE id = ?1",
        params![job, epochs],
    )?;
    Ok(())
}

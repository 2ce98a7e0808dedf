//! Epoch metrics read back: a job's stored epochs, the latest epoch of every
//! running job, every validation accuracy an experiment's jobs stored at one
//! epoch (successive halving), a job's sweep group with its metrics at one
//! epoch (the pruner), and how far a job got. What the pruners read leaves
//! out the epochs of attempts whose metrics may not decide
//! ([`TRUSTED_METRICS`]).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use spikecv_common::experiment::job::{EpochMetrics, JobStatus};
use spikecv_common::experiment::plan::JobId;

use super::error::{FromStoreError, StoreError, corrupt};
use super::prune_evidence::TRUSTED_METRICS;
use crate::ids::AttemptId;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored epoch's metrics (`epoch_metrics.metrics_json` of `job`).
pub(super) fn parse_metrics(job: &str, epoch: i64, json: &str) -> Result<EpochMetrics, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        corrupt(
            "epoch_metrics",
            &format!("{job} epoch {epoch}"),
            "metrics_json",
            e,
        )
    })
}

/// Every stored epoch of a job, by epoch.
pub fn epochs(conn: &Connection, job: &str) -> Result<Vec<EpochMetrics>, FromStoreError> {
    Ok(job_epochs(conn, job)?)
}

/// Every stored epoch of `job`, by epoch (inside the scheduler's
/// transactions).
pub(crate) fn job_epochs(conn: &Connection, job: &str) -> Result<Vec<EpochMetrics>> {
    let mut stmt = conn.prepare_cached(
        "SELECT epoch, metrics_json FROM epoch_metrics WHERE job = ?1 ORDER BY epoch",
    )?;
    let rows = stmt
        .query_map([job], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.iter()
        .map(|(epoch, json)| parse_metrics(job, *epoch, json))
        .collect()
}

/// The stored metrics of `job`'s `epoch` and the attempt that reported them.
pub(crate) fn stored_epoch(
    conn: &Connection,
    job: &JobId,
    epoch: u32,
) -> Result<Option<(AttemptId, EpochMetrics)>> {
    let row: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT attempt, metrics_json FROM epoch_metrics WHERE job = ?1 AND epoch = ?2",
        )?
        .query_row(params![job.as_str(), epoch], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(attempt, json)| {
        let m = parse_metrics(job.as_str(), i64::from(epoch), &json)?;
        Ok((AttemptId(attempt.unsigned_abs()), m))
    })
    .transpose()
}

/// The latest epoch metrics of every leased or running job, by job id.
pub(super) fn latest_epochs(
    conn: &Connection,
) -> Result<HashMap<String, EpochMetrics>, FromStoreError> {
    let mut stmt = conn.prepare(
        "SELECT m.job, m.epoch, m.metrics_json FROM jobs j
         JOIN epoch_metrics m ON m.job = j.id
              AND m.epoch = (SELECT max(epoch) FROM epoch_metrics WHERE job = j.id)
         WHERE j.status IN ('leased', 'running')",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(job, epoch, json)| Ok((job.clone(), parse_metrics(&job, epoch, &json)?)))
        .collect()
}

/// `(configuration, validation accuracy, attempt that stored it)` of each
/// job of `experiment` that stored `epoch` with a validation accuracy, from
/// an attempt whose metrics may decide ([`TRUSTED_METRICS`]).
pub(crate) fn rung_results(
    conn: &Connection,
    experiment: &str,
    epoch: u32,
) -> Result<Vec<(i64, f64, AttemptId)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT ej.job, ej.configuration, m.metrics_json, m.attempt
         FROM experiment_jobs ej JOIN epoch_metrics m ON m.job = ej.job AND m.epoch = ?2
         JOIN attempts a ON a.id = m.attempt
         WHERE ej.experiment = ?1 AND {TRUSTED_METRICS}"
    ))?;
    let rows = stmt
        .query_map(params![experiment, epoch], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (job, configuration, json, attempt) in rows {
        let metrics = parse_metrics(&job, i64::from(epoch), &json)?;
        if let Some(accuracy) = metrics.val_accuracy.filter(|v| v.is_finite()) {
            out.push((configuration, accuracy, AttemptId(attempt.unsigned_abs())));
        }
    }
    Ok(out)
}

/// A job of a sweep group with its metrics at the epoch asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Peer {
    /// The job.
    pub job: JobId,
    /// Its configuration index in the experiment.
    pub configuration: i64,
    /// Its state.
    pub status: JobStatus,
    /// Its metrics at that epoch, when it reported it from an attempt whose
    /// metrics may decide ([`TRUSTED_METRICS`]).
    pub metrics: Option<EpochMetrics>,
    /// The attempt that stored them.
    pub attempt: Option<AttemptId>,
}

/// The jobs of `experiment` with `job`'s variant, seed and fold (itself
/// included), each with its metrics at `epoch`.
pub(crate) fn sweep_group(
    conn: &Connection,
    experiment: &str,
    job: &JobId,
    epoch: u32,
) -> Result<Vec<Peer>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT o.id, ej.configuration, o.status, m.metrics_json, m.attempt
         FROM jobs me
         JOIN jobs o ON o.variant = me.variant AND o.seed = me.seed AND o.fold = me.fold
         JOIN experiment_jobs ej ON ej.job = o.id AND ej.experiment = ?2
         LEFT JOIN epoch_metrics m ON m.job = o.id AND m.epoch = ?3
              AND EXISTS (SELECT 1 FROM attempts a WHERE a.id = m.attempt AND {TRUSTED_METRICS})
         WHERE me.id = ?1"
    ))?;
    let rows = stmt
        .query_map(params![job.as_str(), experiment, epoch], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, JobStatus>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, configuration, status, metrics, attempt)| {
            let metrics = metrics
                .map(|json| parse_metrics(&id, i64::from(epoch), &json))
                .transpose()?;
            Ok(Peer {
                job: JobId::new(id),
                configuration,
                status,
                metrics,
                attempt: attempt.map(|a| AttemptId(a.unsigned_abs())),
            })
        })
        .collect()
}

/// How far `job` got: its last stored epoch and the epochs it trains (the
/// planned ones, else what its worker reported), each when known.
pub(crate) fn reach(conn: &Connection, job: &JobId) -> Result<(Option<u32>, Option<u32>)> {
    Ok(conn.prepare_cached(
        "SELECT (SELECT max(epoch) FROM epoch_metrics WHERE job = ?1), coalesce(epochs, progress_of)
         FROM jobs WHERE id = ?1",
    )?
    .query_row([job.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

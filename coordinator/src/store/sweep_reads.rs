//! What the sweep pruner reads inside the scheduler's transaction: the
//! experiments a job belongs to (with its configuration there), its sweep
//! group at one epoch, and how far it got.

use rusqlite::{Connection, params};
use spikecv_common::experiment::job::{EpochMetrics, JobStatus};
use spikecv_common::experiment::plan::JobId;

use super::StoreError;
use super::read_jobs::parse_metrics;

type Result<T> = std::result::Result<T, StoreError>;

/// One experiment a job belongs to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Membership {
    /// The experiment's id.
    pub experiment: String,
    /// The job's configuration index there.
    pub configuration: i64,
    /// The experiment's config text (where its pruning rule is).
    pub config_toml: String,
}

/// The experiments `job` belongs to.
pub(crate) fn memberships(conn: &Connection, job: &JobId) -> Result<Vec<Membership>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ej.experiment, ej.configuration, e.config_toml
         FROM experiment_jobs ej JOIN experiments e ON e.id = ej.experiment
         WHERE ej.job = ?1",
    )?;
    let rows = stmt
        .query_map([job.as_str()], |r| {
            Ok(Membership {
                experiment: r.get(0)?,
                configuration: r.get(1)?,
                config_toml: r.get(2)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
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
    /// Its metrics at that epoch, when it reported it.
    pub metrics: Option<EpochMetrics>,
}

/// The jobs of `experiment` with `job`'s variant, seed and fold (itself
/// included), each with its metrics at `epoch`.
pub(crate) fn sweep_group(
    conn: &Connection,
    experiment: &str,
    job: &JobId,
    epoch: u32,
) -> Result<Vec<Peer>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, ej.configuration, o.status, m.metrics_json
         FROM jobs me
         JOIN jobs o ON o.variant = me.variant AND o.seed = me.seed AND o.fold = me.fold
         JOIN experiment_jobs ej ON ej.job = o.id AND ej.experiment = ?2
         LEFT JOIN epoch_metrics m ON m.job = o.id AND m.epoch = ?3
         WHERE me.id = ?1",
    )?;
    let rows = stmt
        .query_map(params![job.as_str(), experiment, epoch], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, JobStatus>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, configuration, status, metrics)| {
            let metrics = metrics
                .map(|json| parse_metrics(&id, i64::from(epoch), &json))
                .transpose()?;
            Ok(Peer {
                job: JobId::new(id),
                configuration,
                status,
                metrics,
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

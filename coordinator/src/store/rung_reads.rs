//! What successive halving reads inside the scheduler's transaction: every
//! validation accuracy an experiment's jobs stored at one epoch, and a
//! configuration's unfinished jobs.

use rusqlite::{Connection, params};
use spikecv_common::experiment::plan::JobId;

use super::StoreError;
use super::read_jobs::parse_metrics;

type Result<T> = std::result::Result<T, StoreError>;

/// `(configuration, validation accuracy)` of each job of `experiment` that
/// stored `epoch` with a validation accuracy.
pub(crate) fn rung_results(
    conn: &Connection,
    experiment: &str,
    epoch: u32,
) -> Result<Vec<(i64, f64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ej.job, ej.configuration, m.metrics_json
         FROM experiment_jobs ej JOIN epoch_metrics m ON m.job = ej.job AND m.epoch = ?2
         WHERE ej.experiment = ?1",
    )?;
    let rows = stmt
        .query_map(params![experiment, epoch], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (job, configuration, json) in rows {
        let metrics = parse_metrics(&job, i64::from(epoch), &json)?;
        if let Some(accuracy) = metrics.val_accuracy.filter(|v| v.is_finite()) {
            out.push((configuration, accuracy));
        }
    }
    Ok(out)
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

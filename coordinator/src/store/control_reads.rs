//! What `coordinator cancel` and `retry` read: an experiment by id or name,
//! and its jobs by configuration and state.

use rusqlite::{Connection, OptionalExtension, params};
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;

use super::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// An experiment's id and config text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExperimentRef {
    /// Its id.
    pub id: String,
    /// Its config text.
    pub config_toml: String,
}

/// The experiments whose id is `key`, else those named `key` (several
/// submissions may share a name).
pub(crate) fn experiments_by_id_or_name(
    conn: &Connection,
    key: &str,
) -> Result<Vec<ExperimentRef>> {
    let by_id = conn
        .prepare_cached("SELECT id, config_toml FROM experiments WHERE id = ?1")?
        .query_row([key], |r| {
            Ok(ExperimentRef {
                id: r.get(0)?,
                config_toml: r.get(1)?,
            })
        })
        .optional()?;
    if let Some(e) = by_id {
        return Ok(vec![e]);
    }
    let mut stmt =
        conn.prepare_cached("SELECT id, config_toml FROM experiments WHERE name = ?1 ORDER BY id")?;
    let rows = stmt
        .query_map([key], |r| {
            Ok(ExperimentRef {
                id: r.get(0)?,
                config_toml: r.get(1)?,
            })
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
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

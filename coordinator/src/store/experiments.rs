//! Experiments read back: every one as an [`ExperimentRecord`] (oldest
//! first), one by id, the ones `cancel` and `retry` name (by id or name), the
//! sample shape an experiment's results are checked against, and the
//! experiments a job belongs to.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};
use spikecv_common::experiment::plan::JobId;

use super::error::{FromStoreError, StoreError, corrupt};
use super::records::ExperimentRecord;
use crate::ids::ExperimentId;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Every experiment in the store, oldest first.
pub fn experiments(conn: &Connection) -> Result<Vec<ExperimentRecord>, FromStoreError> {
    Ok(experiment_records(conn)?)
}

/// [`experiments`], for the scheduler's store errors (one reader for both).
pub(crate) fn experiment_records(conn: &Connection) -> Result<Vec<ExperimentRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, config_toml, config_hash, class_names_json, created_ms
         FROM experiments ORDER BY created_ms, id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, name, config_toml, config_hash, names, created_ms)| {
            let class_names = serde_json::from_str(&names)
                .map_err(|e| corrupt("experiments", &id, "class_names_json", e))?;
            Ok(ExperimentRecord {
                id,
                name,
                config_toml,
                config_hash,
                created_unix: created_ms.div_euclid(1000),
                class_names,
            })
        })
        .collect()
}

/// One experiment by id.
pub fn experiment(conn: &Connection, id: &str) -> Result<Option<ExperimentRecord>, FromStoreError> {
    Ok(experiments(conn)?.into_iter().find(|e| e.id == id))
}

/// Whether the store holds an experiment with this id (cheap check).
pub fn has_experiment(conn: &Connection, id: &str) -> Result<bool, FromStoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM experiments WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

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

//! Reads the records a report needs straight from the state database, read-only,
//! so `coordinator report` works beside a running coordinator (WAL mode lets a
//! reader in while the server writes) and never changes the store.
//!
//! It reads the store's schema (version 4): `experiments`, `jobs` (linked to
//! experiments, and to a sweep configuration, through `experiment_jobs`),
//! `epoch_metrics` (one
//! `EpochMetrics` JSON per job and epoch) and the result JSON of finished jobs
//! (for the confusion matrix).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use spikecv_common::job::EpochMetrics;

use super::reads;
use super::records::{ExperimentRecord, JobRecord};

/// Newest store schema this reader understands.
const KNOWN_SCHEMA: u32 = super::SCHEMA_VERSION;

/// Why the records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FromStoreError {
    /// The database file does not exist.
    #[error("state database {path} does not exist")]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The database could not be opened.
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is not a coordinator store (no schema yet).
    #[error("{path} is not a coordinator state database (schema version 0)")]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// The store was written by a newer coordinator.
    #[error(
        "state database has schema version {found}; this report reader knows up to {supported}"
    )]
    NewerSchema {
        /// The version found.
        found: u32,
        /// The newest known.
        supported: u32,
    },
    /// A query failed.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value does not parse (shared checks of the store's rows).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A stored value does not parse.
    #[error("state database: {table} row {key}: column {column}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// The column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn corrupt(
    table: &'static str,
    key: &str,
    column: &'static str,
    message: impl ToString,
) -> FromStoreError {
    FromStoreError::Corrupt {
        table,
        key: key.to_owned(),
        column,
        message: message.to_string(),
    }
}

/// Opens the store at `path` read-only and checks its schema version.
pub fn open_read_only(path: &Path) -> Result<Connection, FromStoreError> {
    if !path.exists() {
        return Err(FromStoreError::Missing {
            path: path.to_owned(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| FromStoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| FromStoreError::Open {
            path: path.to_owned(),
            source,
        })?;
    if version == 0 {
        return Err(FromStoreError::NotAStore {
            path: path.to_owned(),
        });
    }
    if version > KNOWN_SCHEMA {
        return Err(FromStoreError::NewerSchema {
            found: version,
            supported: KNOWN_SCHEMA,
        });
    }
    Ok(conn)
}

/// Every experiment in the store, oldest first.
pub fn experiments(conn: &Connection) -> Result<Vec<ExperimentRecord>, FromStoreError> {
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

/// Raw columns of one job row.
struct RawJob {
    id: String,
    variant: String,
    seed: i64,
    fold: i64,
    protocol: String,
    status: String,
    attempts: i64,
    best_epoch: Option<i64>,
    test_accuracy: Option<f64>,
    test_loss: Option<f64>,
    val_accuracy: Option<f64>,
    val_loss: Option<f64>,
    train_seconds: Option<f64>,
    worker: Option<String>,
    device: Option<String>,
    error: Option<String>,
    result_json: Option<String>,
    finished_ms: Option<i64>,
    configuration: Option<i64>,
    pruned_json: Option<String>,
}

/// Every job of experiment `id` (including jobs it shares with an earlier
/// experiment that planned the same job), in plan order, with its epochs and
/// confusion matrix.
pub fn jobs(conn: &Connection, experiment: &str) -> Result<Vec<JobRecord>, FromStoreError> {
    // Stores before schema 4 (read without migrating) have no sweeps.
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let sweep_columns = if version >= 4 {
        "ej.configuration, j.pruned_json"
    } else {
        "0, NULL"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT j.id, j.variant, j.seed, j.fold, j.protocol, j.status, j.attempts, j.best_epoch,
                j.test_accuracy, j.test_loss, j.val_accuracy, j.val_loss, j.train_seconds,
                j.worker, j.device, j.error, j.result_json, j.finished_ms, {sweep_columns}
         FROM jobs j LEFT JOIN experiment_jobs ej ON ej.job = j.id AND ej.experiment = ?1
         WHERE ej.experiment IS NOT NULL OR j.experiment = ?1
         ORDER BY ej.position, j.rowid"
    ))?;
    let raws = stmt
        .query_map([experiment], |r| {
            Ok(RawJob {
                id: r.get(0)?,
                variant: r.get(1)?,
                seed: r.get(2)?,
                fold: r.get(3)?,
                protocol: r.get(4)?,
                status: r.get(5)?,
                attempts: r.get(6)?,
                best_epoch: r.get(7)?,
                test_accuracy: r.get(8)?,
                test_loss: r.get(9)?,
                val_accuracy: r.get(10)?,
                val_loss: r.get(11)?,
                train_seconds: r.get(12)?,
                worker: r.get(13)?,
                device: r.get(14)?,
                error: r.get(15)?,
                result_json: r.get(16)?,
                finished_ms: r.get(17)?,
                configuration: r.get(18)?,
                pruned_json: r.get(19)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut epochs_stmt = conn
        .prepare("SELECT epoch, metrics_json FROM epoch_metrics WHERE job = ?1 ORDER BY epoch")?;
    raws.into_iter()
        .map(|raw| {
            let key = raw.id.clone();
            let (variant, protocol, status) =
                reads::job_kind(&key, &raw.variant, &raw.protocol, &raw.status)?;
            let int =
                |v: i64, column| u32::try_from(v).map_err(|e| corrupt("jobs", &key, column, e));
            let epoch_rows = epochs_stmt
                .query_map([&key], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut epochs = epoch_rows
                .into_iter()
                .map(|(epoch, json)| {
                    serde_json::from_str::<EpochMetrics>(&json).map_err(|e| {
                        corrupt(
                            "epoch_metrics",
                            &format!("{key} epoch {epoch}"),
                            "metrics_json",
                            e,
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let result: Option<serde_json::Value> = raw
                .result_json
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("jobs", &key, "result_json", e))?;
            let confusion = result
                .as_ref()
                .and_then(|r| r.get("confusion"))
                .filter(|c| !c.is_null())
                .map(|c| serde_json::from_value::<Vec<Vec<u32>>>(c.clone()))
                .transpose()
                .map_err(|e| corrupt("jobs", &key, "result_json.confusion", e))?;
            // Epochs live in their own table; a result carries them too.
            let result_epochs = result.as_ref().and_then(|r| r.get("epochs"));
            if let Some(list) = result_epochs.filter(|_| epochs.is_empty()) {
                epochs = serde_json::from_value(list.clone())
                    .map_err(|e| corrupt("jobs", &key, "result_json.epochs", e))?;
            }
            Ok(JobRecord {
                experiment: experiment.to_owned(),
                variant,
                seed: u64::try_from(raw.seed).map_err(|e| corrupt("jobs", &key, "seed", e))?,
                fold: int(raw.fold, "fold")?,
                protocol,
                status,
                attempts: int(raw.attempts, "attempts")?,
                best_epoch: raw.best_epoch.map(|b| int(b, "best_epoch")).transpose()?,
                test_accuracy: raw.test_accuracy,
                test_loss: raw.test_loss,
                val_accuracy: raw.val_accuracy,
                val_loss: raw.val_loss,
                train_seconds: raw.train_seconds,
                worker: raw.worker,
                device: raw.device,
                error: raw.error,
                epochs,
                confusion,
                finished_unix: raw.finished_ms.map(|ms| ms.div_euclid(1000)),
                configuration: raw
                    .configuration
                    .map(|c| {
                        usize::try_from(c)
                            .map_err(|e| corrupt("experiment_jobs", &key, "configuration", e))
                    })
                    .transpose()?
                    .unwrap_or(0),
                pruned: raw
                    .pruned_json
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| corrupt("jobs", &key, "pruned_json", e))?,
            })
        })
        .collect()
}

/// Whether the store holds an experiment with this id (cheap check).
pub fn has_experiment(conn: &Connection, id: &str) -> Result<bool, FromStoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM experiments WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

//! Reads the records reports and the dashboard need straight from the state
//! database, read-only, so `coordinator report` and the dashboard work beside a
//! running coordinator (WAL mode lets a reader in while the server writes) and
//! never change the store. Jobs are read by [`super::read_jobs`], the live
//! view's extras by [`super::read_live`].
//!
//! It reads the store's schema (up to version 4): `experiments`, `jobs` (linked
//! to experiments, and to a sweep configuration, through `experiment_jobs`),
//! `epoch_metrics` (one `EpochMetrics` JSON per job and epoch) and the result
//! JSON of finished jobs (for the confusion matrix).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use super::read_jobs::{Depth, epochs, job, jobs, jobs_at};
pub use super::read_live::{OpenAttempt, WorkerJob, open_attempts, version};
use super::records::ExperimentRecord;

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
    /// A stored value does not parse (the store's one check of its rows,
    /// `StoreError::Corrupt`, naming table, row and column).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
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
    Ok(experiment_records(conn)?)
}

/// [`experiments`], for the scheduler's store errors (one reader for both).
pub(crate) fn experiment_records(
    conn: &Connection,
) -> Result<Vec<ExperimentRecord>, super::StoreError> {
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
                .map_err(|e| super::reads::corrupt("experiments", &id, "class_names_json", e))?;
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

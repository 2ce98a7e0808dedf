//! Reads the records reports and the dashboard need straight from the state
//! database, read-only, so `coordinator report` and the dashboard work beside a
//! running coordinator (WAL mode lets a reader in while the server writes) and
//! never change the store: [`open_read_only`], then the readers gathered here
//! (experiments from `experiments`, jobs and the attempts running now from
//! `job_records`, epochs from `metrics`) and the live view's [`version`].
//!
//! It reads the store's schema (up to version 4): `experiments`, `jobs` (linked
//! to experiments, and to a sweep configuration, through `experiment_jobs`),
//! `epoch_metrics` (one `EpochMetrics` JSON per job and epoch) and the result
//! JSON of finished jobs (for the confusion matrix).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

pub use super::error::FromStoreError;
pub use super::experiments::{experiment, experiments, has_experiment};
pub use super::job_records::{Depth, OpenAttempt, WorkerJob, job, jobs, jobs_at, open_attempts};
pub use super::metrics::epochs;

/// Newest store schema this reader understands.
const KNOWN_SCHEMA: u32 = super::schema::SCHEMA_VERSION;

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

/// A cheap fingerprint of everything the dashboard shows: it changes when a
/// job, an epoch, a worker, a suspect or an experiment changes.
pub fn version(conn: &Connection) -> Result<String, FromStoreError> {
    let suspects = super::verify_rows::suspects_version(conn)?;
    let rest: String = conn.query_row(
        "SELECT (SELECT count(*) || '.' || coalesce(max(updated_ms), 0) FROM jobs) || '/' ||
                (SELECT coalesce(max(rowid), 0) FROM epoch_metrics) || '/' ||
                (SELECT count(*) || '.' || coalesce(max(last_seen_ms), 0) || '.' ||
                        coalesce(sum(state = 'alive'), 0) || '.' || coalesce(sum(state = 'lost'), 0) FROM workers) || '/' ||
                (SELECT count(*) FROM experiments)",
        [],
        |r| r.get(0),
    )?;
    Ok(format!("{rest}/{suspects}"))
}

//! The coordinator's persistent state: an embedded SQLite database (WAL mode,
//! foreign keys on, a busy timeout), schema versioned by `user_version`.
//!
//! Tables: `experiments`, `jobs` (one row per [`JobId`], shared by every experiment
//! that plans the same job, linked through `experiment_jobs`), `attempts` (one per
//! lease; the id is the fencing token), `workers`, `worker_credentials` and
//! `enrolment_tokens` (hashes of workers' own tokens), `epoch_metrics` and
//! `checkpoints` (the record of each unfinished job's latest checkpoint; the
//! bytes are a file, see [`crate::checkpoints`]) and `prune_evidence` (the
//! attempts whose metrics pruned a job, see [`prune_evidence`]); deterministic
//! replay's `job_runs` and `suspects` ([`verify_rows`]).
//! The scheduler makes every state change in one transaction
//! ([`Store::transaction`]) through typed calls ([`job_writes`],
//! [`lease_writes`], [`worker_rows`], [`checkpoint_rows`]; no SQL outside this
//! module); it reads rows back as typed values, by what they read:
//! `experiments`, `jobs` (and attempts), `metrics` (epochs) and
//! `worker_rows`. [`read_only`] (over a read-only connection, beside a
//! running coordinator) reads the [`records`] reports and the dashboard use.
//! Every file here takes its errors from `error`; none imports this one.
//!
//! [`JobId`]: spikecv_common::experiment::plan::JobId

pub(crate) mod checkpoint_rows;
pub(crate) mod credential_rows;
mod error;
pub(crate) mod experiments;
mod job_records;
pub(crate) mod job_writes;
pub(crate) mod jobs;
pub(crate) mod lease_writes;
pub(crate) mod metrics;
pub(crate) mod prune_evidence;
pub mod read_only;
pub mod records;
mod schema;
pub mod verify_rows;
pub(crate) mod worker_rows;

pub use error::StoreError;
pub use jobs::{AttemptRow, JobRow};
pub use schema::SCHEMA_VERSION;
pub use worker_rows::WorkerRow;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::plan::JobId;

use crate::ids::ExperimentId;

/// How long a writer waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The state database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
}

impl Store {
    /// Opens (creating when missing) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::init(conn, Some(path.to_owned()))
    }

    /// A private in-memory database (tests, `plan` dry runs).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// A private in-memory copy of this store's database, page for page
    /// (SQLite's backup API), schema version included: a test that needs
    /// thousands of fresh stores migrates one and copies it, instead of
    /// running every migration for each.
    pub fn copy_in_memory(&self) -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        // Every page in one step (retried while another connection writes the source).
        rusqlite::backup::Backup::new(&self.conn, &mut conn)?.run_to_completion(
            i32::MAX,
            Duration::ZERO,
            None,
        )?;
        Self::init(conn, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL needs a file; an in-memory database answers "memory", which is fine.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 32 MiB of page cache (the default is 2 MiB): the jobs table of a
        // 100,000-job run stays in memory instead of being re-read per call.
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        Ok(Self { conn, path })
    }

    /// The database file (None in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Starts a write transaction (IMMEDIATE: takes the write lock at once, so two
    /// coordinators on one file cannot interleave a read-modify-write).
    pub fn transaction(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }
}

impl Store {
    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// One job by id.
    pub fn job(&self, id: &JobId) -> Result<Option<JobRow>, StoreError> {
        jobs::job(&self.conn, id)
    }

    /// The jobs of an experiment (including jobs it shares with an earlier one),
    /// in plan order; every job when `experiment` is None.
    pub fn jobs(&self, experiment: Option<&ExperimentId>) -> Result<Vec<JobRow>, StoreError> {
        match experiment {
            None => jobs::query_jobs(&self.conn, "", []),
            Some(e) => jobs::query_jobs(
                &self.conn,
                "WHERE id IN (SELECT job FROM experiment_jobs WHERE experiment = ?1)",
                [e.0.as_str()],
            ),
        }
    }

    /// Every experiment, oldest first.
    pub fn experiments(&self) -> Result<Vec<records::ExperimentRecord>, StoreError> {
        experiments::experiment_records(&self.conn)
    }

    /// Every worker, in registration order.
    pub fn workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        worker_rows::query_workers(&self.conn, "", [])
    }

    /// The stored per-epoch metrics of a job, by epoch.
    pub fn epochs(&self, job: &JobId) -> Result<Vec<EpochMetrics>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT epoch, metrics_json FROM epoch_metrics WHERE job = ?1 ORDER BY epoch",
        )?;
        let rows = stmt
            .query_map([job.as_str()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(epoch, json)| {
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    table: "epoch_metrics",
                    key: format!("{job}/{epoch}"),
                    column: "metrics_json",
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_in_memory_has_the_schema_and_rows_and_goes_its_own_way() {
        let original = Store::open_in_memory().unwrap();
        original
            .conn()
            .execute(
                "INSERT INTO workers (id, name, host, slots_json, data_fingerprint,
                     registered_ms, last_seen_ms, state)
                 VALUES ('w1', 'a', 'h', '[]', '', 0, 0, 'alive')",
                [],
            )
            .unwrap();
        let copy = original.copy_in_memory().unwrap();
        assert_eq!(copy.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(copy.path(), None);
        assert_eq!(copy.workers().unwrap(), original.workers().unwrap());
        copy.conn().execute("DELETE FROM workers", []).unwrap();
        assert!(copy.workers().unwrap().is_empty());
        assert_eq!(original.workers().unwrap().len(), 1);
        let on: bool = copy
            .conn()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(on, "the copy's connection is set up as a store's");
    }
}

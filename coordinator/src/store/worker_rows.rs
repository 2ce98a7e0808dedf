//! Workers' rows: registration (insert, refresh, re-registration under the
//! same name and host of a worker that is gone), the secret hash their calls are checked against, and
//! what data the unfinished jobs need.

use rusqlite::{Connection, OptionalExtension, params};

use super::error::{StoreError, corrupt};
use super::job_writes::exec;
use spikecv_common::experiment::trainer::TrainerInfo;

use crate::ids::{SlotInfo, WorkerId};
use crate::states::WorkerState;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One `workers` row.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// Id.
    pub id: WorkerId,
    /// Name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Slots.
    pub slots: Vec<SlotInfo>,
    /// Data fingerprint.
    pub data_fingerprint: String,
    /// The training scripts it registered.
    pub trainers: Vec<TrainerInfo>,
    /// State.
    pub state: WorkerState,
    /// Last call.
    pub last_seen_ms: i64,
}

/// A worker's registration as stored.
#[derive(Debug)]
pub(crate) struct WorkerFields<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its host.
    pub host: &'a str,
    /// Its slots, as JSON.
    pub slots_json: &'a str,
    /// Its data set's fingerprint.
    pub data_fingerprint: &'a str,
    /// Its trainers, as JSON.
    pub trainers_json: &'a str,
}

/// Whether some unfinished job runs on data with `fingerprint` (or on any
/// data): one index probe, for the usual case of every lease and heartbeat.
pub(crate) fn serves_unfinished_jobs(conn: &Connection, fingerprint: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('pending', 'leased', 'running')
                 AND (data_fingerprint IS NULL OR data_fingerprint = ?1))",
        )?
        .query_row([fingerprint], |r| r.get(0))?)
}

/// The data fingerprints unfinished jobs need (`None`: any data).
pub(crate) fn unfinished_fingerprints(conn: &Connection) -> Result<Vec<Option<String>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT data_fingerprint FROM jobs WHERE status IN ('pending', 'leased', 'running')",
    )?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Option<String>>(0))?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes workers that are lost and never leased anything (nothing refers to
/// them); the number deleted.
pub(crate) fn forget_idle_lost_workers(conn: &Connection) -> Result<usize> {
    exec(
        conn,
        "DELETE FROM workers WHERE state = ?1
             AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.worker = workers.id)",
        [WorkerState::Lost],
    )
}

/// The oldest worker registered under `name` and `host` that is gone: no open
/// attempt, and lost or silent since `silent_since` (a live worker's identity
/// is never handed to another registration).
pub(crate) fn gone_worker_named(
    conn: &Connection,
    name: &str,
    host: &str,
    silent_since: i64,
) -> Result<Option<WorkerId>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM workers w WHERE name = ?1 AND host = ?2
                 AND (state = ?3 OR last_seen_ms <= ?4)
                 AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.worker = w.id AND a.ended_ms IS NULL)
             ORDER BY registered_ms, id LIMIT 1",
        )?
        .query_row(params![name, host, WorkerState::Lost, silent_since], |r| {
            r.get(0)
        })
        .optional()?
        .map(WorkerId))
}

/// How many workers are stored.
pub(crate) fn worker_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM workers", [], |r| r.get(0))?)
}

/// How many workers are not lost.
pub(crate) fn present_worker_count(conn: &Connection) -> Result<usize> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM workers WHERE state != ?1")?
        .query_row([WorkerState::Lost], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Workers not lost that no credential names (those on the shared token).
pub(crate) fn present_shared_worker_count(conn: &Connection) -> Result<usize> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM workers WHERE state != ?1 \
             AND id NOT IN (SELECT name FROM worker_credentials)",
        )?
        .query_row([WorkerState::Lost], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Stores a new worker, alive, with its secret's hash.
pub(crate) fn insert_worker(
    conn: &Connection,
    id: &WorkerId,
    w: &WorkerFields<'_>,
    secret_digest: &str,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "INSERT INTO workers (id, name, host, slots_json, data_fingerprint, registered_ms,
             last_seen_ms, state, secret_sha256, trainers_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)",
        params![
            id.0,
            w.name,
            w.host,
            w.slots_json,
            w.data_fingerprint,
            now,
            WorkerState::Alive,
            secret_digest,
            w.trainers_json
        ],
    )?;
    Ok(())
}

/// Refreshes a stored worker's registration (a draining one stays draining,
/// any other is alive), and replaces its secret's hash when given one.
pub(crate) fn refresh_worker(
    conn: &Connection,
    id: &WorkerId,
    w: &WorkerFields<'_>,
    secret_digest: Option<&str>,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE workers SET name = ?2, host = ?3, slots_json = ?4, data_fingerprint = ?5,
             last_seen_ms = ?6, secret_sha256 = coalesce(?7, secret_sha256),
             state = CASE state WHEN ?8 THEN ?8 ELSE ?9 END, trainers_json = ?10
         WHERE id = ?1",
        params![
            id.0,
            w.name,
            w.host,
            w.slots_json,
            w.data_fingerprint,
            now,
            secret_digest,
            WorkerState::Draining,
            WorkerState::Alive,
            w.trainers_json
        ],
    )?;
    Ok(())
}

/// The stored secret hash of a worker: `None` when no such worker exists,
/// `Some(None)` when it has none (registered before secrets existed).
pub(crate) fn secret_digest(
    conn: &Connection,
    worker: &WorkerId,
) -> Result<Option<Option<String>>> {
    Ok(conn
        .prepare_cached("SELECT secret_sha256 FROM workers WHERE id = ?1")?
        .query_row([worker.0.as_str()], |r| r.get::<_, Option<String>>(0))
        .optional()?)
}

/// Workers matching `where_sql`, in registration order.
pub(crate) fn query_workers(
    conn: &Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<WorkerRow>, StoreError> {
    let sql = format!(
        "SELECT id, name, host, slots_json, data_fingerprint, state, last_seen_ms, trainers_json
         FROM workers {where_sql} ORDER BY registered_ms, id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter()
        .map(
            |(id, name, host, slots_json, data_fingerprint, state, last_seen_ms, trainers_json)| {
                let slots = serde_json::from_str(&slots_json)
                    .map_err(|e| corrupt("workers", &id, "slots_json", e))?;
                let trainers = serde_json::from_str(&trainers_json)
                    .map_err(|e| corrupt("workers", &id, "trainers_json", e))?;
                let state: WorkerState = state
                    .parse()
                    .map_err(|e: String| corrupt("workers", &id, "state", e))?;
                Ok(WorkerRow {
                    id: WorkerId(id),
                    name,
                    host,
                    slots,
                    data_fingerprint,
                    trainers,
                    state,
                    last_seen_ms,
                })
            },
        )
        .collect()
}

/// One worker by id.
pub(crate) fn worker(conn: &Connection, id: &WorkerId) -> Result<Option<WorkerRow>, StoreError> {
    Ok(query_workers(conn, "WHERE id = ?1", [id.0.as_str()])?
        .into_iter()
        .next())
}

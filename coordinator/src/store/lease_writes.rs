//! The state changes of attempts (leases) and workers, as typed calls inside
//! the scheduler's transaction.

use rusqlite::{Connection, params};
use spikecv_common::experiment::plan::JobId;

use super::error::StoreError;
use super::job_writes::{attempt_key, exec};
use crate::ids::{AttemptId, WorkerId};
use crate::states::{AttemptOutcome, WorkerState};

type Result<T> = std::result::Result<T, StoreError>;

/// Opens an attempt of `job` on `worker`'s `device`, until `deadline`; it
/// must report a new epoch every `epoch_timeout_ms` (0: no limit).
pub(crate) fn insert_attempt(
    conn: &Connection,
    job: &JobId,
    worker: &WorkerId,
    device: &str,
    now: i64,
    deadline: i64,
    epoch_timeout_ms: i64,
) -> Result<AttemptId> {
    exec(
        conn,
        "INSERT INTO attempts (job, worker, device, leased_ms, deadline_ms, progress_ms,
             epoch_timeout_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6)",
        params![
            job.as_str(),
            worker.0,
            device,
            now,
            deadline,
            epoch_timeout_ms
        ],
    )?;
    Ok(AttemptId(conn.last_insert_rowid().unsigned_abs()))
}

/// Attempts `worker` holds open.
pub(crate) fn open_attempts_of(conn: &Connection, worker: &WorkerId) -> Result<usize> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM attempts WHERE worker = ?1 AND ended_ms IS NULL")?
        .query_row([worker.0.as_str()], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The highest epoch an attempt reported (`None`: none yet).
pub(crate) fn last_epoch(conn: &Connection, attempt: AttemptId) -> Result<Option<u32>> {
    Ok(conn
        .prepare_cached("SELECT last_epoch FROM attempts WHERE id = ?1")?
        .query_row([attempt_key(attempt)], |r| r.get(0))?)
}

/// An attempt reported `epoch` at `now`: a higher epoch than before is
/// progress (it restarts the epoch timeout), the same one is not.
pub(crate) fn note_epoch(
    conn: &Connection,
    attempt: AttemptId,
    epoch: u32,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "UPDATE attempts SET progress_ms = CASE WHEN last_epoch IS NULL OR ?2 > last_epoch
                 THEN ?3 ELSE progress_ms END,
             last_epoch = max(coalesce(last_epoch, 0), ?2)
         WHERE id = ?1",
        params![attempt_key(attempt), epoch, now],
    )?;
    Ok(())
}

/// Open attempts that reported no new epoch within their epoch timeout by
/// `now`, oldest first: (attempt, job, timeout in ms).
pub(crate) fn stalled_attempts(
    conn: &Connection,
    now: i64,
) -> Result<Vec<(AttemptId, JobId, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, job, epoch_timeout_ms FROM attempts
         WHERE ended_ms IS NULL AND epoch_timeout_ms > 0
             AND coalesce(progress_ms, leased_ms) + epoch_timeout_ms <= ?1
         ORDER BY id",
    )?;
    let rows = stmt
        .query_map([now], |r| {
            Ok((
                AttemptId(r.get::<_, i64>(0)?.unsigned_abs()),
                JobId::new(r.get::<_, String>(1)?),
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows)
}

/// Counts every open attempt's progress as made at `now` at the latest (after
/// a coordinator restart: no epoch could be reported while it was down).
pub(crate) fn restart_progress_clocks(conn: &Connection, now: i64) -> Result<usize> {
    exec(
        conn,
        "UPDATE attempts SET progress_ms = ?1
         WHERE ended_ms IS NULL AND coalesce(progress_ms, 0) < ?1",
        [now],
    )
}

/// Ends an attempt with `outcome` (and an error text, when there is one).
pub(crate) fn end_attempt(
    conn: &Connection,
    attempt: AttemptId,
    now: i64,
    outcome: AttemptOutcome,
    error: Option<&str>,
) -> Result<()> {
    exec(
        conn,
        "UPDATE attempts SET ended_ms = ?2, outcome = ?3, error = ?4 WHERE id = ?1",
        params![attempt_key(attempt), now, outcome, error],
    )?;
    Ok(())
}

/// Attempts of `job` its workers released themselves (not those an admin's
/// removal of a worker released, which carry a reason).
pub(crate) fn worker_releases(conn: &Connection, job: &JobId) -> Result<u32> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM attempts WHERE job = ?1 AND outcome = ?2 AND error IS NULL",
        )?
        .query_row(params![job.as_str(), AttemptOutcome::Released], |r| {
            r.get(0)
        })?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Moves an attempt's deadline to at least `deadline`.
pub(crate) fn extend_attempt(conn: &Connection, attempt: AttemptId, deadline: i64) -> Result<()> {
    exec(
        conn,
        "UPDATE attempts SET deadline_ms = max(deadline_ms, ?2) WHERE id = ?1",
        params![attempt_key(attempt), deadline],
    )?;
    Ok(())
}

/// Open attempts whose deadline is not after `now`, oldest first, with their job.
pub(crate) fn expired_attempts(conn: &Connection, now: i64) -> Result<Vec<(AttemptId, JobId)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, job FROM attempts WHERE ended_ms IS NULL AND deadline_ms <= ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([now], |r| {
            Ok((
                AttemptId(r.get::<_, i64>(0)?.unsigned_abs()),
                JobId::new(r.get::<_, String>(1)?),
            ))
        })?
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows)
}

/// Pushes every open attempt's deadline to at least `deadline`; the number moved.
pub(crate) fn extend_open_attempts(conn: &Connection, deadline: i64) -> Result<usize> {
    exec(
        conn,
        "UPDATE attempts SET deadline_ms = ?1 WHERE ended_ms IS NULL AND deadline_ms < ?1",
        [deadline],
    )
}

/// A worker was heard from at `now` (a lost one is alive again).
pub(crate) fn touch_worker(conn: &Connection, worker: &WorkerId, now: i64) -> Result<()> {
    exec(
        conn,
        "UPDATE workers SET last_seen_ms = ?2,
                state = CASE state WHEN ?3 THEN ?4 ELSE state END
         WHERE id = ?1",
        params![worker.0, now, WorkerState::Lost, WorkerState::Alive],
    )?;
    Ok(())
}

/// Alive workers not heard from since `before` are lost.
pub(crate) fn mark_silent_workers_lost(conn: &Connection, before: i64) -> Result<()> {
    exec(
        conn,
        "UPDATE workers SET state = ?2 WHERE state = ?3 AND last_seen_ms <= ?1",
        params![before, WorkerState::Lost, WorkerState::Alive],
    )?;
    Ok(())
}

/// Every worker not lost counts as seen at `now` (after a coordinator restart).
pub(crate) fn see_every_worker(conn: &Connection, now: i64) -> Result<()> {
    exec(
        conn,
        "UPDATE workers SET last_seen_ms = ?1 WHERE state != ?2 AND last_seen_ms < ?1",
        params![now, WorkerState::Lost],
    )?;
    Ok(())
}

/// Sets a worker's state; false when no such worker is stored.
pub(crate) fn set_worker_state(
    conn: &Connection,
    worker: &WorkerId,
    state: WorkerState,
) -> Result<bool> {
    Ok(exec(
        conn,
        "UPDATE workers SET state = ?2 WHERE id = ?1",
        params![worker.0, state],
    )? > 0)
}

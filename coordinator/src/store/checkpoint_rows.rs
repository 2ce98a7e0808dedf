//! Checkpoint records (one per unfinished job: the epoch, the SHA-256 naming
//! its file and its size; schema 1 kept the bytes inline).

use rusqlite::{Connection, OptionalExtension, params};
use spikecv_common::experiment::plan::JobId;

use super::error::StoreError;
use super::job_writes::{attempt_key, exec};
use crate::ids::AttemptId;

type Result<T> = std::result::Result<T, StoreError>;

/// A job's checkpoint record: (epoch, SHA-256 hex, size in bytes).
pub(crate) type CheckpointRow = (u32, String, u64);

/// The job's checkpoint record, if any.
pub(crate) fn checkpoint(conn: &Connection, job: &JobId) -> Result<Option<CheckpointRow>> {
    Ok(conn
        .prepare_cached("SELECT epoch, sha256, size FROM checkpoints WHERE job = ?1")?
        .query_row([job.as_str()], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?.unsigned_abs(),
            ))
        })
        .optional()?)
}

/// Deletes the job's checkpoint record; the SHA-256 it named.
pub(crate) fn take_checkpoint(conn: &Connection, job: &JobId) -> Result<Option<String>> {
    let sha: Option<String> = conn
        .prepare_cached("SELECT sha256 FROM checkpoints WHERE job = ?1")?
        .query_row([job.as_str()], |r| r.get(0))
        .optional()?;
    exec(
        conn,
        "DELETE FROM checkpoints WHERE job = ?1",
        [job.as_str()],
    )?;
    Ok(sha)
}

/// Records a checkpoint (its bytes in a file named by `sha256`) an attempt
/// took after `epoch`.
pub(crate) fn insert_checkpoint(
    conn: &Connection,
    job: &JobId,
    epoch: u32,
    attempt: AttemptId,
    sha256: &str,
    size: i64,
    now: i64,
) -> Result<()> {
    exec(
        conn,
        "INSERT INTO checkpoints (job, epoch, attempt, sha256, size, bytes, saved_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
        params![job.as_str(), epoch, attempt_key(attempt), sha256, size, now],
    )?;
    Ok(())
}

/// Checkpoints still held inline (schema 1): (job, SHA-256, bytes).
pub(crate) fn inline_checkpoints(conn: &Connection) -> Result<Vec<(JobId, String, Vec<u8>)>> {
    let mut stmt =
        conn.prepare("SELECT job, sha256, bytes FROM checkpoints WHERE bytes IS NOT NULL")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((JobId::new(r.get::<_, String>(0)?), r.get(1)?, r.get(2)?))
        })?
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows)
}

/// Drops a checkpoint's inline bytes (they are in its file now).
pub(crate) fn drop_inline_bytes(conn: &Connection, job: &JobId) -> Result<()> {
    exec(
        conn,
        "UPDATE checkpoints SET bytes = NULL WHERE job = ?1",
        [job.as_str()],
    )?;
    Ok(())
}

/// Every checkpoint record: (job, SHA-256).
pub(crate) fn checkpoint_names(conn: &Connection) -> Result<Vec<(JobId, String)>> {
    let mut stmt = conn.prepare("SELECT job, sha256 FROM checkpoints")?;
    let rows = stmt
        .query_map([], |r| Ok((JobId::new(r.get::<_, String>(0)?), r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows)
}

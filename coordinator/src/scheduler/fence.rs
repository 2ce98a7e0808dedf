//! Helpers every operation's transaction uses: whether an attempt is still
//! its job's current one (the fence), moving its deadline, and encodings.

use rusqlite::Connection;
use sha2::{Digest, Sha256};
use spikecv_common::experiment::job::JobStatus;

use super::SchedulerError;
use super::types::{AttemptId, WorkerId};
use crate::store::jobs::{self, AttemptRow, JobRow};
use crate::store::lease_writes;

type Result<T> = std::result::Result<T, SchedulerError>;

/// Hex SHA-256 of `bytes`.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `value` as JSON; an unencodable value is a bad request.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| SchedulerError::BadRequest {
        message: format!("cannot encode as JSON: {e}"),
    })
}

/// The store's key of `attempt`.
pub(super) fn attempt_key(attempt: AttemptId) -> Result<i64> {
    i64::try_from(attempt.0).map_err(|_| SchedulerError::UnknownAttempt { attempt })
}

/// The attempt and its job, if the attempt is its job's current one; else the
/// typed refusal. Reads only.
pub(super) fn fence(conn: &Connection, attempt: AttemptId) -> Result<(AttemptRow, JobRow)> {
    let a = jobs::attempt(conn, attempt)?.ok_or(SchedulerError::UnknownAttempt { attempt })?;
    let job = jobs::job(conn, &a.job)?
        .ok_or_else(|| SchedulerError::UnknownJob { job: a.job.clone() })?;
    let live = matches!(job.status, JobStatus::Leased | JobStatus::Running);
    if job.current_attempt != Some(attempt) || a.ended_ms.is_some() || !live {
        return Err(SchedulerError::Fenced {
            attempt,
            status: job.status,
            job: job.id,
        });
    }
    Ok((a, job))
}

/// Moves a current attempt's deadline and counts its worker as heard from.
pub(super) fn extend(
    conn: &Connection,
    attempt: AttemptId,
    deadline: i64,
    worker: &WorkerId,
    now: i64,
) -> Result<()> {
    lease_writes::extend_attempt(conn, attempt, deadline)?;
    lease_writes::touch_worker(conn, worker, now)?;
    Ok(())
}

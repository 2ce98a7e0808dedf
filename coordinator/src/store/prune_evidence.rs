//! What pruning decisions stand on: for each pruned job, the attempts whose
//! epoch metrics made the decision (`prune_evidence`), and for each attempt
//! the one whose checkpoint its lease handed out (`attempts.resumed_from`).
//! Which stored epochs a decision may use at all is [`TRUSTED_METRICS`].

use rusqlite::{Connection, params};
use spikecv_common::experiment::plan::JobId;

use super::error::StoreError;
use super::job_writes::{attempt_key, exec};
use crate::ids::AttemptId;

type Result<T> = std::result::Result<T, StoreError>;

/// An SQL condition over the attempt `a` that stored an epoch: its metrics
/// may decide a pruning when it is open, succeeded or was stopped by the
/// coordinator (pruned, cancelled), or when it was released or lost and a
/// later lease resumed its checkpoint; a failed attempt's never, nor those of
/// a released or lost one whose job nobody resumed.
pub(crate) const TRUSTED_METRICS: &str = "(a.outcome IS NULL
     OR a.outcome IN ('succeeded', 'cancelled')
     OR (a.outcome IN ('released', 'lost')
         AND EXISTS (SELECT 1 FROM attempts r WHERE r.resumed_from = a.id)))";

/// Notes that `job` was pruned on the metrics of `attempts`.
pub(crate) fn record(conn: &Connection, job: &JobId, attempts: &[AttemptId]) -> Result<()> {
    for a in attempts {
        exec(
            conn,
            "INSERT OR IGNORE INTO prune_evidence (job, attempt) VALUES (?1, ?2)",
            params![job.as_str(), attempt_key(*a)],
        )?;
    }
    Ok(())
}

/// The jobs still pruned on a decision `attempt`'s metrics took part in,
/// with their `max_attempts`.
pub(crate) fn pruned_on(conn: &Connection, attempt: AttemptId) -> Result<Vec<(JobId, u32)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.max_attempts FROM prune_evidence e JOIN jobs j ON j.id = e.job
         WHERE e.attempt = ?1 AND j.status = 'pruned' ORDER BY j.rowid",
    )?;
    let rows = stmt
        .query_map([attempt_key(attempt)], |r| {
            Ok((JobId::new(r.get::<_, String>(0)?), r.get::<_, u32>(1)?))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Notes that `attempt`'s lease hands out `job`'s checkpoint (the attempt
/// that uploaded it is resumed); nothing when the job has none.
pub(crate) fn note_resumed(conn: &Connection, attempt: AttemptId, job: &JobId) -> Result<()> {
    exec(
        conn,
        "UPDATE attempts SET resumed_from = (SELECT attempt FROM checkpoints WHERE job = ?2)
         WHERE id = ?1",
        params![attempt_key(attempt), job.as_str()],
    )?;
    Ok(())
}

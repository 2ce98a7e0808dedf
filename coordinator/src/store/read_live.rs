//! What only the live dashboard reads: the attempts running now and a cheap
//! fingerprint of the whole store (to know when to push an update).

use rusqlite::Connection;
use serde::Serialize;

use super::read_only::FromStoreError;

/// One open attempt: the worker and the job it runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAttempt {
    /// Worker id.
    pub worker: String,
    /// The job.
    pub job: WorkerJob,
}

/// A job a worker runs (as the dashboard lists it under the worker).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerJob {
    /// Job id.
    pub job: String,
    /// Slot.
    pub device: String,
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Last reported epoch.
    pub epoch: Option<u32>,
    /// Epochs in total, as reported.
    pub of: Option<u32>,
}

/// The attempts that are their job's current one and have not ended.
pub fn open_attempts(conn: &Connection) -> Result<Vec<OpenAttempt>, FromStoreError> {
    let mut stmt = conn.prepare(
        "SELECT a.worker, a.job, a.device, j.variant, j.seed, j.fold, j.progress_epoch, j.progress_of
         FROM attempts a JOIN jobs j ON j.current_attempt = a.id
         WHERE a.ended_ms IS NULL ORDER BY a.id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(OpenAttempt {
                worker: r.get(0)?,
                job: WorkerJob {
                    job: r.get(1)?,
                    device: r.get(2)?,
                    variant: r.get(3)?,
                    seed: r.get::<_, i64>(4)?.unsigned_abs(),
                    fold: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                    epoch: r
                        .get::<_, Option<i64>>(6)?
                        .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                    of: r
                        .get::<_, Option<i64>>(7)?
                        .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A cheap fingerprint of everything the dashboard shows: it changes when a
/// job, an epoch, a worker or an experiment changes.
pub fn version(conn: &Connection) -> Result<String, FromStoreError> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) || '.' || coalesce(max(updated_ms), 0) FROM jobs) || '/' ||
                (SELECT coalesce(max(rowid), 0) FROM epoch_metrics) || '/' ||
                (SELECT count(*) || '.' || coalesce(max(last_seen_ms), 0) || '.' ||
                        coalesce(sum(state = 'alive'), 0) || '.' || coalesce(sum(state = 'lost'), 0) FROM workers) || '/' ||
                (SELECT count(*) FROM experiments)",
        [],
        |r| r.get(0),
    )?)
}

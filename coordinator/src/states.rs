//! The states the store keeps and the scheduler moves between, each converted
//! to and from its column value in one place (rusqlite's `ToSql`/`FromSql`).
//! Job states are `spikecv_common::experiment::job::JobStatus` (shared with workers and
//! reports), with the same conversions behind common's `sqlite` feature.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// A worker's state in the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Heard from recently; gets leases.
    Alive,
    /// Told to finish (release) its jobs and take no new ones.
    Draining,
    /// Not heard from within the lease timeout.
    Lost,
}

impl WorkerState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Alive => "alive",
            WorkerState::Draining => "draining",
            WorkerState::Lost => "lost",
        }
    }
}

impl std::str::FromStr for WorkerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [WorkerState::Alive, WorkerState::Draining, WorkerState::Lost]
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| format!("unknown worker state {s:?}"))
    }
}

impl ToSql for WorkerState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for WorkerState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// How an attempt ended (`attempts.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// Its job succeeded.
    Succeeded,
    /// It failed (the job may be retried).
    Failed,
    /// The worker handed it back (drain).
    Released,
    /// Its lease expired.
    Lost,
    /// Its job was cancelled, or pruned by a sweep.
    Cancelled,
}

impl AttemptOutcome {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Released => "released",
            AttemptOutcome::Lost => "lost",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }
}

impl ToSql for AttemptOutcome {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// Where a job stands in deterministic replay (`jobs.verify`; `NULL`: not
/// sampled, or its experiment does not verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyState {
    /// Sampled: a replay on another credential is wanted.
    Wanted,
    /// The replay disagreed with the original: a third run is wanted.
    Tiebreak,
    /// Two runs agreed bit for bit.
    Bitwise,
    /// Two runs agreed within the tolerance (their manifests differ).
    Tolerance,
    /// Three runs and no two agree: nothing is kept as verified.
    Disputed,
    /// Its replays kept failing or getting lost; it stays unverified.
    Unverified,
}

impl VerifyState {
    /// Every state, in the order reports list them.
    pub const ALL: [VerifyState; 6] = [
        VerifyState::Wanted,
        VerifyState::Tiebreak,
        VerifyState::Bitwise,
        VerifyState::Tolerance,
        VerifyState::Disputed,
        VerifyState::Unverified,
    ];

    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyState::Wanted => "wanted",
            VerifyState::Tiebreak => "tiebreak",
            VerifyState::Bitwise => "bitwise",
            VerifyState::Tolerance => "tolerance",
            VerifyState::Disputed => "disputed",
            VerifyState::Unverified => "unverified",
        }
    }

    /// Whether a run is still wanted.
    pub fn wants_run(self) -> bool {
        matches!(self, VerifyState::Wanted | VerifyState::Tiebreak)
    }

    /// Whether two runs agreed.
    pub fn is_verified(self) -> bool {
        matches!(self, VerifyState::Bitwise | VerifyState::Tolerance)
    }
}

impl std::str::FromStr for VerifyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VerifyState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown verification state {s:?}"))
    }
}

impl ToSql for VerifyState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for VerifyState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use spikecv_common::experiment::job::JobStatus;

    #[test]
    fn states_round_trip_through_their_columns() {
        let conn = Connection::open_in_memory().unwrap();
        for w in [WorkerState::Alive, WorkerState::Draining, WorkerState::Lost] {
            let back: WorkerState = conn.query_row("SELECT ?1", [w], |r| r.get(0)).unwrap();
            assert_eq!(back, w);
        }
        for s in [
            JobStatus::Pending,
            JobStatus::Leased,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled,
            JobStatus::Pruned,
        ] {
            let back: JobStatus = conn.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, s);
        }
        let bad: rusqlite::Result<WorkerState> =
            conn.query_row("SELECT 'asleep'", [], |r| r.get(0));
        assert!(bad.unwrap_err().to_string().contains("asleep"));
        for v in VerifyState::ALL {
            let back: VerifyState = conn.query_row("SELECT ?1", [v], |r| r.get(0)).unwrap();
            assert_eq!(back, v);
        }
        let bad: rusqlite::Result<JobStatus> = conn.query_row("SELECT 'done'", [], |r| r.get(0));
        assert!(bad.unwrap_err().to_string().contains("done"));
    }
}

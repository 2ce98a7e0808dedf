//! The scheduler: the job state machine over the store, plain sync Rust (no
//! network, no async), so every transition is testable with a hand-driven clock.
//!
//! Job states: `pending → leased → running → succeeded | failed | cancelled |
//! pruned` (pruned: a sweep's median pruner stopped it, see `prune`)
//! (and back to `pending` when a lease is lost, released or a transient failure
//! is retried). Each lease creates an attempt whose id fences every later report:
//! a report from an attempt that is not its job's current attempt is refused with
//! [`SchedulerError::Fenced`] and changes nothing. Every operation is one store
//! transaction.
//!
//! Retry policy:
//! - `fail(.., Transient)` counts against `protocol.max_attempts`; the job goes
//!   back to pending until its failures reach that bound, then it is failed.
//! - `fail(.., Deterministic)` (bad data, NaN loss, out of memory) fails the job at
//!   once: retrying would fail the same way and burn GPU time.
//! - `release` (worker drained) and lost leases (`expire_leases`) do not count as
//!   failures; lost leases are bounded separately by `max_lost` so a job that
//!   kills its workers does not loop forever, and releases by `max_releases`:
//!   each release past it counts as a transient failure, so a lease/release
//!   loop fails the job and its attempts stay at most `max_releases +
//!   max_attempts + max_lost` (plus its one success or cancellation).

mod asha;
mod attempt_ops;
mod checkpoint_content;
mod checkpoint_ops;
mod clock;
mod control;
mod credentials;
mod error;
mod fence;
mod handle;
mod identity;
mod lease_ops;
mod prune;
mod registration;
mod replay_ops;
mod status;
mod submit;
mod types;
mod validate;
mod verify;

pub use checkpoint_ops::CheckpointRecord;
pub use clock::{Clock, ManualClock, SystemClock, UnixMillis};
pub use control::CancelTarget;
pub use credentials::{
    CredentialName, EnrolmentRefusal, IssuedCredential, IssuedEnrolment, KnownTokens,
    NamedWorkerInfo, token_digest,
};
pub use error::SchedulerError;
pub use handle::{DEFAULT_MAX_QUEUED_CALLS, SchedulerHandle};
pub use identity::{Credentials, WorkerSecret};
pub use registration::Registered;
pub use spikecv_common::experiment::plan::JobId;
pub use submit::Submission;
pub use types::{
    Assignment, AttemptId, Checkpoint, ExperimentId, ExperimentStatus, FailOutcome, FailureClass,
    HeartbeatOutcome, LeaseOutcome, Progress, RunningJob, SlotInfo, StatusCounts, StatusSnapshot,
    SubmitOutcome, WorkerId, WorkerInfo, WorkerRegistration, WorkerState,
};
pub use verify::DEFAULT_REPLAY_WAIT_SECONDS;

use std::path::Path;

use crate::checkpoints::CheckpointDir;
use crate::store::Store;

/// Timing and bounds of the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// Seconds between heartbeats a worker is asked for.
    pub heartbeat_seconds: u32,
    /// A lease runs out this long after the last heartbeat (or the lease itself).
    pub lease_timeout_seconds: u32,
    /// Lost leases a job may have before it is failed (they do not count against
    /// `max_attempts`, but a job that keeps killing workers must stop).
    pub max_lost: u32,
    /// Workers registered and not lost at the same time; a registration
    /// beyond it is refused ([`SchedulerError::TooManyWorkers`]).
    pub max_workers: usize,
    /// Of those, workers on the shared worker token (no credential of their
    /// own names them) at the same time: the shared token's own cap, so that
    /// its holders cannot fill `max_workers` and keep named workers out
    /// ([`SchedulerError::TooManySharedWorkers`]).
    pub max_shared_workers: usize,
    /// Slots a worker on the shared token is kept with at most (the first
    /// ones it declares); a named worker's are its credential's.
    pub max_shared_slots: usize,
    /// Releases (a worker handing a job back) a job may have before each
    /// further one counts as a failure against `protocol.max_attempts`, so
    /// a lease/release loop ends and a job's attempts stay bounded.
    pub max_releases: u32,
}

/// [`SchedulerSettings::max_releases`] by default: a drained worker releases
/// a job once, so ten is far past an honest fleet's restarts.
pub const DEFAULT_MAX_RELEASES: u32 = 10;

/// [`SchedulerSettings::max_shared_workers`] by default: the thousand
/// workers the load bench runs on the shared token, with room.
pub const DEFAULT_MAX_SHARED_WORKERS: usize = 1024;

/// [`SchedulerSettings::max_shared_slots`] by default: the most slots a
/// registration may declare at all.
pub const DEFAULT_MAX_SHARED_SLOTS: usize = spikecv_common::proto::limits::MAX_SLOTS;

/// [`SchedulerSettings::max_workers`] by default: ten times the thousand
/// workers the load bench runs.
pub const DEFAULT_MAX_WORKERS: usize = 10_000;

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            heartbeat_seconds: 5,
            lease_timeout_seconds: 30,
            max_lost: 10,
            max_workers: DEFAULT_MAX_WORKERS,
            max_shared_workers: DEFAULT_MAX_SHARED_WORKERS,
            max_shared_slots: DEFAULT_MAX_SHARED_SLOTS,
            max_releases: DEFAULT_MAX_RELEASES,
        }
    }
}

/// The job state machine over a [`Store`].
pub struct Scheduler {
    store: Store,
    checkpoints: CheckpointDir,
    clock: Box<dyn Clock>,
    settings: SchedulerSettings,
    prune_rules: prune::PruneRules,
    replay_wait_ms: i64,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler over the store at `path` (created and migrated when needed).
    ///
    /// A coordinator that restarts gives every open lease a grace period of one
    /// lease timeout from now (see [`Scheduler::grant_restart_grace`]): its workers
    /// could not heartbeat while it was down, and their running work must not be
    /// thrown away by the first expiry tick.
    pub fn open(
        path: &Path,
        settings: SchedulerSettings,
        clock: Box<dyn Clock>,
    ) -> Result<Self, SchedulerError> {
        let mut scheduler = Self::with_store(Store::open(path)?, settings, clock)?;
        scheduler.grant_restart_grace()?;
        scheduler.tidy_checkpoint_files()?;
        scheduler.fill_in_epochs()?;
        Ok(scheduler)
    }

    /// A scheduler over an existing store; checkpoint files go beside its
    /// database file (or into a temporary directory for an in-memory store).
    pub fn with_store(
        store: Store,
        settings: SchedulerSettings,
        clock: Box<dyn Clock>,
    ) -> Result<Self, SchedulerError> {
        let checkpoints = match store.path() {
            Some(db) => CheckpointDir::beside(db).map_err(|e| {
                let dir = CheckpointDir::path_beside(db);
                SchedulerError::checkpoint_io(format!("creating {}", dir.display()), e)
            }),
            None => CheckpointDir::temporary().map_err(|e| {
                SchedulerError::checkpoint_io("creating a temporary checkpoint directory", e)
            }),
        }?;
        Ok(Self {
            store,
            checkpoints,
            clock,
            settings,
            prune_rules: prune::PruneRules::default(),
            replay_wait_ms: i64::from(DEFAULT_REPLAY_WAIT_SECONDS) * 1000,
        })
    }

    /// The directory of checkpoint files (uploads are staged there).
    pub fn checkpoint_dir(&self) -> &CheckpointDir {
        &self.checkpoints
    }

    /// How long a wanted replay waits for a slot whose manifest agrees bit
    /// for bit with the original's before any other eligible slot may take
    /// it ([`DEFAULT_REPLAY_WAIT_SECONDS`] by default; 0: at once).
    pub fn set_replay_wait_seconds(&mut self, seconds: u32) {
        self.replay_wait_ms = i64::from(seconds) * 1000;
    }

    /// The settings.
    pub fn settings(&self) -> &SchedulerSettings {
        &self.settings
    }

    /// The store (read-only use: reports, listings).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Now, by the scheduler's clock.
    pub fn now_ms(&self) -> UnixMillis {
        self.clock.now_ms()
    }

    fn lease_deadline(&self, now: UnixMillis) -> UnixMillis {
        now + i64::from(self.settings.lease_timeout_seconds) * 1000
    }
}

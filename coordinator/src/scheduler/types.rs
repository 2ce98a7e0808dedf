//! The values the scheduler hands to and takes from the service (its ids and
//! states are in [`crate::ids`] and [`crate::states`], shared with the store).

use serde::{Deserialize, Serialize};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_common::experiment::trainer::TrainerInfo;

use super::clock::UnixMillis;
pub use crate::ids::{AttemptId, ExperimentId, SlotInfo, WorkerId};
pub use crate::states::WorkerState;

/// What a worker says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// Worker name (host and pid by default).
    pub name: String,
    /// Host name.
    pub host: String,
    /// Its slots.
    pub slots: Vec<SlotInfo>,
    /// Fingerprint of its data set (hex; empty when it has none).
    pub data_fingerprint: String,
    /// The training scripts it runs besides the native engine.
    #[serde(default)]
    pub trainers: Vec<TrainerInfo>,
}

/// How a failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureClass {
    /// Will fail the same way again (bad data, NaN loss, out of memory): the job
    /// is failed at once, without a retry.
    Deterministic,
    /// May pass on another try (I/O hiccup, worker crash): retried while the job
    /// has attempts left (`protocol.max_attempts`).
    Transient,
}

/// A job handed to a worker slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The fencing token for every report about this run.
    pub attempt: AttemptId,
    /// The job.
    pub job: JobId,
    /// The experiment that submitted the job first.
    pub experiment: ExperimentId,
    /// The slot it runs on (`cpu`, `cuda:N`), one of the free slots asked with.
    pub device: String,
    /// When the lease runs out unless heartbeats extend it.
    pub deadline_ms: UnixMillis,
    /// The experiment config as TOML (what `worker train --config` reads).
    pub config_toml: String,
    /// Data set variant.
    pub variant: Variant,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Train/val/test recordings.
    pub split: FoldSplit,
    /// The epoch of the stored checkpoint to resume from, if any.
    pub checkpoint_epoch: Option<u32>,
}

impl Assignment {
    /// Whether a checkpoint exists to resume from.
    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint_epoch.is_some()
    }
}

/// What a lease call yields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LeaseOutcome {
    /// New jobs, at most one per free slot.
    pub assignments: Vec<Assignment>,
    /// The worker is draining: take no new work.
    pub drain: bool,
    /// No job is pending or running any more: workers may leave.
    pub all_done: bool,
}

/// Progress of one running attempt, sent with heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The attempt.
    pub attempt: AttemptId,
    /// Epochs done so far.
    pub epoch: u32,
    /// Epochs in total.
    pub of: u32,
}

/// What a heartbeat yields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HeartbeatOutcome {
    /// Attempts the worker must stop: no longer current (lease given away, job
    /// cancelled or finished) or unknown.
    pub cancel: Vec<AttemptId>,
    /// The worker is draining: checkpoint, release and take no new work.
    pub drain: bool,
}

/// What `fail` did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailOutcome {
    /// Back to pending for another attempt.
    Retry,
    /// Marked failed (deterministic error or no attempts left).
    Failed,
}

/// A stored checkpoint of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The epoch it was taken after.
    pub epoch: u32,
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// The checkpoint file's bytes.
    pub bytes: Vec<u8>,
}

/// What `submit` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOutcome {
    /// The experiment (same config, same id: submitting again is idempotent).
    pub experiment: ExperimentId,
    /// Jobs created now.
    pub jobs_new: u32,
    /// Jobs already in the store that already succeeded and are reused.
    pub jobs_reused: u32,
    /// Jobs already pending or running, left as they are.
    pub jobs_in_progress: u32,
    /// Failed or cancelled jobs put back to pending with a fresh retry budget.
    pub jobs_requeued: u32,
}

/// A worker as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its id.
    pub id: WorkerId,
    /// Its name.
    pub name: String,
    /// Its host.
    pub host: String,
    /// Its slots.
    pub slots: Vec<SlotInfo>,
    /// Alive, draining or lost.
    pub state: WorkerState,
    /// Last time it called.
    pub last_seen_ms: UnixMillis,
    /// Attempts it holds now.
    pub running: Vec<AttemptId>,
    /// Why it is suspect (no new leases until cleared); `None` when not.
    #[serde(default)]
    pub suspect: Option<String>,
}

/// Job counts per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Waiting for a worker.
    pub pending: u32,
    /// Leased, no progress yet.
    pub leased: u32,
    /// Running.
    pub running: u32,
    /// Succeeded.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
    /// Cancelled.
    pub cancelled: u32,
    /// Stopped by a sweep's pruner.
    #[serde(default)]
    pub pruned: u32,
}

impl StatusCounts {
    /// Adds one job of `status`.
    pub fn add(&mut self, status: JobStatus) {
        self.add_many(status, 1);
    }

    /// Adds `n` jobs of `status`.
    pub fn add_many(&mut self, status: JobStatus, n: u32) {
        let slot = match status {
            JobStatus::Pending => &mut self.pending,
            JobStatus::Leased => &mut self.leased,
            JobStatus::Running => &mut self.running,
            JobStatus::Succeeded => &mut self.succeeded,
            JobStatus::Failed => &mut self.failed,
            JobStatus::Cancelled => &mut self.cancelled,
            JobStatus::Pruned => &mut self.pruned,
        };
        *slot += n;
    }

    /// Each state's name (as stored and shown) with its count, in one fixed
    /// order: what `status`, `Watch` and `/metrics` list.
    pub fn by_state(&self) -> [(&'static str, u32); 7] {
        [
            (JobStatus::Pending.as_str(), self.pending),
            (JobStatus::Leased.as_str(), self.leased),
            (JobStatus::Running.as_str(), self.running),
            (JobStatus::Succeeded.as_str(), self.succeeded),
            (JobStatus::Failed.as_str(), self.failed),
            (JobStatus::Cancelled.as_str(), self.cancelled),
            (JobStatus::Pruned.as_str(), self.pruned),
        ]
    }

    /// Jobs in total.
    pub fn total(&self) -> u32 {
        self.pending
            + self.leased
            + self.running
            + self.succeeded
            + self.failed
            + self.cancelled
            + self.pruned
    }

    /// Jobs that will still change.
    pub fn unfinished(&self) -> u32 {
        self.pending + self.leased + self.running
    }
}

/// One experiment's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentStatus {
    /// Its id.
    pub id: ExperimentId,
    /// Its name.
    pub name: Option<String>,
    /// Its jobs per status.
    pub counts: StatusCounts,
}

/// One running (leased or running) attempt as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningJob {
    /// The job.
    pub job: JobId,
    /// Its attempt.
    pub attempt: AttemptId,
    /// Variant, seed, fold.
    pub variant: Variant,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// The worker.
    pub worker: WorkerId,
    /// Its slot.
    pub device: String,
    /// Last reported epoch and total.
    pub progress: Option<(u32, u32)>,
}

/// Everything `coordinator status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// When it was taken.
    pub now_ms: UnixMillis,
    /// Jobs per status over all experiments.
    pub counts: StatusCounts,
    /// Per experiment.
    pub experiments: Vec<ExperimentStatus>,
    /// Known workers.
    pub workers: Vec<WorkerInfo>,
    /// Attempts now leased or running.
    pub running: Vec<RunningJob>,
    /// Jobs that succeeded in the last hour.
    pub succeeded_last_hour: u32,
    /// Estimated seconds until every job is done, from the mean training time of
    /// finished jobs and the number of busy slots; None until a job finished.
    pub eta_seconds: Option<f64>,
    /// Trainers pending jobs wait for that no live worker registered, with
    /// how many jobs wait for each.
    pub waiting_for_trainers: Vec<(String, u64)>,
}

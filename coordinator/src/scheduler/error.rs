//! The scheduler's typed errors (the gRPC service maps them to status codes).

use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::{JobId, PlanError};

use super::types::{AttemptId, WorkerId};
use crate::store::StoreError;

/// Why a scheduler operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The attempt is not its job's current attempt (lease expired and given away,
    /// job cancelled or finished): the report is refused and changes nothing.
    #[error(
        "attempt {attempt} of job {job} is no longer current (job is {status}); its report is refused"
    )]
    Fenced {
        /// The stale attempt.
        attempt: AttemptId,
        /// Its job.
        job: JobId,
        /// The job's status now.
        status: JobStatus,
    },
    /// No worker has this id (e.g. the store was replaced); register again.
    #[error("unknown worker {worker}; register again")]
    UnknownWorker {
        /// The id given.
        worker: WorkerId,
    },
    /// No attempt has this id.
    #[error("unknown attempt {attempt}")]
    UnknownAttempt {
        /// The id given.
        attempt: AttemptId,
    },
    /// No job has this id.
    #[error("unknown job {job}")]
    UnknownJob {
        /// The id given.
        job: JobId,
    },
    /// The attempt belongs to another worker (the message does not name it:
    /// a worker learns nothing of the others).
    #[error("attempt {attempt} is not held by worker {worker}")]
    NotOwner {
        /// The attempt.
        attempt: AttemptId,
        /// Its worker.
        owner: WorkerId,
        /// The worker that reported it.
        worker: WorkerId,
    },
    /// The caller is not a registered worker, or its secret is not that worker's.
    #[error("worker {worker}: unknown worker or wrong secret")]
    WrongSecret {
        /// The worker id given.
        worker: WorkerId,
    },
    /// The worker's data set differs from the one every active experiment uses.
    #[error("worker {name:?} has data fingerprint {got:?}; the experiments need {expected:?}")]
    FingerprintMismatch {
        /// The worker's name.
        name: String,
        /// Its fingerprint (empty: it has none).
        got: String,
        /// The fingerprints of active experiments.
        expected: Vec<String>,
    },
    /// A cancel of a job that already finished.
    #[error("job {job} is already {status}")]
    AlreadyFinished {
        /// The job.
        job: JobId,
        /// Its final status.
        status: JobStatus,
    },
    /// A malformed request (bad value in a report).
    #[error("bad request: {message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// As many scheduler calls as the limit are queued: the call is shed.
    #[error("{limit} scheduler calls are queued, the limit (--max-queued-calls); try again later")]
    Busy {
        /// The limit.
        limit: usize,
    },
    /// As many workers as the limit are registered and alive.
    #[error(
        "{limit} workers are registered, the limit (--max-workers); a worker silent for the lease timeout frees its place"
    )]
    TooManyWorkers {
        /// The limit.
        limit: usize,
    },
    /// As many workers on the shared token as its limit are registered and
    /// alive (named workers have room of their own).
    #[error(
        "{limit} workers on the shared token are registered, its limit (--max-shared-workers); give workers credentials of their own (coordinator worker add)"
    )]
    TooManySharedWorkers {
        /// The limit.
        limit: usize,
    },
    /// A credential with this name exists already.
    #[error("a worker named {name:?} has a credential already; remove it first")]
    CredentialExists {
        /// The name.
        name: String,
    },
    /// No credential has this name.
    #[error("no worker credential named {name:?}")]
    UnknownCredential {
        /// The name.
        name: String,
    },
    /// `worker clear` of a name no suspect worker has.
    #[error("no suspect worker named {name:?}")]
    NotSuspect {
        /// The name given.
        name: String,
    },
    /// An enrolment token that is unknown, used up or expired.
    #[error("enrolment refused: the token is {why}")]
    EnrolmentRefused {
        /// Why.
        why: super::credentials::EnrolmentRefusal,
    },
    /// A named worker's call presents an id that is not its credential's.
    #[error("the credential of worker {credential:?} does not name worker id {presented:?}")]
    NotYourIdentity {
        /// The credential's name.
        credential: String,
        /// The id the call presented.
        presented: WorkerId,
    },
    /// The scheduler thread was shut down: the coordinator is stopping.
    #[error("the scheduler has stopped (the coordinator is shutting down)")]
    Stopped,
    /// The scheduler thread died during the call (a panic; see the log).
    #[error("the scheduler thread failed during the call")]
    Crashed,
    /// The experiment could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A checkpoint file could not be written, read, renamed or removed.
    #[error("checkpoint files: {what}: {source}")]
    CheckpointIo {
        /// What was being done, with the file.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl SchedulerError {
    /// A checkpoint file error while doing `what`.
    pub fn checkpoint_io(what: impl Into<String>, source: std::io::Error) -> Self {
        SchedulerError::CheckpointIo {
            what: what.into(),
            source,
        }
    }
}

impl From<rusqlite::Error> for SchedulerError {
    fn from(e: rusqlite::Error) -> Self {
        SchedulerError::Store(StoreError::Sqlite(e))
    }
}

//! The scheduler on its own OS thread. The scheduler is plain sync Rust over
//! SQLite (`Send`, not `Sync`); async handlers send it closures and await the
//! answers, so no async task ever blocks on the database or holds a lock across
//! an `.await`, and calls are served one at a time in arrival order.

use tonic::Status;

use crate::checkpoints::CheckpointDir;
use crate::scheduler::{Scheduler, SchedulerError};

type Job = Box<dyn FnOnce(&mut Scheduler) + Send>;

/// A handle to the scheduler thread (cheap to clone).
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: tokio::sync::mpsc::UnboundedSender<Job>,
    checkpoints: CheckpointDir,
}

impl SchedulerHandle {
    /// Moves the scheduler onto a new thread; it lives until every handle is dropped.
    pub fn spawn(mut scheduler: Scheduler) -> std::io::Result<Self> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let checkpoints = scheduler.checkpoint_dir().clone();
        std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut scheduler);
                }
            })?;
        Ok(Self { tx, checkpoints })
    }

    /// The scheduler's checkpoint directory: uploads are staged and downloads
    /// read there, off the scheduler thread.
    pub fn checkpoint_dir(&self) -> &CheckpointDir {
        &self.checkpoints
    }

    /// Runs `f` on the scheduler thread; its error becomes a gRPC status.
    pub async fn call<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&mut Scheduler) -> Result<T, SchedulerError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |s: &mut Scheduler| {
                let _ = reply.send(f(s));
            }))
            .map_err(|_| Status::unavailable("the scheduler has stopped"))?;
        match answer.await {
            Ok(r) => r.map_err(|e| status_of(&e)),
            Err(_) => Err(Status::internal(
                "the scheduler thread failed during the call",
            )),
        }
    }
}

/// The gRPC status of a scheduler error.
pub fn status_of(e: &SchedulerError) -> Status {
    let message = e.to_string();
    match e {
        SchedulerError::NotOwner { .. } | SchedulerError::WrongSecret { .. } => {
            Status::permission_denied(message)
        }
        SchedulerError::Fenced { .. }
        | SchedulerError::FingerprintMismatch { .. }
        | SchedulerError::AlreadyFinished { .. } => Status::failed_precondition(message),
        SchedulerError::UnknownWorker { .. }
        | SchedulerError::UnknownAttempt { .. }
        | SchedulerError::UnknownJob { .. } => Status::not_found(message),
        SchedulerError::BadRequest { .. } | SchedulerError::Plan(_) => {
            Status::invalid_argument(message)
        }
        SchedulerError::Store(_) | SchedulerError::CheckpointIo { .. } => {
            tracing::error!(error = %message, "store failure");
            Status::internal(message)
        }
    }
}

//! The scheduler on its own OS thread. The scheduler is plain sync Rust over
//! SQLite (`Send`, not `Sync`); async handlers send it closures and await the
//! answers, so no async task ever blocks on the database or holds a lock across
//! an `.await`, and calls are served one at a time in arrival order.
//!
//! The queue of calls is bounded: a call that finds it full is refused at once
//! with [`SchedulerError::Busy`] (load is shed, nothing waits without bound).
//! [`SchedulerHandle::shutdown`] serves every call queued before it, stops the
//! thread and joins it, so whoever holds the state's lock can release it after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::{Scheduler, SchedulerError};
use crate::checkpoints::CheckpointDir;

/// Calls that may wait in the queue by default: far above what a thousand
/// workers keep queued (one lease or heartbeat each, a few reports), low
/// enough that a flood cannot grow the queue without bound.
pub const DEFAULT_MAX_QUEUED_CALLS: usize = 16_384;

type Job = Box<dyn FnOnce(&mut Scheduler) + Send>;

/// What the scheduler thread is sent.
enum Message {
    /// Run this call.
    Call(Job),
    /// Serve nothing more: the thread ends.
    Stop,
}

/// A handle to the scheduler thread (cheap to clone).
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Message>,
    max_queued: usize,
    checkpoints: CheckpointDir,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Call(_) => "Call",
            Message::Stop => "Stop",
        })
    }
}

impl SchedulerHandle {
    /// Moves the scheduler onto a new thread with the default queue bound; it
    /// lives until [`SchedulerHandle::shutdown`] or until every handle is dropped.
    pub fn spawn(scheduler: Scheduler) -> std::io::Result<Self> {
        Self::spawn_bounded(scheduler, DEFAULT_MAX_QUEUED_CALLS)
    }

    /// As [`SchedulerHandle::spawn`], with at most `max_queued` calls waiting
    /// (at least one).
    pub fn spawn_bounded(mut scheduler: Scheduler, max_queued: usize) -> std::io::Result<Self> {
        let max_queued = max_queued.max(1);
        let (tx, mut rx) = mpsc::channel::<Message>(max_queued);
        let checkpoints = scheduler.checkpoint_dir().clone();
        let thread = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                while let Some(Message::Call(job)) = rx.blocking_recv() {
                    job(&mut scheduler);
                }
                // Calls still queued are dropped with `rx`: their callers
                // hear that the scheduler has stopped.
            })?;
        Ok(Self {
            tx,
            max_queued,
            checkpoints,
            thread: Arc::new(Mutex::new(Some(thread))),
            stopping: Arc::default(),
        })
    }

    /// The scheduler's checkpoint directory: uploads are staged and downloads
    /// read there, off the scheduler thread.
    pub fn checkpoint_dir(&self) -> &CheckpointDir {
        &self.checkpoints
    }

    /// Runs `f` on the scheduler thread and returns its answer; refused with
    /// [`SchedulerError::Busy`] when the queue is full, [`SchedulerError::Stopped`]
    /// after a shutdown, [`SchedulerError::Crashed`] when the thread died
    /// during the call.
    pub async fn call<T, F>(&self, f: F) -> Result<T, SchedulerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Scheduler) -> Result<T, SchedulerError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |s: &mut Scheduler| {
            let _ = reply.send(f(s));
        });
        self.tx.try_send(Message::Call(job)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SchedulerError::Busy {
                limit: self.max_queued,
            },
            mpsc::error::TrySendError::Closed(_) => SchedulerError::Stopped,
        })?;
        answer.await.map_err(|_| self.ended())?
    }

    /// As [`SchedulerHandle::call`], but waits for room in a full queue instead
    /// of being refused: for the coordinator's own periodic calls (lease
    /// expiry, status snapshots), which must not be shed.
    pub async fn call_waiting<T, F>(&self, f: F) -> Result<T, SchedulerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Scheduler) -> Result<T, SchedulerError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |s: &mut Scheduler| {
            let _ = reply.send(f(s));
        });
        self.tx
            .send(Message::Call(job))
            .await
            .map_err(|_| SchedulerError::Stopped)?;
        answer.await.map_err(|_| self.ended())?
    }

    /// Why a call got no answer: the thread was stopped, or it died.
    fn ended(&self) -> SchedulerError {
        if self.stopping.load(Ordering::SeqCst) {
            SchedulerError::Stopped
        } else {
            SchedulerError::Crashed
        }
    }

    /// Serves every call queued before this one, stops the thread and waits
    /// for it to end. Calls made after it are refused with
    /// [`SchedulerError::Stopped`]. A second shutdown (from any clone) only
    /// returns. [`SchedulerError::Crashed`] when the thread had died of a panic.
    pub async fn shutdown(&self) -> Result<(), SchedulerError> {
        self.stopping.store(true, Ordering::SeqCst);
        // Waits for room: the stop must come after every queued call.
        let _ = self.tx.send(Message::Stop).await;
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = thread else {
            return Ok(());
        };
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(SchedulerError::Crashed),
        }
    }
}

//! What the worker's tasks share: the client, its id, which slot runs which
//! attempt, and the stop/drain/shutdown flags. Locks are std mutexes held only
//! for a few lines, never across an `.await`.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{Assignment, AttemptProgress, RegisterRequest, WorkerCredentials};
use tokio::sync::Notify;

use super::child::SlotChild;
use super::retry::{Backoff, is_transient};
use super::{JoinConfig, JoinError};
use crate::devices::DeviceSpec;

/// Why a running attempt should stop at its next epoch boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    /// Keep going.
    None = 0,
    /// Checkpoint, upload and hand the job back (shutdown, drain).
    Release = 1,
    /// The lease is gone (cancelled, given away): stop and report nothing.
    Drop = 2,
}

/// One attempt running in a slot, as the heartbeat and the observer see it.
#[derive(Debug)]
pub struct AttemptHandle {
    /// The fencing token.
    pub attempt_id: String,
    /// Epochs done.
    pub epoch: AtomicU32,
    /// Epochs in all.
    pub epochs: AtomicU32,
    stop: AtomicU8,
}

impl AttemptHandle {
    /// Asks the attempt to stop; a `Drop` is never weakened to a `Release`.
    pub fn request_stop(&self, reason: StopReason) {
        self.stop.fetch_max(reason as u8, Ordering::SeqCst);
    }

    /// The strongest stop asked for so far.
    pub fn stop_reason(&self) -> StopReason {
        match self.stop.load(Ordering::SeqCst) {
            0 => StopReason::None,
            1 => StopReason::Release,
            _ => StopReason::Drop,
        }
    }
}

/// State shared by the lease loop, the heartbeat task and the slot tasks.
pub struct Shared {
    /// The settings.
    pub config: JoinConfig,
    /// The coordinator client (cheap to clone).
    pub client: WorkerClient,
    /// Sent with every lease and heartbeat.
    pub registration: RegisterRequest,
    worker_id: Mutex<String>,
    worker_secret: Mutex<String>,
    slots: Mutex<Vec<Option<Arc<AttemptHandle>>>>,
    /// Each slot's process, while no job runs in it (a running job's
    /// training thread holds it).
    children: Mutex<Vec<Option<SlotChild>>>,
    heartbeat_seconds: AtomicU32,
    draining: AtomicBool,
    shutting_down: AtomicBool,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Fresh state with every slot free.
    pub fn new(config: JoinConfig, client: WorkerClient, registration: RegisterRequest) -> Self {
        let n = config.slots.len();
        Self {
            config,
            client,
            registration,
            worker_id: Mutex::new(String::new()),
            worker_secret: Mutex::new(String::new()),
            slots: Mutex::new(vec![None; n]),
            children: Mutex::new((0..n).map(|_| None).collect()),
            heartbeat_seconds: AtomicU32::new(5),
            draining: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// Registers, retrying while the coordinator is unreachable.
    pub async fn register(&self) -> Result<(), JoinError> {
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            let mut client = self.client.clone();
            match client.register(self.registration.clone()).await {
                Ok(r) => {
                    let r = r.into_inner();
                    *lock(&self.worker_id) = r.worker_id;
                    *lock(&self.worker_secret) = r.worker_secret;
                    if r.heartbeat_seconds > 0 {
                        self.heartbeat_seconds
                            .store(r.heartbeat_seconds, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(status) if is_transient(&status) => {
                    let d = backoff.next_delay();
                    tracing::warn!(code = ?status.code(), message = status.message(), retry_in = ?d, "cannot register yet");
                    tokio::time::sleep(d).await;
                }
                Err(status) => {
                    return Err(JoinError::Refused {
                        call: "Register",
                        status: Box::new(status),
                    });
                }
            }
        }
    }

    /// Forgets this worker's id and secret: its next lease registers it
    /// afresh (after the coordinator refused the old identity).
    pub fn forget_identity(&self) {
        lock(&self.worker_id).clear();
        lock(&self.worker_secret).clear();
    }

    /// The id the coordinator gave this worker.
    pub fn worker_id(&self) -> String {
        lock(&self.worker_id).clone()
    }

    /// The secret the coordinator gave this worker (sent with its id).
    pub fn worker_secret(&self) -> String {
        lock(&self.worker_secret).clone()
    }

    /// The id and secret every call about an attempt carries.
    pub fn credentials(&self) -> WorkerCredentials {
        WorkerCredentials {
            worker_id: self.worker_id(),
            secret: self.worker_secret(),
        }
    }

    /// Seconds between heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(u64::from(
            self.heartbeat_seconds.load(Ordering::Relaxed).max(1),
        ))
    }

    /// How long the lease loop waits when it has nothing to do.
    pub fn poll_interval(&self) -> Duration {
        self.heartbeat_interval().min(Duration::from_secs(2))
    }

    /// Applies the control part of a lease or heartbeat answer (a new id and
    /// secret when the coordinator registered this worker afresh).
    pub fn apply_control(
        &self,
        worker_id: &str,
        worker_secret: &str,
        cancel: &[String],
        drain: bool,
        heartbeat_seconds: u32,
    ) {
        if !worker_id.is_empty() {
            let mut id = lock(&self.worker_id);
            if *id != worker_id {
                tracing::info!(old = %id, new = %worker_id, "coordinator re-registered this worker");
                *id = worker_id.to_owned();
            }
        }
        if !worker_secret.is_empty() {
            *lock(&self.worker_secret) = worker_secret.to_owned();
        }
        if heartbeat_seconds > 0 {
            self.heartbeat_seconds
                .store(heartbeat_seconds, Ordering::Relaxed);
        }
        for attempt in cancel {
            // The attempt stays in its slot until its epoch ends, and every
            // heartbeat until then repeats the cancel: log it once.
            if let Some(h) = self.handle(attempt)
                && h.stop_reason() != StopReason::Drop
            {
                tracing::info!(attempt = %attempt, "coordinator cancelled the attempt; dropping it");
                h.request_stop(StopReason::Drop);
            }
        }
        if drain && !self.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("coordinator asks this worker to drain");
            self.stop_all(StopReason::Release);
        }
    }

    /// The handle of a running attempt.
    pub fn handle(&self, attempt_id: &str) -> Option<Arc<AttemptHandle>> {
        lock(&self.slots)
            .iter()
            .flatten()
            .find(|h| h.attempt_id == attempt_id)
            .cloned()
    }

    /// Progress of every running attempt.
    pub fn progress(&self) -> Vec<AttemptProgress> {
        lock(&self.slots)
            .iter()
            .flatten()
            .map(|h| AttemptProgress {
                attempt_id: h.attempt_id.clone(),
                epoch: h.epoch.load(Ordering::Relaxed),
                epochs: h.epochs.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Free slots.
    pub fn free_slots(&self) -> usize {
        lock(&self.slots).iter().filter(|s| s.is_none()).count()
    }

    /// The device of every free slot.
    pub fn free_devices(&self) -> Vec<String> {
        lock(&self.slots)
            .iter()
            .zip(&self.config.slots)
            .filter(|(s, _)| s.is_none())
            .map(|(_, d)| d.to_string())
            .collect()
    }

    /// Attempts running.
    pub fn running_count(&self) -> usize {
        lock(&self.slots).iter().filter(|s| s.is_some()).count()
    }

    /// Takes a free slot for an assignment.
    pub fn claim_slot(&self, a: &Assignment) -> Option<(usize, DeviceSpec, Arc<AttemptHandle>)> {
        let mut slots = lock(&self.slots);
        // The slot the coordinator chose, else any free one.
        let index = slots
            .iter()
            .zip(&self.config.slots)
            .position(|(s, d)| s.is_none() && d.to_string() == a.device)
            .or_else(|| slots.iter().position(Option::is_none))?;
        let handle = Arc::new(AttemptHandle {
            attempt_id: a.attempt_id.clone(),
            epoch: AtomicU32::new(0),
            epochs: AtomicU32::new(0),
            stop: AtomicU8::new(0),
        });
        if self.is_shutting_down() || self.is_draining() {
            handle.request_stop(StopReason::Release);
        }
        slots[index] = Some(handle.clone());
        Some((index, self.config.slots[index], handle))
    }

    /// Takes slot `index`'s idle process (for its next job).
    pub fn take_child(&self, index: usize) -> Option<SlotChild> {
        lock(&self.children).get_mut(index).and_then(Option::take)
    }

    /// Keeps slot `index`'s process for its next job.
    pub fn put_child(&self, index: usize, child: SlotChild) {
        if let Some(c) = lock(&self.children).get_mut(index) {
            *c = Some(child);
        }
    }

    /// How the slot processes are started.
    pub fn child_launch(&self) -> super::child::ChildLaunch {
        super::child::ChildLaunch {
            program: self
                .config
                .child_program
                .clone()
                .or_else(|| std::env::current_exe().ok())
                .unwrap_or_else(|| std::path::PathBuf::from("worker")),
            system_allocator: self.config.system_allocator,
            lif_kernels: self.config.lif_kernels,
            frame_cache: self.config.frame_cache,
        }
    }

    /// How many slots run on `device` (they share its frame cache budget).
    pub fn slots_on(&self, device: DeviceSpec) -> usize {
        self.config.slots.iter().filter(|d| **d == device).count()
    }

    /// Ends every idle slot process (on the worker's way out).
    pub fn end_children(&self) {
        let ended: Vec<SlotChild> = lock(&self.children)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        drop(ended);
    }

    /// Frees a slot and wakes the lease loop.
    pub fn free_slot(&self, index: usize) {
        if let Some(s) = lock(&self.slots).get_mut(index) {
            *s = None;
        }
        self.changed.notify_waiters();
    }

    /// Asks every running attempt to stop.
    pub fn stop_all(&self, reason: StopReason) {
        for h in lock(&self.slots).iter().flatten() {
            h.request_stop(reason);
        }
    }

    /// Whether the coordinator asked this worker to drain.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether a shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Starts a shutdown: running attempts stop at the next epoch and are released.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.stop_all(StopReason::Release);
        self.changed.notify_waiters();
    }

    /// Waits up to `timeout` for a slot to free up or a shutdown.
    pub async fn wait_for_change(&self, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let notified = self.changed.notified();
        if self.is_shutting_down() {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    /// Waits until no attempt runs.
    pub async fn wait_idle(&self) {
        while self.running_count() > 0 {
            let notified = self.changed.notified();
            if self.running_count() == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }
}

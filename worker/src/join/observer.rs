//! The bridge from a training thread to the async slot task: epoch metrics and
//! checkpoint notices go out on a channel; the attempt's stop flag comes back as
//! [`Control::Stop`] at the next epoch boundary.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use spikecv_common::experiment::job::EpochMetrics;
use tokio::sync::mpsc::UnboundedSender;

use super::state::{AttemptHandle, StopReason};
use crate::train::{Control, Observer};

/// A checkpoint read into memory, waiting to be uploaded.
#[derive(Debug, Clone)]
pub struct PendingCheckpoint {
    /// Epochs it holds.
    pub epoch: u32,
    /// The file's bytes.
    pub bytes: Arc<Vec<u8>>,
}

/// What the training thread tells the slot task.
#[derive(Debug)]
pub enum SlotEvent {
    /// An epoch finished.
    Epoch(EpochMetrics),
    /// A newer checkpoint is in the pending slot.
    Checkpoint,
}

/// The observer a slot's training thread runs with.
pub struct SlotObserver {
    handle: Arc<AttemptHandle>,
    events: UnboundedSender<SlotEvent>,
    pending: Arc<Mutex<Option<PendingCheckpoint>>>,
    last_epoch: u32,
}

impl SlotObserver {
    /// An observer reporting to `events`; checkpoints land in `pending`.
    pub fn new(
        handle: Arc<AttemptHandle>,
        events: UnboundedSender<SlotEvent>,
        pending: Arc<Mutex<Option<PendingCheckpoint>>>,
    ) -> Self {
        Self {
            handle,
            events,
            pending,
            last_epoch: 0,
        }
    }
}

impl Observer for SlotObserver {
    fn on_epoch(&mut self, m: &EpochMetrics) -> Control {
        self.last_epoch = m.epoch;
        self.handle.epoch.store(m.epoch, Ordering::Relaxed);
        let _ = self.events.send(SlotEvent::Epoch(m.clone()));
        if self.handle.stop_reason() == StopReason::None {
            Control::Continue
        } else {
            Control::Stop
        }
    }

    fn on_checkpoint(&mut self, path: &Path) {
        if self.handle.stop_reason() == StopReason::Drop {
            return;
        }
        match std::fs::read(path) {
            Ok(bytes) => {
                // The file's own epoch: a checkpoint written in the background
                // may be announced after the next epoch was reported, and the
                // coordinator checks the declaration against the record.
                let epoch = crate::checkpoint::recorded_epoch(&bytes).unwrap_or(self.last_epoch);
                let ckpt = PendingCheckpoint {
                    epoch,
                    bytes: Arc::new(bytes),
                };
                *self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ckpt);
                let _ = self.events.send(SlotEvent::Checkpoint);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read checkpoint for upload")
            }
        }
    }

    fn stop_requested(&self) -> bool {
        self.handle.stop_reason() != StopReason::None
    }

    fn on_epoch_start(&mut self, epoch: u32, epochs: u32) {
        self.handle.epochs.store(epochs, Ordering::Relaxed);
        if epoch > 1 && self.last_epoch == 0 {
            // Resumed: the epochs before this one are in the checkpoint.
            self.handle.epoch.store(epoch - 1, Ordering::Relaxed);
        }
    }
}

//! Limits on checkpoint transfers, so that one caller cannot fill the disk or
//! tie up the coordinator: a size limit, a declared size on every upload with
//! that much disk space reserved while it runs, at most one transfer per
//! attempt and direction and a bounded number in total, an idle timeout on
//! both directions and a minimum rate per upload, measured over windows (see
//! [`super::upload_pace`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::scheduler::AttemptId;

/// The limits on checkpoint transfers (`coordinator serve` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointLimits {
    /// Largest checkpoint accepted, in bytes.
    pub max_bytes: u64,
    /// Uploads received at the same time, over all attempts.
    pub max_uploads: usize,
    /// Downloads sent at the same time, over all attempts.
    pub max_downloads: usize,
    /// An upload that sends no chunk, or a download whose client reads
    /// nothing, for this long is abandoned.
    pub idle_timeout: Duration,
    /// Free space the checkpoint directory's file system must keep beyond the
    /// declared sizes of the uploads in flight, in bytes.
    pub free_space_margin: u64,
    /// The slowest upload accepted, in bytes per second: after the grace,
    /// every [`CheckpointLimits::rate_window`] must bring at least this rate
    /// times its length, else the upload is abandoned (so a trickle cannot
    /// hold a place, whatever size it declared).
    pub min_upload_rate: u64,
    /// The window over which the rate is averaged; the upload's lease is
    /// checked at the end of each window too, and an upload whose attempt is
    /// no longer current (lease expired, released, worker removed) is
    /// abandoned, its place freed.
    pub rate_window: Duration,
    /// Time at the start of every upload before its rate is checked.
    pub upload_grace: Duration,
}

impl Default for CheckpointLimits {
    /// 2 GiB, 8 uploads, 16 downloads, 60 s idle, 256 MiB margin, 256 KiB/s
    /// averaged over 20 s windows after 30 s of grace.
    fn default() -> Self {
        Self {
            max_bytes: 2 << 30,
            max_uploads: 8,
            max_downloads: 16,
            idle_timeout: Duration::from_secs(60),
            free_space_margin: 256 << 20,
            min_upload_rate: 256 << 10,
            rate_window: Duration::from_secs(20),
            upload_grace: Duration::from_secs(30),
        }
    }
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A worker sends a checkpoint.
    Upload,
    /// A worker fetches a checkpoint.
    Download,
}

impl Direction {
    fn noun(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Direction::Upload => "--max-checkpoint-uploads",
            Direction::Download => "--max-checkpoint-downloads",
        }
    }
}

/// Why a transfer was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefused {
    /// The attempt already has a transfer in this direction in flight.
    #[error("attempt {attempt} already has a checkpoint {} in progress", direction.noun())]
    AttemptBusy {
        /// The attempt.
        attempt: AttemptId,
        /// Upload or download.
        direction: Direction,
    },
    /// As many transfers as the limit are in flight.
    #[error("{limit} checkpoint {}s are in progress, the limit ({}); try later", direction.noun(), direction.flag())]
    TooMany {
        /// The limit.
        limit: usize,
        /// Upload or download.
        direction: Direction,
    },
}

/// Admits transfers within the per-attempt and total limits of one direction,
/// and keeps the sum of the sizes reserved by those in flight (cheap to clone).
#[derive(Debug, Clone)]
pub struct UploadGate {
    limits: CheckpointLimits,
    direction: Direction,
    permits: Arc<Semaphore>,
    busy: Arc<Mutex<HashSet<AttemptId>>>,
    reserved: Arc<AtomicU64>,
}

impl UploadGate {
    /// A gate for uploads enforcing `limits` (at least one at a time).
    pub fn new(limits: CheckpointLimits) -> Self {
        Self::for_direction(limits, Direction::Upload)
    }

    /// A gate for transfers in `direction` enforcing `limits`.
    pub fn for_direction(limits: CheckpointLimits, direction: Direction) -> Self {
        let limit = match direction {
            Direction::Upload => limits.max_uploads,
            Direction::Download => limits.max_downloads,
        };
        Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            limits,
            direction,
            busy: Arc::default(),
            reserved: Arc::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &CheckpointLimits {
        &self.limits
    }

    /// Bytes reserved by the transfers in flight (their declared sizes).
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst)
    }

    /// Admits a transfer of `bytes` for `attempt`, or says why not; the
    /// transfer holds its place and its reservation until the ticket is dropped.
    pub fn admit(&self, attempt: AttemptId, bytes: u64) -> Result<UploadTicket, UploadRefused> {
        let permit =
            Arc::clone(&self.permits)
                .try_acquire_owned()
                .map_err(|_| UploadRefused::TooMany {
                    limit: self.max(),
                    direction: self.direction,
                })?;
        let fresh = self
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(attempt);
        if !fresh {
            return Err(UploadRefused::AttemptBusy {
                attempt,
                direction: self.direction,
            });
        }
        self.reserved.fetch_add(bytes, Ordering::SeqCst);
        Ok(UploadTicket {
            _permit: permit,
            busy: Arc::clone(&self.busy),
            reserved: Arc::clone(&self.reserved),
            bytes,
            attempt,
        })
    }

    fn max(&self) -> usize {
        match self.direction {
            Direction::Upload => self.limits.max_uploads.max(1),
            Direction::Download => self.limits.max_downloads.max(1),
        }
    }
}

/// An admitted transfer's place and reservation; freed on drop.
#[derive(Debug)]
pub struct UploadTicket {
    _permit: OwnedSemaphorePermit,
    busy: Arc<Mutex<HashSet<AttemptId>>>,
    reserved: Arc<AtomicU64>,
    bytes: u64,
    attempt: AttemptId,
}

impl Drop for UploadTicket {
    fn drop(&mut self) {
        self.reserved.fetch_sub(self.bytes, Ordering::SeqCst);
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.attempt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_uploads: usize) -> UploadGate {
        UploadGate::new(CheckpointLimits {
            max_uploads,
            ..CheckpointLimits::default()
        })
    }

    #[test]
    fn one_upload_per_attempt_until_its_ticket_is_dropped() {
        let g = gate(4);
        let first = g.admit(AttemptId(1), 10);
        assert!(first.is_ok());
        assert_eq!(
            g.admit(AttemptId(1), 10).err(),
            Some(UploadRefused::AttemptBusy {
                attempt: AttemptId(1),
                direction: Direction::Upload,
            })
        );
        assert!(
            g.admit(AttemptId(2), 10).is_ok(),
            "another attempt may upload"
        );
        drop(first);
        assert!(g.admit(AttemptId(1), 10).is_ok());
    }

    #[test]
    fn no_more_uploads_than_the_limit_and_a_refusal_holds_no_place() {
        let g = gate(2);
        let a = g.admit(AttemptId(1), 1);
        let b = g.admit(AttemptId(2), 1);
        assert!(a.is_ok() && b.is_ok());
        let refused = g.admit(AttemptId(3), 1).err();
        assert_eq!(
            refused,
            Some(UploadRefused::TooMany {
                limit: 2,
                direction: Direction::Upload,
            })
        );
        assert!(
            refused
                .map(|r| r.to_string())
                .is_some_and(|m| m.contains("--max-checkpoint-uploads"))
        );
        // The refused attempt is not marked busy.
        drop(a);
        assert!(g.admit(AttemptId(3), 1).is_ok());
    }

    #[test]
    fn a_busy_attempt_does_not_use_up_a_permit() {
        let g = gate(2);
        let _a = g.admit(AttemptId(1), 1);
        for _ in 0..5 {
            assert!(g.admit(AttemptId(1), 1).is_err());
        }
        assert!(g.admit(AttemptId(2), 1).is_ok());
    }

    #[test]
    fn declared_sizes_stay_reserved_while_their_tickets_live() {
        let g = gate(4);
        let a = g.admit(AttemptId(1), 100);
        let b = g.admit(AttemptId(2), 50);
        assert_eq!(g.reserved_bytes(), 150);
        assert!(g.admit(AttemptId(1), 7).is_err());
        assert_eq!(g.reserved_bytes(), 150, "a refusal reserves nothing");
        drop(a);
        assert_eq!(g.reserved_bytes(), 50);
        drop(b);
        assert_eq!(g.reserved_bytes(), 0);
    }

    #[test]
    fn downloads_have_their_own_limit_and_name_their_flag() {
        let g = UploadGate::for_direction(
            CheckpointLimits {
                max_downloads: 1,
                ..CheckpointLimits::default()
            },
            Direction::Download,
        );
        let _a = g.admit(AttemptId(1), 0);
        let e = g.admit(AttemptId(2), 0).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(
                |m| m.contains("downloads") && m.contains("--max-checkpoint-downloads")
            ),
            "{e:?}"
        );
    }
}

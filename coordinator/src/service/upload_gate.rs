//! Limits on checkpoint transfers, so that one caller cannot fill the disk or
//! tie up the coordinator: a size limit, at most one upload per attempt and a
//! bounded number in total, a free-space check before an upload is staged, and
//! an idle timeout on both directions.

use std::collections::HashSet;
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
    /// An upload that sends no chunk, or a download whose client reads
    /// nothing, for this long is abandoned.
    pub idle_timeout: Duration,
    /// Free space the checkpoint directory's file system must keep beyond an
    /// upload's declared size, in bytes.
    pub free_space_margin: u64,
}

impl Default for CheckpointLimits {
    /// 2 GiB, 8 uploads, 60 s, 256 MiB.
    fn default() -> Self {
        Self {
            max_bytes: 2 << 30,
            max_uploads: 8,
            idle_timeout: Duration::from_secs(60),
            free_space_margin: 256 << 20,
        }
    }
}

/// Why an upload was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefused {
    /// The attempt already has an upload in flight.
    #[error("attempt {attempt} already has a checkpoint upload in progress")]
    AttemptBusy {
        /// The attempt.
        attempt: AttemptId,
    },
    /// As many uploads as the limit are in flight.
    #[error(
        "{limit} checkpoint uploads are in progress, the limit (--max-checkpoint-uploads); try later"
    )]
    TooMany {
        /// The limit.
        limit: usize,
    },
}

/// Admits uploads within the per-attempt and total limits (cheap to clone).
#[derive(Debug, Clone)]
pub struct UploadGate {
    limits: CheckpointLimits,
    permits: Arc<Semaphore>,
    busy: Arc<Mutex<HashSet<AttemptId>>>,
}

impl UploadGate {
    /// A gate enforcing `limits` (at least one upload at a time).
    pub fn new(limits: CheckpointLimits) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max_uploads.max(1)));
        Self {
            limits,
            permits,
            busy: Arc::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &CheckpointLimits {
        &self.limits
    }

    /// Admits an upload for `attempt`, or says why not; the upload holds its
    /// place until the ticket is dropped.
    pub fn admit(&self, attempt: AttemptId) -> Result<UploadTicket, UploadRefused> {
        let permit =
            Arc::clone(&self.permits)
                .try_acquire_owned()
                .map_err(|_| UploadRefused::TooMany {
                    limit: self.limits.max_uploads.max(1),
                })?;
        let fresh = self
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(attempt);
        if !fresh {
            return Err(UploadRefused::AttemptBusy { attempt });
        }
        Ok(UploadTicket {
            _permit: permit,
            busy: Arc::clone(&self.busy),
            attempt,
        })
    }
}

/// An admitted upload's place; freed on drop.
#[derive(Debug)]
pub struct UploadTicket {
    _permit: OwnedSemaphorePermit,
    busy: Arc<Mutex<HashSet<AttemptId>>>,
    attempt: AttemptId,
}

impl Drop for UploadTicket {
    fn drop(&mut self) {
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
        let first = g.admit(AttemptId(1));
        assert!(first.is_ok());
        assert_eq!(
            g.admit(AttemptId(1)).err(),
            Some(UploadRefused::AttemptBusy {
                attempt: AttemptId(1)
            })
        );
        assert!(g.admit(AttemptId(2)).is_ok(), "another attempt may upload");
        drop(first);
        assert!(g.admit(AttemptId(1)).is_ok());
    }

    #[test]
    fn no_more_uploads_than_the_limit_and_a_refusal_holds_no_place() {
        let g = gate(2);
        let a = g.admit(AttemptId(1));
        let b = g.admit(AttemptId(2));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            g.admit(AttemptId(3)).err(),
            Some(UploadRefused::TooMany { limit: 2 })
        );
        // The refused attempt is not marked busy.
        drop(a);
        assert!(g.admit(AttemptId(3)).is_ok());
    }

    #[test]
    fn a_busy_attempt_does_not_use_up_a_permit() {
        let g = gate(2);
        let _a = g.admit(AttemptId(1));
        for _ in 0..5 {
            assert!(g.admit(AttemptId(1)).is_err());
        }
        assert!(g.admit(AttemptId(2)).is_ok());
    }
}

//! Who a worker is: the secret the coordinator hands out at registration, the
//! hash of it the store keeps, and the check that an attempt call comes from
//! the worker that leased the attempt.
//!
//! The store keeps only the sha256 of a secret, so a copy of the database does
//! not let anyone speak for a worker, and a restarted coordinator still
//! recognises its workers. Hashes are compared in constant time.

use std::fmt;

use rand::Rng;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::types::{AttemptId, WorkerId};
use super::{Scheduler, SchedulerError};
use crate::constant_time::constant_time_eq;
use crate::store::jobs;

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;

/// A worker's secret, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerSecret(String);

impl fmt::Debug for WorkerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerSecret(<redacted>)")
    }
}

impl WorkerSecret {
    /// A new random secret (hex of 32 bytes from the thread's CSPRNG, which
    /// is seeded from the operating system).
    pub fn generate() -> Self {
        let bytes: [u8; SECRET_BYTES] = rand::rng().random();
        WorkerSecret(hex::encode(bytes))
    }

    /// A secret as a worker presented it.
    pub fn presented(text: &str) -> Self {
        WorkerSecret(text.to_owned())
    }

    /// The secret itself, to hand to its worker.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the worker presented no secret at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hex sha256 the store keeps.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// A worker's id and secret, as an attempt call carries them.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The id from registration.
    pub worker: WorkerId,
    /// The secret from registration.
    pub secret: WorkerSecret,
}

/// The stored secret hash of a worker: `None` when no such worker exists,
/// `Some(None)` when it has none (registered before secrets existed).
pub(super) fn stored_digest(
    conn: &Connection,
    worker: &WorkerId,
) -> Result<Option<Option<String>>, SchedulerError> {
    Ok(crate::store::worker_rows::secret_digest(conn, worker)?)
}

/// Whether `secret` is the one whose hash is `stored` (constant time).
pub(super) fn secret_matches(stored: Option<&str>, secret: &WorkerSecret) -> bool {
    match stored {
        Some(d) if !secret.is_empty() => constant_time_eq(d.as_bytes(), secret.digest().as_bytes()),
        _ => false,
    }
}

/// `Ok` when the worker exists and `secret` is its secret.
pub(super) fn authenticate(conn: &Connection, c: &Credentials) -> Result<(), SchedulerError> {
    let stored = stored_digest(conn, &c.worker)?;
    if secret_matches(stored.flatten().as_deref(), &c.secret) {
        Ok(())
    } else {
        Err(SchedulerError::WrongSecret {
            worker: c.worker.clone(),
        })
    }
}

impl Scheduler {
    /// `Ok` when `c` are a registered worker's credentials and `attempt` was
    /// leased to that worker; else [`SchedulerError::WrongSecret`] or
    /// [`SchedulerError::NotOwner`]. Whether the attempt is still current is
    /// the operation's own check (its fence).
    pub fn authorize(&self, c: &Credentials, attempt: AttemptId) -> Result<(), SchedulerError> {
        let conn = self.store.conn();
        authenticate(conn, c)?;
        let a = jobs::attempt(conn, attempt)?.ok_or(SchedulerError::UnknownAttempt { attempt })?;
        if a.worker != c.worker {
            return Err(SchedulerError::NotOwner {
                attempt,
                owner: a.worker,
                worker: c.worker.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_differ_and_match_only_their_own_digest() {
        let a = WorkerSecret::generate();
        let b = WorkerSecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 2 * SECRET_BYTES);
        assert!(secret_matches(Some(&a.digest()), &a));
        assert!(!secret_matches(Some(&a.digest()), &b));
        assert!(!secret_matches(None, &a));
        assert!(!secret_matches(
            Some(&WorkerSecret::presented("").digest()),
            &WorkerSecret::presented("")
        ));
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}

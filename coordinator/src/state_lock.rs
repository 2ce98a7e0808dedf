//! One coordinator per state database: `serve` holds an exclusive lock on a
//! file beside the database (`<state>.lock`) for as long as it runs, so a second
//! `serve` on the same state refuses to start instead of sweeping the first
//! one's checkpoint files and handing out its jobs twice. The operating system
//! drops the lock when the process ends, however it ends. The lock file is
//! named from the database's canonical path (symbolic links and `..`
//! resolved), so every way of naming one database takes the same lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Why the state could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    /// Another process holds the lock.
    #[error(
        "another coordinator is serving this state: {path} is locked (stop it first, or use another --state)"
    )]
    Held {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The exclusive lock on a state database; released when dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// The lock file of the database at `db`: beside the file `db` resolves
    /// to (for a database not created yet, beside the name in its resolved
    /// folder).
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = canonical(db).into_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Locks the database at `db`, or says which file another process holds.
    pub fn acquire(db: &Path) -> Result<Self, StateLockError> {
        let path = Self::path_for(db);
        let io = |source| StateLockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(StateLockError::Held { path }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `db` with links and `..` resolved: the file's own path when it exists,
/// else (a database not created yet, perhaps behind a link to where it will
/// be) the link's target followed, and the resolved folder joined with the
/// name (else `db` made absolute).
fn canonical(db: &Path) -> PathBuf {
    let mut path = std::path::absolute(db).unwrap_or_else(|_| db.to_owned());
    // Links to a file not there yet: follow them by hand (a bounded number).
    for _ in 0..40 {
        if let Ok(real) = path.canonicalize() {
            return real;
        }
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map_or_else(|_| path.clone(), |d| d.join(name)),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let db = dir.path().join("state.db");
        let first = StateLock::acquire(&db).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.path(), dir.path().join("state.db.lock"));
        match StateLock::acquire(&db) {
            Err(e @ StateLockError::Held { .. }) => {
                assert!(e.to_string().contains("state.db.lock"), "{e}")
            }
            other => panic!("second lock: {other:?}"),
        }
        // Another state is independent.
        StateLock::acquire(&dir.path().join("other.db")).unwrap_or_else(|e| panic!("{e}"));
        drop(first);
        StateLock::acquire(&db).unwrap_or_else(|e| panic!("{e}"));
    }
}

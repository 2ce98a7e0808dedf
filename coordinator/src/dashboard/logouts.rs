//! The dashboard sessions that were logged out, each until it would have
//! expired anyway, kept in memory and, for a coordinator's dashboard, in a
//! file beside the state database (`state.db.logouts`, one `NONCE UNTIL_MS`
//! line per logout), so that a restart does not bring them back. The file
//! is read and pruned of expired lines when the dashboard starts, and
//! appended to on each logout (on a blocking thread).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::now_ms;

/// The logged-out sessions (cheap to clone; clones share them).
#[derive(Debug, Clone, Default)]
pub struct Logouts {
    ended: Arc<Mutex<HashMap<String, i64>>>,
    file: Option<PathBuf>,
}

impl Logouts {
    /// Logouts kept in memory only (for tests and an open dashboard).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The file of logouts beside the state database `state`.
    pub fn path_for(state: &Path) -> PathBuf {
        let mut name = state.as_os_str().to_owned();
        name.push(".logouts");
        PathBuf::from(name)
    }

    /// The logouts recorded in `file` that have not expired (none when it
    /// does not exist or cannot be read, which is logged); the file is
    /// rewritten without the expired ones.
    pub fn load(file: PathBuf) -> Self {
        let now = now_ms();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read the dashboard's logouts");
                String::new()
            }
        };
        let ended: HashMap<String, i64> = text
            .lines()
            .filter_map(|l| {
                let (nonce, until) = l.split_once(' ')?;
                Some((nonce.to_owned(), until.trim().parse::<i64>().ok()?))
            })
            .filter(|(_, until)| *until > now)
            .collect();
        if !text.is_empty() {
            let kept: String = ended.iter().map(|(n, u)| format!("{n} {u}\n")).collect();
            if let Err(e) = std::fs::write(&file, kept) {
                tracing::warn!(file = %file.display(), error = %e, "cannot prune the dashboard's logouts");
            }
        }
        Self {
            ended: Arc::new(Mutex::new(ended)),
            file: Some(file),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        match self.ended.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether the session with `nonce` was logged out.
    pub fn contains(&self, nonce: &str) -> bool {
        self.lock().contains_key(nonce)
    }

    /// Records the session with `nonce` as logged out until `until_ms`
    /// (dropping the records that have expired), in the file too.
    pub async fn record(&self, nonce: String, until_ms: i64) {
        let now = now_ms();
        {
            let mut ended = self.lock();
            ended.retain(|_, until| *until > now);
            ended.insert(nonce.clone(), until_ms);
        }
        let Some(file) = self.file.clone() else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .and_then(|mut f| f.write_all(format!("{nonce} {until_ms}\n").as_bytes()))
                .map_err(|e| (file, e))
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err((file, e))) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot record a dashboard logout; it holds until the coordinator restarts");
            }
            Err(e) => tracing::warn!(error = %e, "the logout writer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logouts_outlive_a_restart_until_they_expire() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = Logouts::path_for(&dir.path().join("state.db"));
        assert!(file.ends_with("state.db.logouts"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let first = Logouts::load(file.clone());
        rt.block_on(first.record("aa".into(), now_ms() + 3_600_000));
        rt.block_on(first.record("bb".into(), now_ms() - 1));
        assert!(first.contains("aa"));
        let again = Logouts::load(file.clone());
        assert!(again.contains("aa"), "kept over a restart");
        assert!(!again.contains("bb"), "an expired one is dropped");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains("bb"), "{text}");
    }
}

//! Faults injected into a slot process, for tests only: the environment
//! variable [`FAULT_VAR`] = `<kind>:<epoch>:<fold>:<seed>` makes the process
//! that trains the job with that fold and seed fail right after that epoch,
//! once per job folder (a marker file [`FAULT_MARKER`] there remembers it, so
//! the retry succeeds). `kind` is `abort` (the process aborts, as a failed
//! C++ assertion would), `sigkill` (the process is killed) or `sticky` (the
//! job fails with a sticky CUDA error, as an illegal memory access would).
//! Nothing reads it outside the slot process; production never sets it.

use std::path::Path;

/// The environment variable that names a fault (test-only).
pub const FAULT_VAR: &str = "SPIKECV_TEST_CHILD_FAULT";
/// The file left in a job's folder once its fault was injected.
pub const FAULT_MARKER: &str = "injected-fault";
/// The message of an injected sticky error (what libtorch says after an
/// illegal memory access).
pub const STICKY_MESSAGE: &str =
    "CUDA error: an illegal memory access was encountered (injected by SPIKECV_TEST_CHILD_FAULT)";

/// What the fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `std::process::abort`.
    Abort,
    /// SIGKILL to the process itself.
    Sigkill,
    /// A sticky device error.
    Sticky,
}

/// A fault and the job and epoch it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// After this epoch (1-based).
    pub epoch: u32,
    /// The job's fold.
    pub fold: u32,
    /// The job's seed.
    pub seed: u64,
}

impl Fault {
    /// Parses `<kind>:<epoch>:<fold>:<seed>`.
    pub fn parse(text: &str) -> Option<Fault> {
        let mut parts = text.trim().split(':');
        let kind = match parts.next()? {
            "abort" => FaultKind::Abort,
            "sigkill" => FaultKind::Sigkill,
            "sticky" => FaultKind::Sticky,
            _ => return None,
        };
        let epoch = parts.next()?.parse().ok()?;
        let fold = parts.next()?.parse().ok()?;
        let seed = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Fault {
            kind,
            epoch,
            fold,
            seed,
        })
    }

    /// The fault named in the environment, if any (a value that does not
    /// parse is logged and ignored).
    pub fn from_env() -> Option<Fault> {
        let text = std::env::var(FAULT_VAR).ok()?;
        let fault = Fault::parse(&text);
        if fault.is_none() {
            tracing::warn!(value = %text, "{FAULT_VAR} is not <abort|sigkill|sticky>:<epoch>:<fold>:<seed>; ignored");
        }
        fault
    }

    /// Whether the fault hits this job after `epoch`, marking its folder
    /// when it does (so it hits once per job folder).
    pub fn fires(&self, fold: u32, seed: u64, epoch: u32, out_dir: &Path) -> bool {
        if (self.fold, self.seed, self.epoch) != (fold, seed, epoch) {
            return false;
        }
        let marker = out_dir.join(FAULT_MARKER);
        if marker.exists() {
            return false;
        }
        std::fs::write(&marker, format!("{self:?}\n")).is_ok()
    }

    /// Aborts or kills the process; a sticky fault returns (the caller fails
    /// the job with [`STICKY_MESSAGE`]).
    pub fn strike(&self) {
        tracing::warn!(fault = ?self, "injecting a fault into the slot process");
        match self.kind {
            FaultKind::Abort => std::process::abort(),
            FaultKind::Sigkill => {
                let pid = std::process::id().to_string();
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid])
                    .status();
                // `kill` is missing: end as abruptly anyway.
                std::process::abort();
            }
            FaultKind::Sticky => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_parses_and_fires_once_per_folder() -> std::io::Result<()> {
        let f = Fault::parse("sticky:2:1:0");
        assert_eq!(
            f,
            Some(Fault {
                kind: FaultKind::Sticky,
                epoch: 2,
                fold: 1,
                seed: 0
            })
        );
        for bad in [
            "",
            "boom:1:0:0",
            "abort:1:0",
            "abort:x:0:0",
            "abort:1:0:0:9",
        ] {
            assert_eq!(Fault::parse(bad), None, "{bad:?}");
        }
        let dir = tempfile::tempdir()?;
        let Some(f) = f else { return Ok(()) };
        assert!(!f.fires(0, 0, 2, dir.path()), "another fold");
        assert!(!f.fires(1, 0, 1, dir.path()), "another epoch");
        assert!(f.fires(1, 0, 2, dir.path()));
        assert!(!f.fires(1, 0, 2, dir.path()), "once per folder");
        Ok(())
    }
}

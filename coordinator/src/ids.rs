//! The ids the store and the scheduler share (newtypes, so a worker id is never
//! passed where a job id belongs), and what a worker's slot is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use spikecv_common::experiment::plan::JobId;

/// One lease of a job to a worker; its id is the fencing token for every report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttemptId(pub u64);

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AttemptId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(AttemptId)
    }
}

/// A registered worker (given by the coordinator at registration, kept in the store).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The experiment id (a shortened hash of its config).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExperimentId(pub String);

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One place a job can run on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Human-readable device name.
    pub device_name: String,
    /// Device memory in bytes (0 for the CPU).
    pub memory_bytes: u64,
    /// What the slot runs on and with, as the worker describes it (workers
    /// before the manifest send none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<spikecv_common::experiment::manifest::Manifest>,
}

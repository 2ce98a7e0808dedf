//! libtorch's process-wide settings a job asks for (`[training] tf32` and
//! `deterministic`): set once per slot process from its jobs' config, and
//! read back from libtorch for the job's `metrics.json`.
//!
//! libtorch keeps these switches for the whole process, so two jobs that
//! want different values cannot share one: `worker join` runs each slot's
//! jobs in a child process of their own ([`crate::slot_child`]) and restarts
//! it when the next job needs other settings.

use serde::{Deserialize, Serialize};
pub use spikecv_common::experiment::manifest::Switches;

/// The process-wide switches of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessSettings {
    /// cuDNN convolutions may use TF32.
    pub tf32: bool,
    /// Deterministic algorithms and deterministic cuDNN, its autotuner
    /// (cuDNN benchmark) off.
    pub deterministic: bool,
}

/// libtorch refused to change or report a switch.
#[derive(Debug, thiserror::Error)]
#[error("libtorch's process-wide settings: {what}: {message}")]
pub struct SettingsError {
    /// Which switch.
    pub what: &'static str,
    /// libtorch's message.
    pub message: String,
}

impl ProcessSettings {
    /// The settings a job's `[training]` section asks for.
    pub fn of(training: &spikecv_common::experiment::sections::TrainingConfig) -> Self {
        Self {
            tf32: training.tf32,
            deterministic: training.deterministic,
        }
    }

    /// Sets both switches to these values (on or off: nothing is left from
    /// an earlier job of the process).
    pub fn apply(self) -> Result<(), SettingsError> {
        crate::determinism::set_deterministic(self.deterministic).map_err(|e| SettingsError {
            what: "deterministic algorithms",
            message: e.to_string(),
        })?;
        crate::cuda_host::set_tf32_conv(self.tf32).map_err(|e| SettingsError {
            what: "TF32 convolutions",
            message: e.to_string(),
        })
    }
}

/// The switches libtorch holds now.
pub fn effective() -> Result<Switches, SettingsError> {
    let d = crate::determinism::state().map_err(|e| SettingsError {
        what: "determinism state",
        message: e.to_string(),
    })?;
    let t = crate::cuda_host::tf32_state().map_err(|e| SettingsError {
        what: "TF32 state",
        message: e.to_string(),
    })?;
    Ok(Switches {
        tf32: t.conv,
        deterministic: d.algorithms,
        cudnn_deterministic: d.cudnn_deterministic,
        cudnn_benchmark: d.cudnn_benchmark,
    })
}

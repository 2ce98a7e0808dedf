//! What goes wrong reading an experiment ([`ConfigError`]) and the bounds on
//! its sizes: the bottom of the experiment layer, imported by every section.

use std::path::PathBuf;

use crate::dataset::error::UnknownName;

/// A config that could not be read or has a bad value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a value of the wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value is out of range.
    #[error("config key {key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `training.lr`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The experiment would plan more work than a [`bounds`] limit allows
    /// (checked before anything is expanded).
    #[error("config key {key}: {count} {what}; the limit is {limit}")]
    TooLarge {
        /// The dotted key, e.g. `sweep` or `sweep.training.lr`.
        key: String,
        /// What is counted, e.g. `"configurations"` or `"jobs"`.
        what: &'static str,
        /// How many the config asks for (saturated at `u64::MAX`).
        count: u64,
        /// The limit.
        limit: u64,
    },
}

pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The error for `[sweep]`'s `key`: its key is `sweep.<key>`.
pub fn sweep_err(key: &str, message: impl Into<String>) -> ConfigError {
    invalid(&format!("sweep.{key}"), message)
}

/// `Ok` when `value` is at least 1; else "must be at least 1" naming `key`.
pub(crate) fn at_least_one(key: &str, value: u32) -> Result<(), ConfigError> {
    match value {
        0 => Err(invalid(key, "must be at least 1")),
        _ => Ok(()),
    }
}

/// Upper bounds of a config's sizes: far above any sensible experiment, low
/// enough that a typo (or a hostile submission) cannot plan millions of jobs
/// or ask workers for a network that cannot fit in any memory.
pub mod bounds {
    /// Bytes of `name`.
    pub const NAME_BYTES: usize = 256;
    /// `protocol.folds`.
    pub const FOLDS: u32 = 100;
    /// Entries of `protocol.seeds`.
    pub const SEEDS: usize = 1000;
    /// `protocol.max_attempts`.
    pub const MAX_ATTEMPTS: u32 = 100;
    /// `simulation.steps` and `training.test_steps` (time steps per sample).
    pub const STEPS: u32 = 10_000;
    /// `simulation.dt_ms` (one minute).
    pub const DT_MS: u32 = 60_000;
    /// `training.batch` and `training.test_batch`.
    pub const BATCH: u32 = 4096;
    /// `training.epochs` (it also sizes the largest `Complete` the
    /// coordinator reads, which carries every epoch: about 3.6 MiB).
    pub const EPOCHS: u32 = 10_000;
    /// Configurations of a sweep (and values of one swept key).
    pub const CONFIGURATIONS: usize = 10_000;
    /// Jobs of an experiment: configurations × seeds × variants × folds.
    pub const JOBS: u64 = 1_000_000;
    /// `protocol.epoch_timeout_s` (30 days).
    pub const EPOCH_TIMEOUT_S: u32 = 30 * 24 * 3600;
}

/// `Ok` when `value <= max`; else an error naming `key`.
pub(crate) fn at_most<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    max: T,
) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(
            key,
            format!("{value} is more than the limit {max}"),
        ));
    }
    Ok(())
}

impl From<UnknownName> for ConfigError {
    fn from(e: UnknownName) -> Self {
        ConfigError::Invalid {
            key: e.key.to_owned(),
            message: format!("{:?} is not one of {}", e.name, e.offered),
        }
    }
}

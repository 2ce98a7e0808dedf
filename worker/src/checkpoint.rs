//! A job's checkpoint: one safetensors file holding the current weights
//! (`model.*`), the optimiser state (`optim.*`), the best-so-far weights
//! (`best.*`), and, as JSON in the metadata, the progress: epochs done, their
//! metrics, the optimiser step and learning rate, and the best-so-far record.
//!
//! RNG state: the job's random numbers (shuffling, random crops) come from a
//! ChaCha8 generator keyed by the job seed whose stream is the epoch number,
//! and libtorch's generator is used only for initialisation, so the epoch count
//! is the whole RNG state. Resuming therefore replays exactly the draws an
//! uninterrupted run makes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spikecv_common::experiment::job::EpochMetrics;
use tch::Tensor;

use crate::weights::{WeightsError, read_tensors, write_tensors};

pub mod writer;

pub use writer::CheckpointWriter;

/// Metadata key holding [`Progress`] as JSON.
pub const PROGRESS_KEY: &str = "spikecv.progress";
/// Format version of the checkpoint.
pub const FORMAT_VERSION: u32 = 1;

/// The model the protocol has selected so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestSoFar {
    /// Its epoch (1-based).
    pub epoch: u32,
    /// Validation loss (train-val-test).
    pub val_loss: Option<f64>,
    /// Validation accuracy (train-val-test).
    pub val_accuracy: Option<f64>,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Test confusion matrix, `[true][predicted]`.
    pub confusion: Vec<Vec<u32>>,
}

/// Everything but tensors that a resumed job needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Checkpoint format version.
    pub format: u32,
    /// Identifies the job (variant, seed, fold, config) so a checkpoint of
    /// another job is never resumed by mistake.
    pub job_key: String,
    /// Epochs completed.
    pub epoch: u32,
    /// Optimiser steps taken.
    pub optimizer_step: u64,
    /// Current learning rate (after any decay).
    pub lr: f64,
    /// Training wall time so far, in seconds.
    pub train_seconds: f64,
    /// Metrics of every completed epoch.
    pub epochs: Vec<EpochMetrics>,
    /// The protocol's selection so far.
    pub best: Option<BestSoFar>,
}

/// A checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file itself failed.
    #[error(transparent)]
    File(#[from] WeightsError),
    /// The progress record is missing or malformed.
    #[error("checkpoint {path}: bad progress record: {message}")]
    Progress {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The background writer could not copy or write the checkpoint.
    #[error("checkpoint {path}: {message}")]
    Writer {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The checkpoint belongs to another job.
    #[error("checkpoint {path} belongs to job {found:?}, not {expected:?}")]
    OtherJob {
        /// The file.
        path: PathBuf,
        /// Its job key.
        found: String,
        /// This job's key.
        expected: String,
    },
}

/// A checkpoint in memory.
#[derive(Debug)]
pub struct Checkpoint {
    /// Progress record.
    pub progress: Progress,
    /// Tensors by name (`model.*`, `optim.*`, `best.*`), on the CPU after loading.
    pub tensors: HashMap<String, Tensor>,
}

/// The epoch a checkpoint file's progress record says it was taken after
/// (read from its safetensors header alone); `None` when `bytes` carry no
/// readable record.
pub fn recorded_epoch(bytes: &[u8]) -> Option<u32> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).ok()?;
    let text = meta.metadata().as_ref()?.get(PROGRESS_KEY)?;
    let progress: Progress = serde_json::from_str(text).ok()?;
    Some(progress.epoch)
}

impl Checkpoint {
    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let progress =
            serde_json::to_string(&self.progress).map_err(|e| CheckpointError::Progress {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let mut tensors: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        write_tensors(
            path,
            &tensors,
            HashMap::from([(PROGRESS_KEY.to_owned(), progress)]),
        )?;
        Ok(())
    }

    /// Reads a checkpoint and checks that it belongs to the job `job_key`.
    pub fn load(path: &Path, job_key: &str) -> Result<Checkpoint, CheckpointError> {
        let (tensors, metadata) = read_tensors(path)?;
        let bad = |message: String| CheckpointError::Progress {
            path: path.to_owned(),
            message,
        };
        let text = metadata
            .get(PROGRESS_KEY)
            .ok_or_else(|| bad(format!("no {PROGRESS_KEY} entry")))?;
        let progress: Progress = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if progress.format != FORMAT_VERSION {
            return Err(bad(format!(
                "format {} (expected {FORMAT_VERSION})",
                progress.format
            )));
        }
        if progress.job_key != job_key {
            return Err(CheckpointError::OtherJob {
                path: path.to_owned(),
                found: progress.job_key,
                expected: job_key.to_owned(),
            });
        }
        Ok(Checkpoint { progress, tensors })
    }

    /// The tensor stored under `prefix.name`, if any.
    pub fn tensor(&self, prefix: &str, name: &str) -> Option<Tensor> {
        self.tensors
            .get(&format!("{prefix}.{name}"))
            .map(Tensor::shallow_clone)
    }
}

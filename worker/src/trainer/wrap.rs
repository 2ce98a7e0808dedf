//! A script's checkpoint in the native checkpoint's clothes: one safetensors
//! file whose metadata holds the progress record the coordinator checks and a
//! resumed job reads ([`crate::checkpoint::PROGRESS_KEY`]: the job key,
//! epochs done, every epoch's metrics, the best so far) and which trainer
//! wrote it ([`TRAINER_KEY`]), and whose one `uint8` tensor
//! ([`FILE_TENSOR`]) is the script's file, byte for byte. It is uploaded
//! like a native checkpoint and, after a crash, unwrapped on the worker that
//! resumes the job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{FORMAT_VERSION, PROGRESS_KEY, Progress};
use crate::weights::{WeightsError, write_atomic};

/// The tensor holding the script's file.
pub const FILE_TENSOR: &str = "trainer.checkpoint";
/// Metadata key of [`Origin`] as JSON.
pub const TRAINER_KEY: &str = "spikecv.trainer";

/// Which trainer wrote a wrapped checkpoint, and the file's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The trainer's name.
    pub name: String,
    /// SHA-256 of its script.
    pub sha256: String,
    /// The script's file name (its extension names the resume file).
    pub file: String,
}

/// A wrapped checkpoint, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrapped {
    /// The progress record.
    pub progress: Progress,
    /// Which trainer wrote it.
    pub origin: Origin,
    /// The script's file.
    pub bytes: Vec<u8>,
}

/// Why a checkpoint could not be wrapped or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The file could not be read.
    #[error("checkpoint {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The wrapped file could not be written.
    #[error(transparent)]
    Write(#[from] WeightsError),
    /// Not a safetensors file, or not a script's checkpoint.
    #[error("checkpoint {}: {what}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A checkpoint of another job (its key differs) or another trainer.
    #[error("checkpoint {} belongs to {found}, not {expected}", path.display())]
    Other {
        /// The file.
        path: PathBuf,
        /// Whose it is.
        found: String,
        /// Whose it should be.
        expected: String,
    },
}

fn format_error(path: &Path, what: impl Into<String>) -> WrapError {
    WrapError::Format {
        path: path.to_owned(),
        what: what.into(),
    }
}

/// Writes `bytes` (the script's file) with `progress` and `origin` as a
/// checkpoint at `path`, atomically.
pub fn wrap(
    bytes: &[u8],
    progress: &Progress,
    origin: &Origin,
    path: &Path,
) -> Result<(), WrapError> {
    let metadata = HashMap::from([
        (PROGRESS_KEY.to_owned(), json(path, progress)?),
        (TRAINER_KEY.to_owned(), json(path, origin)?),
    ]);
    let view = TensorView::new(Dtype::U8, vec![bytes.len()], bytes)
        .map_err(|e| format_error(path, e.to_string()))?;
    let file = safetensors::tensor::serialize([(FILE_TENSOR, view)], &Some(metadata))
        .map_err(|e| format_error(path, e.to_string()))?;
    write_atomic(path, &file)?;
    Ok(())
}

/// Reads the checkpoint at `path`, written for the job `job_key` by the
/// trainer `trainer`; anything else is an error saying whose it is.
pub fn unwrap(path: &Path, job_key: &str, trainer: &str) -> Result<Unwrapped, WrapError> {
    let file = std::fs::read(path).map_err(|source| WrapError::Read {
        path: path.to_owned(),
        source,
    })?;
    let st = SafeTensors::deserialize(&file).map_err(|e| format_error(path, e.to_string()))?;
    let (_, meta) =
        SafeTensors::read_metadata(&file).map_err(|e| format_error(path, e.to_string()))?;
    let entry = |key: &str| {
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get(key))
            .ok_or_else(|| format_error(path, format!("no {key} entry")))
    };
    let progress: Progress = serde_json::from_str(entry(PROGRESS_KEY)?)
        .map_err(|e| format_error(path, format!("{PROGRESS_KEY}: {e}")))?;
    let origin: Origin = serde_json::from_str(
        entry(TRAINER_KEY).map_err(|_| format_error(path, "not a training script's checkpoint"))?,
    )
    .map_err(|e| format_error(path, format!("{TRAINER_KEY}: {e}")))?;
    if progress.format != FORMAT_VERSION {
        return Err(format_error(
            path,
            format!("format {} (expected {FORMAT_VERSION})", progress.format),
        ));
    }
    let other = |found: String, expected: String| WrapError::Other {
        path: path.to_owned(),
        found,
        expected,
    };
    if progress.job_key != job_key {
        return Err(other(
            format!("job {}", progress.job_key),
            format!("job {job_key}"),
        ));
    }
    if origin.name != trainer {
        return Err(other(
            format!("trainer {:?}", origin.name),
            format!("trainer {trainer:?}"),
        ));
    }
    let view = st
        .tensor(FILE_TENSOR)
        .map_err(|e| format_error(path, format!("{FILE_TENSOR}: {e}")))?;
    if view.dtype() != Dtype::U8 {
        return Err(format_error(path, format!("{FILE_TENSOR} is not uint8")));
    }
    Ok(Unwrapped {
        progress,
        origin,
        bytes: view.data().to_vec(),
    })
}

/// A metadata record as JSON text.
fn json<T: Serialize>(path: &Path, value: &T) -> Result<String, WrapError> {
    serde_json::to_string(value).map_err(|e| format_error(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use spikecv_common::experiment::job::EpochMetrics;

    use super::*;
    use crate::checkpoint::BestSoFar;

    fn progress(key: &str) -> Progress {
        let m = EpochMetrics {
            epoch: 1,
            train_loss: 1.0,
            train_accuracy: 0.5,
            test_loss: Some(0.5),
            test_accuracy: Some(0.25),
            ..EpochMetrics::default()
        };
        Progress {
            format: FORMAT_VERSION,
            job_key: key.into(),
            epoch: 1,
            optimizer_step: 0,
            lr: 0.001,
            train_seconds: 1.0,
            epochs: vec![m],
            best: Some(BestSoFar {
                epoch: 1,
                val_loss: None,
                val_accuracy: None,
                test_loss: 0.5,
                test_accuracy: 0.25,
                confusion: vec![vec![1, 0], vec![3, 0]],
            }),
        }
    }

    #[test]
    fn a_wrapped_checkpoint_unwraps_to_the_same_bytes_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let origin = Origin {
            name: "py".into(),
            sha256: "ab".repeat(32),
            file: "ckpt.pt".into(),
        };
        let bytes: Vec<u8> = (0..=255).cycle().take(1000).collect();
        wrap(&bytes, &progress("k"), &origin, &path).unwrap();
        // The header alone says the epoch, as the upload path reads it.
        let file = std::fs::read(&path).unwrap();
        assert_eq!(crate::checkpoint::recorded_epoch(&file), Some(1));
        let back = unwrap(&path, "k", "py").unwrap();
        assert_eq!(back.bytes, bytes);
        assert_eq!(back.progress, progress("k"));
        assert_eq!(back.origin, origin);
        let e = unwrap(&path, "other", "py").unwrap_err().to_string();
        assert!(e.contains("job other"), "{e}");
        let e = unwrap(&path, "k", "js").unwrap_err().to_string();
        assert!(e.contains("trainer \"py\""), "{e}");
        wrap(&[], &progress("k"), &origin, &path).unwrap();
        assert!(unwrap(&path, "k", "py").unwrap().bytes.is_empty());
        std::fs::write(&path, b"not a checkpoint").unwrap();
        assert!(matches!(
            unwrap(&path, "k", "py"),
            Err(WrapError::Format { .. })
        ));
    }
}

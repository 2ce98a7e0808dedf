//! The messages between `worker join` and a slot process, one JSON object a
//! line (serde_json writes no raw newline), and how they are framed.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};

use crate::settings::Switches;
use spikecv_common::experiment::manifest::Provenance;

/// The longest line either side accepts (a job's config and split, an
/// epoch's metrics: kilobytes; a result with its confusion matrices: less
/// than a megabyte).
pub const MAX_LINE_BYTES: u64 = 64 << 20;

/// One job, as the parent hands it to a slot process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildJob {
    /// The experiment config as the coordinator sent it (TOML).
    pub config_toml: String,
    /// Data set variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Fold (0-based).
    pub fold: u32,
    /// The fold's recordings.
    pub split: FoldSplit,
    /// The job's folder.
    pub out_dir: PathBuf,
    /// Data set root (`--data`; else the experiment's `[data] root`).
    pub data_dir: Option<PathBuf>,
    /// The data set's fingerprint the worker registered (hex; empty when
    /// it has none), for the job's manifest.
    #[serde(default)]
    pub data_fingerprint: String,
}

/// What the parent tells a slot process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToChild {
    /// Train this job.
    Run {
        /// The job.
        job: Box<ChildJob>,
    },
    /// The answer to an epoch: go on, or checkpoint and stop.
    Control {
        /// Stop at this epoch boundary.
        stop: bool,
    },
    /// The checkpoint was taken in; training may overwrite it.
    Ack,
}

/// How a job ended in a slot process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum ChildOutcome {
    /// Finished, with its result.
    Complete {
        /// The result.
        result: Box<JobResult>,
        /// What it ran on and with, and its weights' hash.
        provenance: Box<Provenance>,
    },
    /// Stopped on request; the checkpoint holds `epoch` epochs.
    Stopped {
        /// Epochs done.
        epoch: u32,
    },
    /// Failed.
    Failed {
        /// What went wrong.
        message: String,
        /// Another attempt would fail the same way.
        deterministic: bool,
        /// The device context is poisoned: the process exits after this
        /// message and the parent starts a fresh one.
        sticky: bool,
    },
}

/// What a slot process tells the parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromChild {
    /// Started, with libtorch's switches as set for every job of the process.
    Ready {
        /// As libtorch reports them.
        settings: Switches,
    },
    /// The process could not set itself up (it exits after this).
    Unusable {
        /// Why.
        message: String,
    },
    /// An epoch starts (1-based) out of `epochs`.
    EpochStart {
        /// The epoch.
        epoch: u32,
        /// Epochs in all.
        epochs: u32,
    },
    /// An epoch finished; the process waits for [`ToChild::Control`].
    Epoch {
        /// Its metrics.
        metrics: Box<EpochMetrics>,
    },
    /// A checkpoint was written; the process waits for [`ToChild::Ack`].
    Checkpoint {
        /// The file.
        path: PathBuf,
    },
    /// The job ended.
    Done {
        /// How.
        outcome: ChildOutcome,
    },
}

/// A message that could not be sent or read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The pipe failed.
    #[error("slot process pipe: {0}")]
    Io(#[from] std::io::Error),
    /// A line was not a message of the protocol.
    #[error("slot process sent a line that is not a message ({len} bytes): {source}")]
    Malformed {
        /// The line's length.
        len: usize,
        /// Why.
        source: serde_json::Error,
    },
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("slot process sent a line longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
}

/// Writes one message and flushes.
pub fn send<W: Write, T: Serialize>(out: &mut W, message: &T) -> Result<(), WireError> {
    let mut line =
        serde_json::to_vec(message).map_err(|source| WireError::Malformed { len: 0, source })?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()?;
    Ok(())
}

/// Reads one message; `None` when the other side closed the pipe.
pub fn receive<R: BufRead, T: DeserializeOwned>(input: &mut R) -> Result<Option<T>, WireError> {
    let mut line = Vec::new();
    let n = std::io::Read::take(input.by_ref(), MAX_LINE_BYTES + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if n as u64 > MAX_LINE_BYTES {
            return Err(WireError::TooLong);
        }
        // The pipe closed in the middle of a line: the writer died.
        return Ok(None);
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|source| WireError::Malformed {
            len: line.len(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_pipe_and_a_torn_line_is_an_end() -> Result<(), WireError> {
        let mut pipe = Vec::new();
        let epoch = FromChild::Epoch {
            metrics: Box::new(EpochMetrics {
                epoch: 3,
                train_loss: 0.25,
                ..EpochMetrics::default()
            }),
        };
        send(&mut pipe, &epoch)?;
        send(
            &mut pipe,
            &FromChild::Checkpoint {
                path: "c\nd".into(),
            },
        )?;
        assert_eq!(pipe.iter().filter(|&&b| b == b'\n').count(), 2);
        pipe.extend_from_slice(b"{\"type\":\"done\"");
        let mut r = std::io::Cursor::new(pipe);
        assert_eq!(receive::<_, FromChild>(&mut r)?, Some(epoch));
        assert_eq!(
            receive::<_, FromChild>(&mut r)?,
            Some(FromChild::Checkpoint {
                path: "c\nd".into()
            })
        );
        assert_eq!(receive::<_, FromChild>(&mut r)?, None);
        let mut bad = std::io::Cursor::new(b"{\"type\":\"nope\"}\n".to_vec());
        assert!(matches!(
            receive::<_, FromChild>(&mut bad),
            Err(WireError::Malformed { .. })
        ));
        Ok(())
    }
}

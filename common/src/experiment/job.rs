//! What a job is and what it yields, shared by the worker (which produces
//! metrics and results) and the coordinator (which stores and reports them).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::experiment::sections::ProtocolKind;

/// The life of a job in the coordinator (DESIGN.md, "Distribution").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Pending,
    /// Handed to a worker that has not reported progress yet.
    Leased,
    /// A worker reports progress.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Gave up after its error (or its retries ran out).
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// Stopped early by a sweep's pruner: its configuration was losing on
    /// validation accuracy (the reason is stored with the job).
    Pruned,
}

impl JobStatus {
    /// Every status, in the order of the life of a job.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::Leased,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Pruned,
    ];

    /// The lowercase name used in the store, reports and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Leased => "leased",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Pruned => "pruned",
        }
    }

    /// Whether the job will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Pruned
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of the six.
#[derive(Debug, thiserror::Error)]
#[error("unknown job status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(feature = "sqlite")]
impl rusqlite::types::ToSql for JobStatus {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

#[cfg(feature = "sqlite")]
impl rusqlite::types::FromSql for JobStatus {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: UnknownStatus| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

/// Metrics of one training epoch (accuracies are fractions in [0, 1]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: u32,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training accuracy over the epoch.
    pub train_accuracy: f64,
    /// Validation loss (train-val-test protocol only).
    pub val_loss: Option<f64>,
    /// Validation accuracy (train-val-test protocol only).
    pub val_accuracy: Option<f64>,
    /// Test loss, when the test set was evaluated this epoch.
    pub test_loss: Option<f64>,
    /// Test accuracy, when the test set was evaluated this epoch.
    pub test_accuracy: Option<f64>,
    /// Wall time of the epoch (training and evaluation).
    pub epoch_seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// Mean spike rate of every LIF layer, in network order (empty from
    /// workers that do not measure it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firing_rates: Vec<LayerRate>,
}

/// Mean spike rate (spikes per neuron per time step, in [0, 1]) of one LIF
/// layer over an epoch: the SNN's vital sign.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerRate {
    /// The layer's name (`conv1`, `blocks.3`, ...).
    pub layer: String,
    /// Over the epoch's training batches.
    pub train: f64,
    /// Over the epoch's evaluation pass (validation, else test), when it ran.
    pub eval: Option<f64>,
}

/// The outcome of one finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The epoch whose model the protocol selected.
    pub best_epoch: u32,
    /// Test accuracy of the selected model.
    pub test_accuracy: f64,
    /// Test loss of the selected model.
    pub test_loss: f64,
    /// Validation accuracy of the selected model (train-val-test only).
    pub val_accuracy: Option<f64>,
    /// Validation loss of the selected model (train-val-test only).
    pub val_loss: Option<f64>,
    /// Confusion matrix of the selected model's test predictions, `[true][predicted]`.
    pub confusion: Vec<Vec<u32>>,
    /// Training wall time in seconds.
    pub train_seconds: f64,
    /// Every epoch's metrics.
    pub epochs: Vec<EpochMetrics>,
    /// True for the train-test protocol, whose figure is the best test accuracy
    /// over epochs and so optimistic.
    pub optimistic: bool,
}

/// The epoch a protocol selects among `epochs` (in order), each judged on its
/// own figures (an epoch may lack test figures: a training script need not
/// test every epoch): the first epoch always; then `train-val-test` an epoch
/// with a strictly lower validation loss, `train-test` one with a strictly
/// higher test accuracy (any test accuracy beats none), `official` every
/// epoch (the last). The worker selects by it and the coordinator checks a
/// checkpoint's `best` against it. `None` without epochs.
pub fn selected_epoch(kind: ProtocolKind, epochs: &[EpochMetrics]) -> Option<u32> {
    let mut best: Option<&EpochMetrics> = None;
    for m in epochs {
        let replaces = match best {
            None => true,
            Some(b) => match kind {
                ProtocolKind::TrainValTest => match (m.val_loss, b.val_loss) {
                    (Some(v), Some(bv)) => v < bv,
                    (Some(_), None) => true,
                    _ => false,
                },
                ProtocolKind::TrainTest => m
                    .test_accuracy
                    .is_some_and(|a| b.test_accuracy.is_none_or(|ba| a > ba)),
                ProtocolKind::Official => true,
            },
        };
        if replaces {
            best = Some(m);
        }
    }
    best.map(|m| m.epoch)
}

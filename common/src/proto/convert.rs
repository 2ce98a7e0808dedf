//! Conversions between the generated protobuf messages and the crate's own
//! types (`job::EpochMetrics`, `job::JobResult`), so logic never sees prost types.

use crate::experiment::job::{EpochMetrics, JobResult, LayerRate};

use super::{EpochMetrics as PbEpochMetrics, JobResult as PbJobResult};

/// A protobuf message that does not describe a valid value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// The confusion matrix does not have `classes × classes` entries.
    #[error("JobResult: confusion has {len} entries, expected {classes} × {classes}")]
    Confusion {
        /// The declared class count.
        classes: u32,
        /// The entries sent.
        len: usize,
    },
}

impl EpochMetrics {
    /// The protobuf form.
    pub fn to_proto(&self) -> PbEpochMetrics {
        PbEpochMetrics {
            epoch: self.epoch,
            train_loss: self.train_loss,
            train_accuracy: self.train_accuracy,
            val_loss: self.val_loss,
            val_accuracy: self.val_accuracy,
            test_loss: self.test_loss,
            test_accuracy: self.test_accuracy,
            epoch_seconds: self.epoch_seconds,
            samples_per_second: self.samples_per_second,
            firing_rates: self
                .firing_rates
                .iter()
                .map(|r| super::LayerFiringRate {
                    layer: r.layer.clone(),
                    train: r.train,
                    eval: r.eval,
                })
                .collect(),
        }
    }

    /// From the protobuf form (every field maps one to one).
    pub fn from_proto(p: &PbEpochMetrics) -> Self {
        Self {
            epoch: p.epoch,
            train_loss: p.train_loss,
            train_accuracy: p.train_accuracy,
            val_loss: p.val_loss,
            val_accuracy: p.val_accuracy,
            test_loss: p.test_loss,
            test_accuracy: p.test_accuracy,
            epoch_seconds: p.epoch_seconds,
            samples_per_second: p.samples_per_second,
            firing_rates: p
                .firing_rates
                .iter()
                .map(|r| LayerRate {
                    layer: r.layer.clone(),
                    train: r.train,
                    eval: r.eval,
                })
                .collect(),
        }
    }
}

impl JobResult {
    /// The protobuf form; the confusion matrix is flattened row-major.
    pub fn to_proto(&self) -> PbJobResult {
        PbJobResult {
            best_epoch: self.best_epoch,
            test_accuracy: self.test_accuracy,
            test_loss: self.test_loss,
            val_accuracy: self.val_accuracy,
            val_loss: self.val_loss,
            classes: u32::try_from(self.confusion.len()).unwrap_or(u32::MAX),
            confusion: self.confusion.iter().flatten().copied().collect(),
            train_seconds: self.train_seconds,
            epochs: self.epochs.iter().map(EpochMetrics::to_proto).collect(),
            optimistic: self.optimistic,
        }
    }

    /// From the protobuf form; checks the confusion matrix is square.
    pub fn from_proto(p: &PbJobResult) -> Result<Self, ProtoError> {
        let n = p.classes as usize;
        if n.checked_mul(n) != Some(p.confusion.len()) {
            return Err(ProtoError::Confusion {
                classes: p.classes,
                len: p.confusion.len(),
            });
        }
        let confusion = if n == 0 {
            Vec::new()
        } else {
            p.confusion.chunks(n).map(<[u32]>::to_vec).collect()
        };
        Ok(Self {
            best_epoch: p.best_epoch,
            test_accuracy: p.test_accuracy,
            test_loss: p.test_loss,
            val_accuracy: p.val_accuracy,
            val_loss: p.val_loss,
            confusion,
            train_seconds: p.train_seconds,
            epochs: p.epochs.iter().map(EpochMetrics::from_proto).collect(),
            optimistic: p.optimistic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(epoch: u32) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.5,
            train_accuracy: 0.25,
            val_loss: Some(0.4),
            val_accuracy: None,
            test_loss: None,
            test_accuracy: Some(0.75),
            epoch_seconds: 1.5,
            samples_per_second: 10.0,
            firing_rates: vec![
                LayerRate {
                    layer: "conv1".into(),
                    train: 0.125,
                    eval: Some(0.0625),
                },
                LayerRate {
                    layer: "fc2".into(),
                    train: 0.0,
                    eval: None,
                },
            ],
        }
    }

    #[test]
    fn job_result_round_trips() {
        let r = JobResult {
            best_epoch: 2,
            test_accuracy: 0.5,
            test_loss: 0.1,
            val_accuracy: Some(0.4),
            val_loss: None,
            confusion: vec![vec![1, 2], vec![3, 4]],
            train_seconds: 9.0,
            epochs: vec![metrics(1), metrics(2)],
            optimistic: true,
        };
        let p = r.to_proto();
        assert_eq!(p.confusion, vec![1, 2, 3, 4]);
        assert_eq!(JobResult::from_proto(&p), Ok(r));
    }

    #[test]
    fn ragged_confusion_is_refused() {
        let mut p = JobResult {
            best_epoch: 1,
            test_accuracy: 0.0,
            test_loss: 0.0,
            val_accuracy: None,
            val_loss: None,
            confusion: vec![vec![1, 2], vec![3, 4]],
            train_seconds: 0.0,
            epochs: vec![],
            optimistic: false,
        }
        .to_proto();
        p.confusion.pop();
        assert_eq!(
            JobResult::from_proto(&p),
            Err(ProtoError::Confusion { classes: 2, len: 3 })
        );
    }
}

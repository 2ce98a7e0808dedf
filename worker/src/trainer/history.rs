//! What a script's job has reported so far, across resumes: every epoch's
//! metrics (the ones a resumed checkpoint's record holds, then this run's),
//! the test confusion matrices sent with them, and from these the
//! protocol's selection ([`crate::train::protocol::selected_epoch`]), the
//! best-so-far record a checkpoint carries, and the job's result.

use std::collections::BTreeMap;

use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::experiment::sections::ProtocolKind;

use super::events::{EpochLine, ResultLine};
use crate::checkpoint::BestSoFar;
use crate::train::protocol::selected_epoch;

/// The epochs of one job so far.
#[derive(Debug, Clone)]
pub struct History {
    protocol: ProtocolKind,
    epochs: Vec<EpochMetrics>,
    confusions: BTreeMap<u32, Vec<Vec<u32>>>,
}

impl History {
    /// A job with nothing reported yet.
    pub fn new(protocol: ProtocolKind) -> History {
        History {
            protocol,
            epochs: Vec::new(),
            confusions: BTreeMap::new(),
        }
    }

    /// The history a resumed checkpoint's record holds: its epochs and its
    /// best-so-far record (whose confusion matrix is the only one of those
    /// epochs that is kept).
    pub fn resumed(
        protocol: ProtocolKind,
        epochs: Vec<EpochMetrics>,
        best: Option<&BestSoFar>,
    ) -> History {
        let mut confusions = BTreeMap::new();
        if let Some(b) = best.filter(|b| !b.confusion.is_empty()) {
            confusions.insert(b.epoch, b.confusion.clone());
        }
        History {
            protocol,
            epochs,
            confusions,
        }
    }

    /// Every epoch so far, in order.
    pub fn epochs(&self) -> &[EpochMetrics] {
        &self.epochs
    }

    /// The last epoch done (0 before any).
    pub fn last_epoch(&self) -> u32 {
        self.epochs.last().map_or(0, |m| m.epoch)
    }

    /// Adds a checked epoch line.
    pub fn push(&mut self, line: EpochLine) {
        if let Some(c) = line.confusion {
            self.confusions.insert(line.metrics.epoch, c);
        }
        self.epochs.push(line.metrics);
    }

    /// Training time so far: the sum of the epochs' times.
    pub fn train_seconds(&self) -> f64 {
        self.epochs.iter().map(|m| m.epoch_seconds).sum()
    }

    /// The protocol's selection among the epochs so far, as a checkpoint's
    /// record carries it: `None` before any epoch, or when the selected epoch
    /// has no test figures (the record then names no best, which the
    /// coordinator accepts).
    pub fn best_so_far(&self) -> Option<BestSoFar> {
        let epoch = selected_epoch(self.protocol, &self.epochs)?;
        let m = self.epochs.iter().find(|m| m.epoch == epoch)?;
        Some(BestSoFar {
            epoch,
            val_loss: m.val_loss,
            val_accuracy: m.val_accuracy,
            test_loss: m.test_loss?,
            test_accuracy: m.test_accuracy?,
            confusion: self.confusions.get(&epoch).cloned().unwrap_or_default(),
        })
    }

    fn result(&self, best: BestSoFar) -> JobResult {
        JobResult {
            best_epoch: best.epoch,
            test_accuracy: best.test_accuracy,
            test_loss: best.test_loss,
            val_accuracy: best.val_accuracy,
            val_loss: best.val_loss,
            confusion: best.confusion,
            train_seconds: self.train_seconds(),
            epochs: self.epochs.clone(),
            optimistic: self.protocol == ProtocolKind::TrainTest,
        }
    }

    /// The job's result from the script's `result` line.
    pub fn result_from(&self, line: ResultLine) -> JobResult {
        self.result(BestSoFar {
            epoch: line.best_epoch,
            val_loss: line.val_loss,
            val_accuracy: line.val_accuracy,
            test_loss: line.test_loss,
            test_accuracy: line.test_accuracy,
            confusion: line.confusion,
        })
    }

    /// The job's result by the protocol's rule, as the native engine selects
    /// (docs/trainers.md, `result`); the selected epoch must carry its test
    /// figures and confusion matrix, else the error says which epoch lacks
    /// what.
    pub fn selected_result(&self) -> Result<JobResult, String> {
        let epoch = selected_epoch(self.protocol, &self.epochs)
            .ok_or_else(|| "the script reported no epoch".to_owned())?;
        let lacks = |what: &str| {
            format!(
                "protocol {} selects epoch {epoch}, which lacks {what}, and the script sent no result",
                self.protocol.as_str()
            )
        };
        let best = self
            .best_so_far()
            .ok_or_else(|| lacks("test_loss and test_accuracy"))?;
        if best.confusion.is_empty() {
            return Err(lacks("its confusion matrix"));
        }
        Ok(self.result(best))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn line(epoch: u32, val_loss: f64, test: Option<f64>) -> EpochLine {
        EpochLine {
            metrics: EpochMetrics {
                epoch,
                train_loss: 1.0,
                train_accuracy: 0.5,
                val_loss: Some(val_loss),
                val_accuracy: Some(0.5),
                test_loss: test.map(|_| 0.9),
                test_accuracy: test,
                epoch_seconds: 2.0,
                samples_per_second: 0.0,
                firing_rates: Vec::new(),
            },
            confusion: test.map(|_| vec![vec![epoch, 0], vec![0, 1]]),
        }
    }

    #[test]
    fn selection_follows_the_protocol_and_needs_test_figures() {
        let mut h = History::new(ProtocolKind::TrainValTest);
        assert!(h.best_so_far().is_none());
        assert!(h.selected_result().unwrap_err().contains("no epoch"));
        h.push(line(1, 0.5, Some(0.5)));
        assert_eq!(h.best_so_far().map(|b| b.epoch), Some(1));
        // A lower validation loss without test figures: selected, no record.
        h.push(line(2, 0.3, None));
        assert!(h.best_so_far().is_none());
        let e = h.selected_result().unwrap_err();
        assert!(e.contains("epoch 2") && e.contains("test_loss"), "{e}");
        h.push(line(3, 0.2, Some(0.75)));
        let r = h.selected_result().unwrap();
        assert_eq!((r.best_epoch, r.test_accuracy), (3, 0.75));
        assert_eq!(r.confusion, vec![vec![3, 0], vec![0, 1]]);
        assert_eq!(r.epochs.len(), 3);
        assert_eq!(r.train_seconds, 6.0);
        assert!(!r.optimistic);
    }

    #[test]
    fn a_resumed_history_keeps_its_best_confusion() {
        let mut h = History::new(ProtocolKind::TrainTest);
        h.push(line(1, 0.5, Some(0.5)));
        h.push(line(2, 0.5, Some(0.25)));
        let best = h.best_so_far().unwrap();
        let mut resumed =
            History::resumed(ProtocolKind::TrainTest, h.epochs().to_vec(), Some(&best));
        resumed.push(line(3, 0.5, None));
        let r = resumed.selected_result().unwrap();
        assert_eq!(r.best_epoch, 1);
        assert_eq!(r.confusion, vec![vec![1, 0], vec![0, 1]]);
        assert!(r.optimistic);
        assert_eq!(resumed.last_epoch(), 3);
        let from_line = resumed.result_from(ResultLine {
            best_epoch: 3,
            test_accuracy: 0.5,
            test_loss: 0.1,
            val_accuracy: None,
            val_loss: None,
            confusion: vec![vec![1, 1], vec![0, 0]],
        });
        assert_eq!(from_line.best_epoch, 3);
        assert_eq!(from_line.epochs.len(), 3);
    }
}

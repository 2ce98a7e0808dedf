//! The names a job's figures go by outside its `metrics.json`: the scalars
//! of each epoch, as the worker's TensorBoard files and the MLflow export
//! name them ([`epoch`]), and the selected model's figures, as the MLflow
//! export's summary metrics and the dashboard's columns name them
//! ([`summary`]).

use super::job::EpochMetrics;

/// Per-epoch scalar names (TensorBoard tags, MLflow metric keys; step = the
/// epoch).
pub mod epoch {
    /// Mean training loss over the epoch's batches.
    pub const TRAIN_LOSS: &str = "train/loss";
    /// Training accuracy over the epoch.
    pub const TRAIN_ACCURACY: &str = "train/accuracy";
    /// Validation loss (train-val-test protocol only).
    pub const VAL_LOSS: &str = "val/loss";
    /// Validation accuracy (train-val-test protocol only).
    pub const VAL_ACCURACY: &str = "val/accuracy";
    /// Test loss, when the test set was evaluated that epoch.
    pub const TEST_LOSS: &str = "test/loss";
    /// Test accuracy, when the test set was evaluated that epoch.
    pub const TEST_ACCURACY: &str = "test/accuracy";
    /// Wall time of the epoch (training and evaluation), in seconds.
    pub const EPOCH_SECONDS: &str = "perf/epoch_seconds";
    /// Training samples per second.
    pub const SAMPLES_PER_SECOND: &str = "perf/samples_per_second";

    /// The tag of a LIF layer's firing rate over the epoch's training batches.
    pub fn firing_rate_train(layer: &str) -> String {
        format!("firing_rate/train/{layer}")
    }

    /// The tag of a LIF layer's firing rate over the epoch's evaluation pass.
    pub fn firing_rate_eval(layer: &str) -> String {
        format!("firing_rate/eval/{layer}")
    }
}

/// Names of the selected model's figures (MLflow summary metrics, dashboard
/// columns, the MLflow parent run's `<group>/<name>_mean` keys).
pub mod summary {
    /// Test accuracy.
    pub const TEST_ACCURACY: &str = "test_accuracy";
    /// Test loss.
    pub const TEST_LOSS: &str = "test_loss";
    /// Validation accuracy (train-val-test protocol only).
    pub const VAL_ACCURACY: &str = "val_accuracy";
    /// Validation loss (train-val-test protocol only).
    pub const VAL_LOSS: &str = "val_loss";
    /// The epoch the protocol selected.
    pub const BEST_EPOCH: &str = "best_epoch";
    /// Training wall time of the job, in seconds.
    pub const TRAIN_SECONDS: &str = "train_seconds";
}

/// One epoch's scalars under their [`epoch`] names, in a fixed order; `None`
/// where the epoch lacks the value (firing rates not included: see
/// [`epoch::firing_rate_train`]).
pub fn epoch_scalars(m: &EpochMetrics) -> [(&'static str, Option<f64>); 8] {
    [
        (epoch::TRAIN_LOSS, Some(m.train_loss)),
        (epoch::TRAIN_ACCURACY, Some(m.train_accuracy)),
        (epoch::VAL_LOSS, m.val_loss),
        (epoch::VAL_ACCURACY, m.val_accuracy),
        (epoch::TEST_LOSS, m.test_loss),
        (epoch::TEST_ACCURACY, m.test_accuracy),
        (epoch::EPOCH_SECONDS, Some(m.epoch_seconds)),
        (epoch::SAMPLES_PER_SECOND, Some(m.samples_per_second)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_scalar_is_named_once() {
        let m = EpochMetrics::default();
        let mut names: Vec<&str> = epoch_scalars(&m).iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 8);
        assert_eq!(epoch::firing_rate_train("conv1"), "firing_rate/train/conv1");
        assert_eq!(epoch::firing_rate_eval("fc2"), "firing_rate/eval/fc2");
    }
}

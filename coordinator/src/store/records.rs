//! The one read model of a job and of an experiment: what reports are built
//! from and what the dashboard shows, as the store's read-only readers
//! (`read_only`) or a test provide them. Plain data, no database.

use serde::{Deserialize, Serialize};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::{EpochMetrics, JobStatus};
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::prune::verdict::PruneVerdict;
use spikecv_common::experiment::sections::ProtocolKind;

/// One job (configuration × variant × seed × fold) of an experiment, in
/// whatever state it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id (empty in records made up without one).
    #[serde(default)]
    pub id: String,
    /// Id of the experiment the job belongs to.
    pub experiment: String,
    /// Data set variant.
    pub variant: Variant,
    /// Seed (fold assignment and initialisation).
    pub seed: u64,
    /// Fold number, 0-based in scikit-learn's `KFold.split` order.
    pub fold: u32,
    /// Which protocol selected the reported model.
    pub protocol: ProtocolKind,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Leases handed out so far.
    pub attempts: u32,
    /// Epoch of the selected model (1-based), once finished.
    pub best_epoch: Option<u32>,
    /// Test accuracy of the selected model, a fraction in [0, 1].
    pub test_accuracy: Option<f64>,
    /// Test loss of the selected model.
    pub test_loss: Option<f64>,
    /// Validation accuracy of the selected model (train-val-test only).
    pub val_accuracy: Option<f64>,
    /// Validation loss of the selected model (train-val-test only).
    pub val_loss: Option<f64>,
    /// Training wall time in seconds.
    pub train_seconds: Option<f64>,
    /// Name of the worker that ran (or runs) the job.
    pub worker: Option<String>,
    /// Device it ran on, e.g. `cuda:0` or `cpu`.
    pub device: Option<String>,
    /// The last error, for failed (or retried) jobs.
    pub error: Option<String>,
    /// Per-epoch metrics reported so far.
    pub epochs: Vec<EpochMetrics>,
    /// Confusion matrix `[true][predicted]` of the selected model's test predictions.
    pub confusion: Option<Vec<Vec<u32>>>,
    /// When the job reached its final state (seconds since the Unix epoch), if it has.
    #[serde(default)]
    pub finished_unix: Option<i64>,
    /// Index of the job's configuration in the experiment's sweep (0 without one).
    #[serde(default)]
    pub configuration: usize,
    /// Why the sweep's pruner stopped the job, for pruned jobs.
    #[serde(default)]
    pub pruned: Option<PruneVerdict>,
    /// Epochs the job trains (from its config), when the store knows.
    #[serde(default)]
    pub planned_epochs: Option<u32>,
    /// The last epoch a worker reported (heartbeat or epoch report).
    #[serde(default)]
    pub progress_epoch: Option<u32>,
    /// Epochs in total, as the worker reported them.
    #[serde(default)]
    pub progress_of: Option<u32>,
    /// What the result was computed on and with, and its weights' hash
    /// (succeeded jobs whose worker sent them).
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

impl JobRecord {
    /// A pending job with no result yet; fill the other fields as known.
    pub fn pending(
        experiment: impl Into<String>,
        variant: Variant,
        seed: u64,
        fold: u32,
        protocol: ProtocolKind,
    ) -> Self {
        Self {
            id: String::new(),
            experiment: experiment.into(),
            variant,
            seed,
            fold,
            protocol,
            status: JobStatus::Pending,
            attempts: 0,
            best_epoch: None,
            test_accuracy: None,
            test_loss: None,
            val_accuracy: None,
            val_loss: None,
            train_seconds: None,
            worker: None,
            device: None,
            error: None,
            epochs: Vec::new(),
            confusion: None,
            finished_unix: None,
            configuration: 0,
            pruned: None,
            planned_epochs: None,
            progress_epoch: None,
            progress_of: None,
            provenance: None,
        }
    }

    /// The latest reported epoch while the job is unfinished (none once it ended).
    pub fn live_epoch(&self) -> Option<&EpochMetrics> {
        self.epochs.last().filter(|_| !self.status.is_terminal())
    }

    /// Validation accuracy as a live view shows it: the latest epoch's while
    /// the job runs, the selected model's once it ended.
    pub fn current_val_accuracy(&self) -> Option<f64> {
        match self.live_epoch() {
            Some(m) => m.val_accuracy,
            None => self.val_accuracy,
        }
    }

    /// Test accuracy as a live view shows it, like [`Self::current_val_accuracy`].
    pub fn current_test_accuracy(&self) -> Option<f64> {
        match self.live_epoch() {
            Some(m) => m.test_accuracy,
            None => self.test_accuracy,
        }
    }

    /// Whether the job ran on a CUDA device (its time counts as GPU hours).
    pub fn on_gpu(&self) -> bool {
        self.device
            .as_deref()
            .is_some_and(|d| d.starts_with("cuda"))
    }
}

/// An experiment as submitted: its identity and the exact configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// The experiment's id.
    pub id: String,
    /// Its human name, when the config gave one.
    pub name: Option<String>,
    /// The configuration text exactly as submitted.
    pub config_toml: String,
    /// Hash of the configuration (hex), as the store computed it.
    pub config_hash: String,
    /// When it was submitted (seconds since the Unix epoch).
    pub created_unix: i64,
    /// Class names in class order (19 for SL-Animals-DVS, 11 for DVS128 Gesture).
    pub class_names: Vec<String>,
}

//! Training one cross-validation job: the epoch loop, per-epoch validation and
//! testing, protocol selection, checkpoints and resume, and the files DESIGN.md
//! lists (`final.safetensors`, `best.safetensors`, `metrics.json`, `config.toml`,
//! TensorBoard events, the checkpoint).
//!
//! Determinism: on the CPU a job is a function of its seed (libtorch's generator
//! seeds the initialisation; shuffling and random crops come from ChaCha8
//! keyed by the seed, stream = epoch). A job stopped at any epoch and resumed
//! from its checkpoint ends bit-identical to an uninterrupted run. On CUDA,
//! `training.deterministic` turns on libtorch's deterministic algorithms and
//! deterministic cuDNN, autotuner off ([`crate::determinism`]); cuDNN itself
//! stays on. The worker sets `CUBLAS_WORKSPACE_CONFIG=:4096:8` for itself at
//! start-up. These switches are process-wide: a job sets both to its config's
//! values (on or off), and `worker join` runs each slot's jobs in a process of
//! its own ([`crate::slot_child`]), so no job runs with another's.
//!
//! Several jobs may run in one process on different threads and devices:
//! nothing here is shared between jobs except libtorch's generator, which is
//! seeded and drawn from under a lock, and the frame cache ([`crate::cache`]),
//! built at a job's start and read only, whose batches equal the binned ones.

pub mod command;
mod job;
pub mod metrics;
pub mod outputs;
pub mod protocol;
pub mod step;

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::DataKind;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::frames::FrameSpec;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};

use crate::checkpoint::CheckpointError;
use crate::devices::DeviceSpec;
use crate::lif::LifParams;
use crate::lif::fused::LifKernels;
use crate::loader::{LoadError, SampleRef};
use crate::model::{Architecture, ArchitectureError, NetConfig};
use crate::optim::OptimStateError;
use crate::weights::WeightsError;
pub use job::run_job_on;

/// File name of the weights after the last epoch.
pub const FINAL_WEIGHTS: &str = "final.safetensors";
/// File name of the weights the protocol selects.
pub const BEST_WEIGHTS: &str = "best.safetensors";
/// File name of the per-epoch metrics and the result.
pub const METRICS_FILE: &str = "metrics.json";
/// File name of the config that ran.
pub const CONFIG_FILE: &str = "config.toml";
/// Folder of the TensorBoard event files.
pub const TENSORBOARD_DIR: &str = "tensorboard";
/// File name of the checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Everything that defines one job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The experiment config (`[simulation]` and `[training]` are used).
    pub config: ExperimentConfig,
    /// Data set variant.
    pub variant: Variant,
    /// Seed: initialisation, shuffling, random crops.
    pub seed: u64,
    /// Fold number (0-based).
    pub fold: u32,
    /// The fold's recordings.
    pub split: FoldSplit,
    /// Where to train.
    pub device: DeviceSpec,
    /// Where the job's files go (and its checkpoint is looked for).
    pub out_dir: PathBuf,
    /// Weights to start from instead of the seeded initialisation.
    pub init: Option<PathBuf>,
    /// Which kernels run the network's LIF layers (`worker --lif-kernels`).
    pub lif_kernels: LifKernels,
    /// Fingerprint of the data set (hex) for the job's manifest; empty when
    /// not computed.
    pub data_fingerprint: String,
}

/// What an observer tells the job after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Checkpoint now and return [`TrainError::Stopped`].
    Stop,
}

/// Receives a job's progress.
pub trait Observer: Send {
    /// Called after every epoch with its metrics.
    fn on_epoch(&mut self, m: &EpochMetrics) -> Control;
    /// Called after a checkpoint was written.
    fn on_checkpoint(&mut self, _path: &Path) {}
    /// Called after each training batch with samples done and the epoch's total.
    fn on_batch(&mut self, _done: usize, _total: usize) {}
    /// Called when an epoch starts (1-based) out of `epochs`.
    fn on_epoch_start(&mut self, _epoch: u32, _epochs: u32) {}
    /// Whether the job should stop now, between epochs: a training script
    /// (docs/trainers.md) is asked at once instead of at its next epoch's
    /// end. `false` by default.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn on_epoch(&mut self, _m: &EpochMetrics) -> Control {
        Control::Continue
    }
}

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The observer asked to stop; the checkpoint holds `epoch` epochs.
    #[error("stopped after epoch {epoch} (checkpoint written)")]
    Stopped {
        /// Epochs completed.
        epoch: u32,
    },
    /// The training loss became NaN or infinite.
    #[error("training loss is not finite in epoch {epoch}")]
    NonFiniteLoss {
        /// The epoch.
        epoch: u32,
    },
    /// The device ran out of memory.
    #[error("out of memory on {device}: {message}")]
    OutOfMemory {
        /// The device.
        device: String,
        /// Whether it is a GPU (whose memory the other jobs of the card share).
        cuda: bool,
        /// libtorch's message.
        message: String,
    },
    /// libtorch failed otherwise.
    #[error("libtorch failed during {during}: {message}")]
    Torch {
        /// What was running.
        during: &'static str,
        /// libtorch's message (first line).
        message: String,
    },
    /// The data set could not be read.
    #[error(transparent)]
    Data(Box<DataError>),
    /// A sample could not be loaded.
    #[error(transparent)]
    Load(Box<LoadError>),
    /// The split leaves a set empty.
    #[error("the {set} set of this fold is empty")]
    EmptySet {
        /// `train`, `val` or `test`.
        set: &'static str,
    },
    /// Weights could not be read or written.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint's optimiser state does not fit.
    #[error("checkpoint {path}: {source}")]
    OptimizerState {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        source: OptimStateError,
    },
    /// The experiment's network does not fit its input or classes.
    #[error(transparent)]
    Network(#[from] ArchitectureError),
    /// The data root holds another data set than the experiment's `data.kind`.
    #[error("data.kind = \"{wanted}\", but the data root {root} holds {found}")]
    WrongData {
        /// The experiment's data set.
        wanted: DataKind,
        /// The root's data set.
        found: DataKind,
        /// The root.
        root: PathBuf,
    },
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> Self {
        TrainError::Data(Box::new(e))
    }
}

impl From<LoadError> for TrainError {
    fn from(e: LoadError) -> Self {
        TrainError::Load(Box::new(e))
    }
}

impl TrainError {
    /// Whether retrying the same job elsewhere would fail the same way (bad
    /// data or config, divergence, a model too large for the host). Out of
    /// memory on a GPU is not: the card's memory is shared with the other jobs
    /// of its slots and with their frame cache, so the attempt is ended, its
    /// memory given back, and the job retried (a transient failure, bounded by
    /// the coordinator's `protocol.max_attempts`).
    pub fn is_deterministic(&self) -> bool {
        match self {
            TrainError::OutOfMemory { cuda, .. } => !cuda,
            TrainError::Config(_)
            | TrainError::NonFiniteLoss { .. }
            | TrainError::EmptySet { .. }
            | TrainError::Network(_)
            | TrainError::WrongData { .. }
            | TrainError::OptimizerState { .. } => true,
            // An I/O error may be a file server's hiccup: the job gets another
            // attempt. Content that is wrong stays wrong.
            TrainError::Data(e) => !e.is_io(),
            TrainError::Load(e) => !e.is_io(),
            TrainError::Weights(e) => !matches!(e, WeightsError::Io { .. }),
            TrainError::Stopped { .. }
            | TrainError::Torch { .. }
            | TrainError::Checkpoint(_)
            | TrainError::Io { .. } => false,
        }
    }
}

/// Words of libtorch's messages for CUDA errors that leave the process's
/// CUDA context unusable: every later call of the process fails too, so the
/// attempt is retried in a fresh process.
pub const STICKY_CUDA_ERRORS: [&str; 9] = [
    "illegal memory access",
    "illegal address",
    "ecc error",
    "unspecified launch failure",
    "misaligned address",
    "illegal instruction",
    "hardware stack error",
    "device-side assert",
    "invalid program counter",
];

/// Whether a libtorch message reports a sticky CUDA error ([`STICKY_CUDA_ERRORS`]).
pub fn is_sticky_cuda_message(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    STICKY_CUDA_ERRORS.iter().any(|w| lower.contains(w))
}

impl TrainError {
    /// Whether the error poisoned the process's CUDA context (an illegal
    /// address, an ECC error, an unspecified launch failure...): the attempt
    /// is a transient failure and the process must not train again.
    pub fn is_sticky_device_error(&self) -> bool {
        match self {
            TrainError::Torch { message, .. } | TrainError::OutOfMemory { message, .. } => {
                is_sticky_cuda_message(message)
            }
            TrainError::Load(e) => is_sticky_cuda_message(&e.to_string()),
            _ => false,
        }
    }
}

/// The single checkpoint file of a job.
pub fn checkpoint_path(out_dir: &Path) -> PathBuf {
    out_dir.join(CHECKPOINT_FILE)
}

/// The network config a training config implies (DVS128 input, down-scaled by
/// `data.downscale`; 19 classes).
pub fn net_config(config: &ExperimentConfig, classes: usize) -> NetConfig {
    let s = &config.simulation;
    let side = 128 / i64::from(config.data.downscale.max(1));
    NetConfig {
        classes: classes as i64,
        width: side,
        height: side,
        lif: LifParams {
            tau: s.tau,
            vth: s.vth,
            a: s.a,
            ..LifParams::default()
        },
        ..NetConfig::default()
    }
}

/// The network a job trains: the experiment's `[network]` (the reference
/// SLANIMALSNet without one) on `net`'s input, classes and neuron parameters.
pub fn architecture(
    config: &ExperimentConfig,
    net: NetConfig,
) -> Result<Architecture, ArchitectureError> {
    Architecture::of(net, config.network.as_ref())
}

/// Frame specs for training (`steps`) and evaluation (`test_steps`).
pub fn frame_specs(config: &ExperimentConfig) -> (FrameSpec, FrameSpec) {
    let (s, t) = (&config.simulation, &config.training);
    let k = config.data.downscale.max(1) as usize;
    (
        FrameSpec::dvs128_downscaled(s.dt_ms, s.steps as usize, t.bin_mode, k),
        FrameSpec::dvs128_downscaled(s.dt_ms, t.test_steps as usize, t.bin_mode, k),
    )
}

/// Prefetch threads per job.
pub const PREFETCH_WORKERS: usize = 2;

/// Trains the job on a data set (see [`run_job_on`]).
pub fn run_job(
    spec: &JobSpec,
    data: &Dataset,
    observer: &mut dyn Observer,
) -> Result<JobResult, TrainError> {
    if data.kind() != spec.config.data.kind {
        return Err(TrainError::WrongData {
            wanted: spec.config.data.kind,
            found: data.kind(),
            root: data.root().to_owned(),
        });
    }
    let classes = data.class_names().len();
    let net = net_config(&spec.config, classes);
    let (train, test) = frame_specs(&spec.config);
    run_job_on(spec, data, &JobShape { net, train, test }, observer)
}

/// Network and frame shapes of a job (tests use small ones).
#[derive(Debug, Clone, Copy)]
pub struct JobShape {
    /// The network.
    pub net: NetConfig,
    /// Frames for training.
    pub train: FrameSpec,
    /// Frames for validation and testing.
    pub test: FrameSpec,
}

/// Identifies a job's checkpoint: what determines its result, minus paths.
/// The block list is part of it only when the experiment has `[network]`, so
/// the checkpoints of experiments without one keep their keys.
pub(crate) fn job_key(spec: &JobSpec, shape: &JobShape) -> String {
    let c = &spec.config;
    let mut key = serde_json::json!({
        "variant": spec.variant,
        "seed": spec.seed,
        "fold": spec.fold,
        "protocol": c.protocol.kind,
        "simulation": c.simulation,
        "training": c.training,
        "split": spec.split,
        "net": shape.net,
        "init": spec.init.is_some(),
    });
    if let (Some(network), Some(map)) = (&c.network, key.as_object_mut()) {
        map.insert(
            "network".to_owned(),
            serde_json::to_value(network).unwrap_or_default(),
        );
    }
    key.to_string()
}

/// The job's random generator for `epoch`: ChaCha8 keyed by the seed, stream =
/// epoch (so an epoch's draws do not depend on earlier epochs).
pub fn epoch_rng(seed: u64, epoch: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(epoch));
    rng
}

/// The training samples of an epoch: file order (or shuffled), with crop draws.
fn epoch_samples(spec: &JobSpec, base: &[SampleRef], epoch: u32) -> Vec<SampleRef> {
    let mut rng = epoch_rng(spec.seed, epoch);
    let mut samples = base.to_vec();
    if spec.config.training.shuffle {
        samples.shuffle(&mut rng);
    }
    if spec.config.training.random_crop {
        for s in &mut samples {
            s.crop_draw = Some(rng.next_u64());
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_gets_another_attempt_and_bad_content_does_not() {
        let io = DataError::Io {
            path: "recordings/user00_indoor.aedat".into(),
            source: std::io::Error::other("stale file handle"),
        };
        let bad = DataError::BadMetadata {
            path: "filelist.txt".into(),
            line: 3,
            what: "empty name".into(),
        };
        assert!(!TrainError::Data(Box::new(io)).is_deterministic());
        assert!(TrainError::Data(Box::new(bad)).is_deterministic());
        let load_io = LoadError::Data {
            sample: "user00_indoor_00".into(),
            source: Box::new(DataError::Io {
                path: "tags/user00_indoor.csv".into(),
                source: std::io::Error::other("timed out"),
            }),
        };
        assert!(!TrainError::Load(Box::new(load_io)).is_deterministic());
        let missing = LoadError::NoSuchSample {
            sample: "user00_indoor_25".into(),
            available: 19,
        };
        assert!(TrainError::Load(Box::new(missing)).is_deterministic());
    }

    #[test]
    fn a_poisoned_cuda_context_is_sticky_and_transient() {
        let illegal = TrainError::Torch {
            during: "a training step",
            message: "CUDA error: an illegal memory access was encountered".into(),
        };
        let ecc = TrainError::Torch {
            during: "a training step",
            message: "CUDA error: uncorrectable ECC error encountered".into(),
        };
        let launch = TrainError::Torch {
            during: "a training step",
            message: "CUDA error: unspecified launch failure".into(),
        };
        for e in [&illegal, &ecc, &launch] {
            assert!(e.is_sticky_device_error(), "{e}");
            assert!(!e.is_deterministic(), "{e}");
        }
        let shape = TrainError::Torch {
            during: "a training step",
            message: "shape '[2, 3]' is invalid for input of size 5".into(),
        };
        assert!(!shape.is_sticky_device_error());
        assert!(!TrainError::EmptySet { set: "val" }.is_sticky_device_error());
    }
}

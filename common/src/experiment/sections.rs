//! The plain sections of an experiment file (`[data]`, `[protocol]`,
//! `[simulation]`, `[training]`) with the reference project's defaults and
//! range checks that name the key.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dataset::kind::DataKind;
use crate::dataset::variant::Variant;
use crate::events::frames::BinMode;
use crate::experiment::error::{ConfigError, at_least_one, at_most, bounds, invalid};
use crate::experiment::verify::Verify;

/// How the test set is used (DESIGN.md, "Cross-validation protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolKind {
    /// Honest: pick the epoch with the lowest validation loss, report its test accuracy.
    TrainValTest,
    /// The reference's: best test accuracy over epochs (optimistic).
    TrainTest,
    /// The data set's own train/test split (DVS128 Gesture: users 1-23
    /// train, 24-29 test), one job per seed; the test accuracy after the last
    /// epoch, as the data set's figures are published.
    Official,
}

impl ProtocolKind {
    /// Every protocol, in the order reports list them.
    pub const ALL: [ProtocolKind; 3] = [
        ProtocolKind::TrainValTest,
        ProtocolKind::TrainTest,
        ProtocolKind::Official,
    ];

    /// The name used in files, flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolKind::TrainValTest => "train-val-test",
            ProtocolKind::TrainTest => "train-test",
            ProtocolKind::Official => "official",
        }
    }

    /// How many folds an experiment of this protocol runs: `folds`, or one
    /// (the data set's own split) for [`ProtocolKind::Official`].
    pub fn fold_count(self, folds: u32) -> u32 {
        match self {
            ProtocolKind::Official => 1,
            _ => folds,
        }
    }
}

impl fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProtocolKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProtocolKind::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ConfigError::Invalid {
                key: "protocol.kind".into(),
                message: format!(
                    "{s:?} is not one of {}",
                    ProtocolKind::ALL.map(ProtocolKind::as_str).join(", ")
                ),
            })
    }
}

/// Optimiser choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with PyTorch's defaults besides the learning rate.
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// The number format convolutions and linear layers compute in
/// (`[training] precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE float32 throughout: the reference.
    #[default]
    F32,
    /// Convolutions and linear layers in bfloat16 (their inputs, weights and
    /// biases cast, as PyTorch's autocast does); potentials, LIF state, loss
    /// and optimiser stay float32.
    Bf16,
}

impl Precision {
    /// Whether this is float32, the default (left out of a written config).
    pub fn is_default(&self) -> bool {
        *self == Precision::F32
    }

    /// The name a job's manifest records: `float32` or `bfloat16`.
    pub fn manifest_name(&self) -> &'static str {
        match self {
            Precision::F32 => "float32",
            Precision::Bf16 => "bfloat16",
        }
    }
}

/// `[data]`: where the data set lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Data set root (recordings/, tags/, filelist.txt, ...). Relative paths are
    /// taken from the config file's folder.
    pub root: PathBuf,
    /// Spatial down-scaling of the input: pixel `(x, y)` counts into
    /// `(x / k, y / k)`, so the network sees `128/k × 128/k` frames. 1 (the
    /// default, left out of the serialised config) is the reference; larger
    /// factors are for quick tests and exploration.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub downscale: u32,
    /// Which data set the root holds: `"sl-animals"` (the default, left out
    /// of the serialised config so job ids stay) or `"dvs-gesture"`.
    #[serde(default, skip_serializing_if = "DataKind::is_default")]
    pub kind: DataKind,
}

/// The down-scaling factors the network's layers accept (DVS128 divided by
/// these leaves at least one value after the second pooling).
pub const DOWNSCALE_FACTORS: [u32; 4] = [1, 2, 4, 8];

fn one() -> u32 {
    1
}

/// Whether a factor is 1 (left out of serialised configs and job ids).
pub(crate) fn is_one(v: &u32) -> bool {
    *v == 1
}

impl DataConfig {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !DOWNSCALE_FACTORS.contains(&self.downscale) {
            return Err(invalid(
                "data.downscale",
                format!("{} is not one of 1, 2, 4, 8", self.downscale),
            ));
        }
        Ok(())
    }
}

/// `[protocol]`: the cross-validation matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolConfig {
    /// Which protocol selects the reported model.
    pub kind: ProtocolKind,
    /// Number of folds over recordings.
    pub folds: u32,
    /// Seeds; each gives its own fold assignment and initialisation.
    pub seeds: Vec<u64>,
    /// Data set variants to run.
    pub variants: Vec<Variant>,
    /// Fraction of the training recordings held out for validation (train-val-test).
    pub val_fraction: f64,
    /// Attempts a job gets before it is marked failed.
    pub max_attempts: u32,
    /// Seconds an attempt may go without reporting a new epoch before the
    /// coordinator takes it back (its worker is told to stop it and the job
    /// goes back to the queue); 0 turns the check off. Left out of the
    /// serialised config at its default, so configs (and experiment ids)
    /// written before it existed stay the same.
    #[serde(skip_serializing_if = "is_default_epoch_timeout")]
    pub epoch_timeout_s: u32,
    /// The share of succeeded jobs trained again by another worker and
    /// compared (docs/semantics.md, "Verified results"); `None` (the
    /// default, left out of the serialised config) replays nothing. When
    /// set, every job trains deterministic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
}

/// [`ProtocolConfig::epoch_timeout_s`] by default: six hours, far beyond an
/// epoch of the reference model on a CPU (minutes), so that only a hung
/// trainer reaches it.
pub const DEFAULT_EPOCH_TIMEOUT_S: u32 = 6 * 3600;

fn is_default_epoch_timeout(v: &u32) -> bool {
    *v == DEFAULT_EPOCH_TIMEOUT_S
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            kind: ProtocolKind::TrainValTest,
            folds: 4,
            seeds: vec![0],
            variants: DataKind::default().variants().to_vec(),
            val_fraction: 0.15,
            max_attempts: 3,
            epoch_timeout_s: DEFAULT_EPOCH_TIMEOUT_S,
            verify: None,
        }
    }
}

/// `[simulation]`: time discretisation and LIF neuron parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Time steps per training sample (T).
    pub steps: u32,
    /// Step (window) length in milliseconds.
    pub dt_ms: u32,
    /// Width of the rectangular surrogate gradient.
    pub a: f64,
    /// Firing threshold.
    pub vth: f64,
    /// Membrane decay factor.
    pub tau: f64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            steps: 50,
            dt_ms: 30,
            a: 0.5,
            vth: 0.3,
            tau: 0.3,
        }
    }
}

/// `[training]`: optimisation and input settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Training batch size.
    pub batch: u32,
    /// Validation/test batch size.
    pub test_batch: u32,
    /// Epochs to train.
    pub epochs: u32,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum (ignored by Adam).
    pub momentum: f64,
    /// Multiply the learning rate by `lr_decay` every `lr_decay_every` epochs (0 = never).
    pub lr_decay_every: u32,
    /// Learning-rate decay factor.
    pub lr_decay: f64,
    /// How events become frames.
    pub bin_mode: BinMode,
    /// Train on random runs of `steps` windows instead of the first ones.
    pub random_crop: bool,
    /// T at validation/test time.
    pub test_steps: u32,
    /// Shuffle the training order every epoch (the reference does not).
    pub shuffle: bool,
    /// Write a checkpoint every this many epochs (0 = never).
    pub checkpoint_every: u32,
    /// Ask libtorch for deterministic kernels (slower on GPU).
    pub deterministic: bool,
    /// On CUDA, let cuDNN convolutions use TF32 (10-bit mantissa products,
    /// float32 sums) on GPUs that have it: PyTorch's default
    /// (`torch.backends.cudnn.conv.fp32_precision = "tf32"`), so a job matches
    /// the reference run on the same GPU. `false`: IEEE float32 convolutions.
    /// Matrix products stay IEEE float32 either way (PyTorch's default too).
    /// No effect on the CPU. Process-wide in libtorch: a job with `false`
    /// turns TF32 off for the other jobs of its process as well. Left out of
    /// the serialised config when `true`, so configs written before the switch
    /// existed keep their identity.
    #[serde(skip_serializing_if = "is_true")]
    pub tf32: bool,
    /// Early stopping: a job ends after this many epochs without a better
    /// validation accuracy than its best so far (train-val-test only). 0, the
    /// default, trains every epoch; left out of the serialised config then, so
    /// job ids of experiments without it stay as they were.
    #[serde(skip_serializing_if = "is_zero")]
    pub patience: u32,
    /// The number format of convolutions and linear layers: `"f32"` (the
    /// default, left out of the serialised config so job ids stand) or
    /// `"bf16"` (docs/semantics.md, "bfloat16").
    #[serde(skip_serializing_if = "Precision::is_default")]
    pub precision: Precision,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            batch: 8,
            test_batch: 32,
            epochs: 400,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.9,
            lr_decay_every: 0,
            lr_decay: 1.0,
            bin_mode: BinMode::Or,
            random_crop: false,
            test_steps: 50,
            shuffle: false,
            checkpoint_every: 1,
            deterministic: false,
            tf32: true,
            patience: 0,
            precision: Precision::F32,
        }
    }
}

impl SimulationConfig {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.steps == 0 {
            return Err(invalid("simulation.steps", "T must be at least 1"));
        }
        if self.dt_ms == 0 {
            return Err(invalid(
                "simulation.dt_ms",
                "the step must be at least 1 ms",
            ));
        }
        at_most("simulation.steps", self.steps, bounds::STEPS)?;
        at_most("simulation.dt_ms", self.dt_ms, bounds::DT_MS)?;
        if !(self.a.is_finite() && self.a > 0.0) {
            return Err(invalid(
                "simulation.a",
                format!("surrogate width {} must be > 0", self.a),
            ));
        }
        if !self.vth.is_finite() {
            return Err(invalid("simulation.vth", "must be a finite number"));
        }
        if !(self.tau.is_finite() && (0.0..=1.0).contains(&self.tau)) {
            return Err(invalid(
                "simulation.tau",
                format!("decay {} is not in [0, 1]", self.tau),
            ));
        }
        Ok(())
    }
}

impl TrainingConfig {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least_one("training.batch", self.batch)?;
        at_least_one("training.test_batch", self.test_batch)?;
        at_least_one("training.epochs", self.epochs)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid(
                "training.lr",
                format!("learning rate {} must be > 0", self.lr),
            ));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(invalid(
                "training.momentum",
                format!("{} is not in [0, 1)", self.momentum),
            ));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(invalid(
                "training.lr_decay",
                format!("{} is not in (0, 1]", self.lr_decay),
            ));
        }
        at_least_one("training.test_steps", self.test_steps)?;
        at_most("training.batch", self.batch, bounds::BATCH)?;
        at_most("training.test_batch", self.test_batch, bounds::BATCH)?;
        at_most("training.epochs", self.epochs, bounds::EPOCHS)?;
        at_most("training.patience", self.patience, bounds::EPOCHS)?;
        at_most("training.test_steps", self.test_steps, bounds::STEPS)?;
        Ok(())
    }
}

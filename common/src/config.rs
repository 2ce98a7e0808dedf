//! The experiment and training configuration (one TOML file serves both the
//! coordinator and `worker train`), with the reference project's defaults and
//! checks that reject bad values with a message naming the key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::datakind::DataKind;
use crate::network::NetworkSpec;
use crate::sweep::SweepSpec;

/// Which recordings a job uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Every recording of the file list.
    Whole,
    /// The file list without the S3 (`_indoor`) recordings (SL-Animals).
    Reduced,
    /// DVS128 Gesture's recordings under fluorescent light.
    Fluorescent,
    /// DVS128 Gesture's recordings under fluorescent and LED light.
    FluorescentLed,
    /// DVS128 Gesture's recordings under lab light.
    Lab,
    /// DVS128 Gesture's recordings under LED light.
    Led,
    /// DVS128 Gesture's recordings under natural light.
    Natural,
}

impl Variant {
    /// Every variant, in order.
    pub const ALL: [Variant; 7] = [
        Variant::Whole,
        Variant::Reduced,
        Variant::Fluorescent,
        Variant::FluorescentLed,
        Variant::Lab,
        Variant::Led,
        Variant::Natural,
    ];

    /// The name used in files, flags and reports (a lighting variant: the
    /// lighting as DVS128 Gesture's file names spell it).
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Whole => "whole",
            Variant::Reduced => "reduced",
            Variant::Fluorescent => "fluorescent",
            Variant::FluorescentLed => "fluorescent_led",
            Variant::Lab => "lab",
            Variant::Led => "led",
            Variant::Natural => "natural",
        }
    }

    /// Whether the variant keeps `recording` (by its name).
    pub fn keeps(self, recording: &str) -> bool {
        match self {
            Variant::Whole => true,
            Variant::Reduced => !recording.contains("_indoor"),
            lighting => crate::gesture::lighting_of(recording) == lighting.as_str(),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Variant {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ConfigError::Invalid {
                key: "variant".into(),
                message: format!(
                    "{s:?} is not one of {}",
                    Variant::ALL.map(Variant::as_str).join(", ")
                ),
            })
    }
}

/// How the test set is used (DESIGN.md, "Cross-validation protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProtocolKind {
    /// Honest: pick the epoch with the lowest validation loss, report its test accuracy.
    #[serde(rename = "train-val-test")]
    TrainValTest,
    /// The reference's: best test accuracy over epochs (optimistic).
    #[serde(rename = "train-test")]
    TrainTest,
    /// The data set's own train/test split (DVS128 Gesture: users 1-23
    /// train, 24-29 test), one job per seed; the test accuracy after the last
    /// epoch, as the data set's figures are published.
    #[serde(rename = "official")]
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

/// How events are counted into a frame (DESIGN.md step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinMode {
    /// 1.0 where a pixel saw any event in the window.
    #[serde(rename = "OR")]
    Or,
    /// The event count.
    #[serde(rename = "SUM")]
    Sum,
    /// The count divided by the largest count in the sample.
    #[serde(rename = "SUM_NORM")]
    SumNorm,
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

fn is_one(v: &u32) -> bool {
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
            variants: vec![Variant::Whole, Variant::Reduced],
            val_fraction: 0.15,
            max_attempts: 3,
            epoch_timeout_s: DEFAULT_EPOCH_TIMEOUT_S,
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
        }
    }
}

/// The whole file: `[data]`, `[protocol]`, `[simulation]`, `[training]`,
/// `[network]`, `[sweep]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// An optional human name for the experiment.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the data set lives.
    pub data: DataConfig,
    /// The cross-validation matrix.
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// Time and neuron parameters.
    #[serde(default)]
    pub simulation: SimulationConfig,
    /// Optimisation and input settings.
    #[serde(default)]
    pub training: TrainingConfig,
    /// `[network]`: the block list ([`crate::network`]); absent (and left out
    /// of the serialised config, so identities made before it existed stand)
    /// for the reference SLANIMALSNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// `[sweep]`: configurations to compare ([`crate::sweep`]); absent (and
    /// left out of the serialised config) for a single configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSpec>,
}

/// A config that could not be read or has a bad value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a value of the wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value is out of range.
    #[error("config key {key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `training.lr`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The experiment would plan more work than a [`bounds`] limit allows
    /// (checked before anything is expanded).
    #[error("config key {key}: {count} {what}; the limit is {limit}")]
    TooLarge {
        /// The dotted key, e.g. `sweep` or `sweep.training.lr`.
        key: String,
        /// What is counted, e.g. `"configurations"` or `"jobs"`.
        what: &'static str,
        /// How many the config asks for (saturated at `u64::MAX`).
        count: u64,
        /// The limit.
        limit: u64,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Upper bounds of a config's sizes: far above any sensible experiment, low
/// enough that a typo (or a hostile submission) cannot plan millions of jobs
/// or ask workers for a network that cannot fit in any memory.
pub mod bounds {
    /// Bytes of `name`.
    pub const NAME_BYTES: usize = 256;
    /// `protocol.folds`.
    pub const FOLDS: u32 = 100;
    /// Entries of `protocol.seeds`.
    pub const SEEDS: usize = 1000;
    /// `protocol.max_attempts`.
    pub const MAX_ATTEMPTS: u32 = 100;
    /// `simulation.steps` and `training.test_steps` (time steps per sample).
    pub const STEPS: u32 = 10_000;
    /// `simulation.dt_ms` (one minute).
    pub const DT_MS: u32 = 60_000;
    /// `training.batch` and `training.test_batch`.
    pub const BATCH: u32 = 4096;
    /// `training.epochs`.
    pub const EPOCHS: u32 = 100_000;
    /// Configurations of a sweep (and values of one swept key).
    pub const CONFIGURATIONS: usize = 10_000;
    /// Jobs of an experiment: configurations × seeds × variants × folds.
    pub const JOBS: u64 = 1_000_000;
    /// `protocol.epoch_timeout_s` (30 days).
    pub const EPOCH_TIMEOUT_S: u32 = 30 * 24 * 3600;
}

/// `Ok` when `value <= max`; else an error naming `key`.
fn at_most<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    max: T,
) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(
            key,
            format!("{value} is more than the limit {max}"),
        ));
    }
    Ok(())
}

impl ExperimentConfig {
    /// Reads, parses and validates a TOML file; a relative `data.root` is resolved
    /// against the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        if config.data.root.is_relative()
            && let Some(dir) = path.parent()
        {
            config.data.root = dir.join(&config.data.root);
        }
        Ok(config)
    }

    /// Parses and validates TOML text (paths are left as written).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        // A data set without the reduced variant narrows the default list.
        if !config
            .data
            .kind
            .variants()
            .contains(&Variant::Reduced.as_str())
            && config.protocol.variants == ProtocolConfig::default().variants
        {
            config.protocol.variants = vec![Variant::Whole];
        }
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML text (what ran, saved beside the weights).
    pub fn to_toml_string(&self) -> String {
        // Serialising plain structs of numbers, strings and enums cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The config one job runs: this one with the seed and variant lists
    /// narrowed to the job's own (a job's stored config does not grow with the
    /// experiment's matrix, and nothing in it concerns other jobs) and without
    /// `[sweep]` (a sweep's job runs one configuration, already applied).
    pub fn for_job(&self, seed: u64, variant: Variant) -> Self {
        let mut job = self.clone();
        job.protocol.seeds = vec![seed];
        job.protocol.variants = vec![variant];
        job.sweep = None;
        job
    }

    /// Checks every value's range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.protocol;
        if p.folds < 2 {
            return Err(invalid(
                "protocol.folds",
                format!("{} folds; need at least 2", p.folds),
            ));
        }
        if p.seeds.is_empty() {
            return Err(invalid("protocol.seeds", "no seeds given"));
        }
        if p.variants.is_empty() {
            return Err(invalid("protocol.variants", "no variants given"));
        }
        let offered = self.data.kind.variants();
        if let Some(v) = p.variants.iter().find(|v| !offered.contains(&v.as_str())) {
            return Err(invalid(
                "protocol.variants",
                format!(
                    "{v} is not offered by {} (it offers {})",
                    self.data.kind,
                    offered.join(", ")
                ),
            ));
        }
        if !(p.val_fraction > 0.0 && p.val_fraction < 1.0) {
            return Err(invalid(
                "protocol.val_fraction",
                format!("{} is not in (0, 1)", p.val_fraction),
            ));
        }
        if p.max_attempts == 0 {
            return Err(invalid("protocol.max_attempts", "must be at least 1"));
        }
        if p.kind == ProtocolKind::Official && !self.data.kind.has_official_split() {
            return Err(invalid(
                "protocol.kind",
                format!(
                    "\"official\": {} has no split of its own; use \"train-val-test\" or \"train-test\"",
                    self.data.kind
                ),
            ));
        }
        if self.training.patience > 0 && p.kind != ProtocolKind::TrainValTest {
            return Err(invalid(
                "training.patience",
                "early stopping watches validation accuracy: it needs protocol.kind = \"train-val-test\"",
            ));
        }
        if let Some(name) = &self.name {
            if name.len() > bounds::NAME_BYTES {
                return Err(invalid(
                    "name",
                    format!("{} bytes; the limit is {}", name.len(), bounds::NAME_BYTES),
                ));
            }
            crate::names::check_no_control(name).map_err(|m| invalid("name", m))?;
        }
        at_most("protocol.folds", p.folds, bounds::FOLDS)?;
        if p.seeds.len() > bounds::SEEDS {
            return Err(invalid(
                "protocol.seeds",
                format!("{} seeds; the limit is {}", p.seeds.len(), bounds::SEEDS),
            ));
        }
        at_most(
            "protocol.max_attempts",
            p.max_attempts,
            bounds::MAX_ATTEMPTS,
        )?;
        at_most(
            "protocol.epoch_timeout_s",
            p.epoch_timeout_s,
            bounds::EPOCH_TIMEOUT_S,
        )?;
        self.data.validate()?;
        self.simulation.validate()?;
        self.training.validate()?;
        self.validate_network(self.data.kind.classes() as u32)?;
        self.validate_sweep()
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
        if self.batch == 0 {
            return Err(invalid("training.batch", "must be at least 1"));
        }
        if self.test_batch == 0 {
            return Err(invalid("training.test_batch", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(invalid("training.epochs", "must be at least 1"));
        }
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
        if self.test_steps == 0 {
            return Err(invalid("training.test_steps", "must be at least 1"));
        }
        at_most("training.batch", self.batch, bounds::BATCH)?;
        at_most("training.test_batch", self.test_batch, bounds::BATCH)?;
        at_most("training.epochs", self.epochs, bounds::EPOCHS)?;
        at_most("training.patience", self.patience, bounds::EPOCHS)?;
        at_most("training.test_steps", self.test_steps, bounds::STEPS)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference() -> Result<(), ConfigError> {
        let c = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n")?;
        assert_eq!(c.simulation, SimulationConfig::default());
        assert_eq!((c.simulation.steps, c.simulation.dt_ms), (50, 30));
        assert_eq!(
            (c.training.batch, c.training.test_batch, c.training.epochs),
            (8, 32, 400)
        );
        assert_eq!(c.training.bin_mode, BinMode::Or);
        assert_eq!(c.protocol.kind, ProtocolKind::TrainValTest);
        Ok(())
    }

    #[test]
    fn a_name_with_control_characters_is_refused_naming_the_character() {
        let text = "name = \"run\\u001b[2J\"\n[data]\nroot = \"d\"\n";
        let err = ExperimentConfig::from_toml_str(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("name") && err.contains("U+001B"), "{err}");
    }

    #[test]
    fn patience_defaults_to_off_and_stays_out_of_the_serialised_config() {
        let text = "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\n";
        let c = ExperimentConfig::from_toml_str(text).unwrap();
        assert_eq!(c.training.patience, 0);
        assert!(!c.to_toml_string().contains("patience"));
        let c =
            ExperimentConfig::from_toml_str(&format!("{text}[training]\npatience = 5\n")).unwrap();
        assert_eq!(c.training.patience, 5);
        assert!(c.to_toml_string().contains("patience = 5"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[training]\nlr = -0.1", "training.lr"),
            ("[simulation]\nsteps = 0", "simulation.steps"),
            ("[training]\nbin_mode = \"MAX\"", "bin_mode"),
            ("[training]\nlearning_rate = 0.1", "learning_rate"),
            ("[protocol]\nfolds = 1", "protocol.folds"),
            ("[simulation]\nsteps = 10000000", "simulation.steps"),
            ("[simulation]\ndt_ms = 4000000000", "simulation.dt_ms"),
            ("[protocol]\nfolds = 101", "protocol.folds"),
            ("[protocol]\nmax_attempts = 1000", "protocol.max_attempts"),
            (
                "[protocol]\nepoch_timeout_s = 2592001",
                "protocol.epoch_timeout_s",
            ),
            ("[training]\nbatch = 100000", "training.batch"),
            ("[training]\ntest_batch = 100000", "training.test_batch"),
            ("[training]\nepochs = 1000000", "training.epochs"),
            ("[training]\ntest_steps = 10001", "training.test_steps"),
            (
                "[protocol]\nkind = \"train-test\"\n[training]\npatience = 3",
                "training.patience",
            ),
        ];
        for (body, key) in cases {
            let text = format!("[data]\nroot = \"d\"\n{body}\n");
            let err = match ExperimentConfig::from_toml_str(&text) {
                Ok(_) => panic!("accepted {body:?}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(key), "{err:?} does not name {key}");
        }
    }

    #[test]
    fn too_many_seeds_and_a_huge_name_are_refused_and_the_limits_themselves_taken() {
        let seeds: Vec<String> = (0..=bounds::SEEDS).map(|i| i.to_string()).collect();
        let text = format!(
            "[data]\nroot = \"d\"\n[protocol]\nseeds = [{}]\n",
            seeds.join(", ")
        );
        let err = ExperimentConfig::from_toml_str(&text)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("protocol.seeds"), "{err}");
        let text = format!(
            "name = \"{}\"\n[data]\nroot = \"d\"\n",
            "n".repeat(bounds::NAME_BYTES + 1)
        );
        let err = ExperimentConfig::from_toml_str(&text)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
        let at_limits = format!(
            "[data]\nroot = \"d\"\n[protocol]\nfolds = {}\n[simulation]\nsteps = {}\n[training]\nbatch = {}\nepochs = {}\ntest_steps = {}\n",
            bounds::FOLDS,
            bounds::STEPS,
            bounds::BATCH,
            bounds::EPOCHS,
            bounds::STEPS
        );
        assert!(ExperimentConfig::from_toml_str(&at_limits).is_ok());
    }

    #[test]
    fn round_trips_through_toml() -> Result<(), ConfigError> {
        let c = ExperimentConfig::from_toml_str(
            "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-test\"\nseeds = [1, 2]\n[training]\nbin_mode = \"SUM_NORM\"\n",
        )?;
        let back = ExperimentConfig::from_toml_str(&c.to_toml_string())?;
        assert_eq!(back, c);
        Ok(())
    }

    /// TF32 is on by default (PyTorch's default) and then absent from the
    /// written config, so a config's text, and every identity made from it,
    /// is what it was before the switch; off, it is written and read back.
    #[test]
    fn tf32_defaults_to_pytorchs_and_is_written_only_when_off() -> Result<(), ConfigError> {
        let on = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n")?;
        assert!(on.training.tf32);
        assert!(!on.to_toml_string().contains("tf32"));
        let off =
            ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n[training]\ntf32 = false\n")?;
        assert!(!off.training.tf32);
        let text = off.to_toml_string();
        assert!(text.contains("tf32 = false"), "{text}");
        assert_eq!(ExperimentConfig::from_toml_str(&text)?, off);
        Ok(())
    }
}

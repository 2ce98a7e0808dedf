//! The standalone commands `worker train` (one job, no coordinator) and
//! `worker evaluate` (accuracy of saved weights, optional per-sample dump).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::devices::{DeviceError, DeviceSpec, cuda_device_count};
use crate::lif::fused::LifKernels;
use crate::loader::source_samples;
use crate::model::Net;
use crate::train::step::{PassSpec, evaluate as evaluate_pass};
use crate::train::{
    Control, JobSpec, Observer, PREFETCH_WORKERS, TrainError, architecture, frame_specs,
    net_config, run_job,
};
use crate::weights::{self, WeightsError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::cv::CvError;
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::network_yaml::load_network_yaml;
use spikecv_common::experiment::plan::job_split;

/// Flags of `worker train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Experiment/training config (TOML, or the reference's network.yaml).
    #[arg(long)]
    pub config: PathBuf,
    /// Data set root (default: the config's `[data] root`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Data set variant: whole or reduced.
    #[arg(long)]
    pub variant: Variant,
    /// Seed (fold assignment, initialisation, shuffling, crops).
    #[arg(long)]
    pub seed: u64,
    /// Fold, 0-based, in scikit-learn's KFold order.
    #[arg(long)]
    pub fold: u32,
    /// Output folder (weights, metrics, TensorBoard events, checkpoint).
    #[arg(long)]
    pub out: PathBuf,
    /// Weights to start from instead of the seeded initialisation.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Memory for the frame cache per device, in GiB (`auto`: half the RAM on
    /// the CPU, half the free memory of a GPU when its cache is built; 0:
    /// off). A data set that does not fit is binned batch by batch instead,
    /// with a warning.
    #[arg(long, default_value = "auto", value_parser = crate::cache::parse_budget)]
    pub frame_cache_gib: crate::cache::Budget,
}

/// Flags of `worker evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Experiment/training config (TOML, or the reference's network.yaml).
    #[arg(long)]
    pub config: PathBuf,
    /// Data set root (default: the config's `[data] root`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Weights (safetensors with PyTorch state-dict names).
    #[arg(long)]
    pub weights: PathBuf,
    /// Write every sample's firing rates to this JSON file.
    #[arg(long)]
    pub dump_outputs: Option<PathBuf>,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Evaluate this variant's recordings (default: the whole file list).
    #[arg(long, conflicts_with = "recordings")]
    pub variant: Option<Variant>,
    /// Evaluate only these recordings (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub recordings: Vec<String>,
}

/// Why a standalone command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data set is unreadable.
    #[error(transparent)]
    Data(Box<DataError>),
    /// The fold cannot be made.
    #[error(transparent)]
    Cv(#[from] CvError),
    /// The device flag is wrong.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Training failed.
    #[error(transparent)]
    Train(Box<TrainError>),
    /// Weights could not be read.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A `--recordings` entry is not in the file list.
    #[error(
        "recording {name:?} is in none of {}",
        lists.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    UnknownRecording {
        /// The name given.
        name: String,
        /// The files listing the data set's recordings.
        lists: Vec<PathBuf>,
    },
    /// Writing output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (`-` for stdout).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl From<DataError> for CommandError {
    fn from(e: DataError) -> Self {
        CommandError::Data(Box::new(e))
    }
}

impl From<TrainError> for CommandError {
    fn from(e: TrainError) -> Self {
        CommandError::Train(Box::new(e))
    }
}

/// Loads a TOML config or, for `.yaml`/`.yml`, the reference's network.yaml.
pub fn load_config(path: &Path) -> Result<ExperimentConfig, ConfigError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => load_network_yaml(path),
        _ => ExperimentConfig::load(path),
    }
}

/// Parses `--device` and checks that the GPU exists.
pub fn parse_device(text: &str) -> Result<DeviceSpec, DeviceError> {
    let device: DeviceSpec = text.parse()?;
    if let DeviceSpec::Cuda(i) = device {
        let available = cuda_device_count();
        if i >= available {
            return Err(DeviceError::Missing {
                asked: i,
                available,
            });
        }
    }
    Ok(device)
}

fn open_data(config: &mut ExperimentConfig, data: &Option<PathBuf>) -> Result<Dataset, DataError> {
    if let Some(root) = data {
        config.data.root = root.clone();
    }
    Dataset::open(&config.data.root)
}

fn stdout_line(text: &str) -> Result<(), CommandError> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(|source| CommandError::Io {
        path: PathBuf::from("-"),
        source,
    })
}

/// Draws a progress bar per epoch on stderr and logs each epoch's figures.
#[derive(Debug, Default)]
pub struct ProgressObserver {
    bar: Option<ProgressBar>,
    epoch: u32,
    epochs: u32,
}

impl Observer for ProgressObserver {
    fn on_epoch_start(&mut self, epoch: u32, epochs: u32) {
        self.epoch = epoch;
        self.epochs = epochs;
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} samples, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.enable_steady_tick(Duration::from_millis(500));
        self.bar = Some(bar);
    }

    fn on_batch(&mut self, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    fn on_epoch(&mut self, m: &EpochMetrics) -> Control {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!(
            epoch = m.epoch,
            epochs = self.epochs,
            train_loss = m.train_loss,
            train_accuracy = m.train_accuracy,
            val_loss = m.val_loss,
            val_accuracy = m.val_accuracy,
            test_loss = m.test_loss,
            test_accuracy = m.test_accuracy,
            samples_per_second = m.samples_per_second,
            "epoch done"
        );
        Control::Continue
    }

    fn on_checkpoint(&mut self, path: &Path) {
        tracing::debug!(path = %path.display(), "checkpoint written");
    }
}

/// `worker train`: computes the fold's split and trains it into `--out`
/// (resuming from the checkpoint there, if any) with the LIF layers on
/// `lif_kernels` (`worker --lif-kernels`). Prints the result.
pub fn train(args: &TrainArgs, lif_kernels: LifKernels) -> Result<(), CommandError> {
    crate::cache::set_budget(args.frame_cache_gib);
    let mut config = load_config(&args.config)?;
    let device = parse_device(&args.device)?;
    let data = open_data(&mut config, &args.data)?;
    let recordings = data.recordings(args.variant);
    let split = job_split(&config, &recordings, args.seed, args.fold)?;
    tracing::info!(
        train = split.train.len(),
        val = split.val.len(),
        test = split.test.len(),
        protocol = %config.protocol.kind,
        %device,
        "fold {} of seed {} ({})",
        args.fold,
        args.seed,
        args.variant
    );
    let spec = JobSpec {
        config,
        variant: args.variant,
        seed: args.seed,
        fold: args.fold,
        split,
        device,
        out_dir: args.out.clone(),
        init: args.init.clone(),
        lif_kernels,
        data_fingerprint: data.fingerprint().unwrap_or_default(),
    };
    let result = run_job(&spec, &data, &mut ProgressObserver::default())?;
    let label = if result.optimistic {
        "best test accuracy over epochs (optimistic)"
    } else {
        "test accuracy at the lowest validation loss"
    };
    stdout_line(&format!(
        "{label}: {:.4} (epoch {}), test loss {:.4}; outputs in {}",
        result.test_accuracy,
        result.best_epoch,
        result.test_loss,
        args.out.display()
    ))
}

/// One sample of `--dump-outputs`.
#[derive(Debug, Serialize)]
pub struct SampleOutput {
    /// `<recording>_<NN>`.
    pub sample: String,
    /// True class.
    pub class: usize,
    /// Firing rate of each output neuron.
    pub rates: Vec<f32>,
}

/// `worker evaluate`: accuracy of saved weights over the chosen recordings
/// (default: the whole file list), at `training.test_steps`, with the LIF
/// layers on `lif_kernels` (`worker --lif-kernels`).
pub fn evaluate(args: &EvaluateArgs, lif_kernels: LifKernels) -> Result<(), CommandError> {
    let mut config = load_config(&args.config)?;
    let device = parse_device(&args.device)?.to_tch();
    let data = open_data(&mut config, &args.data)?;
    let all = data.recordings(Variant::WHOLE);
    let recordings = if !args.recordings.is_empty() {
        for name in &args.recordings {
            if !all.contains(name) {
                return Err(CommandError::UnknownRecording {
                    name: name.clone(),
                    lists: data.kind().list_files(data.root()),
                });
            }
        }
        args.recordings.clone()
    } else {
        data.recordings(args.variant.unwrap_or(Variant::WHOLE))
    };
    let classes = data.class_names().len();
    let arch = architecture(&config, net_config(&config, classes)).map_err(TrainError::from)?;
    let (_vs, mut net) = Net::seeded(arch, 0, device);
    net.set_lif_kernels(lif_kernels);
    net.set_precision(config.training.precision);
    net.set_conv_layout(crate::model::ConvLayout::for_device(device));
    weights::load(&net, &args.weights)?;
    let samples = source_samples(&data, &recordings, classes).map_err(TrainError::from)?;
    let (_, test_frames) = frame_specs(&config);
    let pass = PassSpec {
        frames: test_frames,
        batch: config.training.test_batch as usize,
        workers: PREFETCH_WORKERS,
        device,
        classes,
    };
    let eval = evaluate_pass(&data, &samples, &pass, &net, args.dump_outputs.is_some())?;
    let correct: u32 = eval.confusion.iter().enumerate().map(|(i, r)| r[i]).sum();
    stdout_line(&format!(
        "accuracy {:.4} ({correct}/{}) over {} recordings, loss {:.4}",
        eval.accuracy,
        samples.len(),
        recordings.len(),
        eval.loss
    ))?;
    if let (Some(path), Some(rates)) = (&args.dump_outputs, eval.rates) {
        let dump: Vec<SampleOutput> = samples
            .iter()
            .zip(rates)
            .map(|(s, rates)| SampleOutput {
                sample: s.name(),
                class: s.class,
                rates,
            })
            .collect();
        let json = serde_json::to_string_pretty(&dump).unwrap_or_default();
        std::fs::write(path, json).map_err(|source| CommandError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

//! `worker reproduce`: trains one job of a report again, from the report's
//! own configuration over the data given, and compares the new run with the
//! recorded one: bit for bit where both manifests allow it, else within the
//! tolerance of docs/semantics.md ([`spikecv_common::experiment::replay`]).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::experiment::manifest::{Agreement, Manifest, Provenance};
use spikecv_common::experiment::plan::{PlanError, plan_configurations, read_root_file_list};
use spikecv_common::experiment::replay::{Comparison, compare};

use crate::devices::DeviceError;
use crate::lif::fused::LifKernels;
use crate::settings::{ProcessSettings, SettingsError};
use crate::train::command::{ProgressObserver, parse_device};
use crate::train::outputs::provenance;
use crate::train::{JobSpec, TrainError, run_job};
use crate::trainer::replay::{run_again, script_trainer};

/// Flags of `worker reproduce`.
#[derive(Debug, clap::Args)]
pub struct ReproduceArgs {
    /// The report (`coordinator report --format json`) that holds the job.
    #[arg(long)]
    pub report: PathBuf,
    /// The job's id, as in the report's `jobs[].id`.
    #[arg(long)]
    pub job: String,
    /// Data set root (the same data the job read: its id depends on it).
    #[arg(long)]
    pub data: PathBuf,
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Folder for the new run's files.
    #[arg(long, default_value = "spikecv-reproduce")]
    pub out: PathBuf,
    /// The training scripts this worker runs: a job run by a script is
    /// reproduced only with that script registered `deterministic = true`.
    #[command(flatten)]
    pub trainers: crate::trainer::registry::TrainerArgs,
}

/// Why a job could not be reproduced, or was not.
#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    /// The report cannot be read.
    #[error("report {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The report is not a report's JSON.
    #[error("report {path} is not the JSON of `coordinator report --format json`: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: serde_json::Error,
    },
    /// The report has no such job.
    #[error("report {path} has no job {job}")]
    NoJob {
        /// The report.
        path: PathBuf,
        /// The id asked for.
        job: String,
    },
    /// The job has no result, or no manifest to compare against.
    #[error("job {job} cannot be reproduced: {why}")]
    Unusable {
        /// The job.
        job: String,
        /// Why.
        why: String,
    },
    /// The report's configuration does not load.
    #[error("the report's configuration: {0}")]
    Config(#[from] ConfigError),
    /// The data set cannot be read.
    #[error("data set {}: {source}", path.display())]
    Data {
        /// The root.
        path: PathBuf,
        /// Why.
        source: Box<DataError>,
    },
    /// The report's configuration cannot be planned over the data.
    #[error("planning the report's configuration over {}: {source}", data.display())]
    Plan {
        /// The root.
        data: PathBuf,
        /// Why.
        source: Box<PlanError>,
    },
    /// The report's configuration over this data does not give the job.
    #[error(
        "job {job} is not among the jobs the report's configuration gives over {} (fingerprint {fingerprint}): other data, or another spikecv version",
        data.display()
    )]
    NotPlanned {
        /// The job.
        job: String,
        /// The root.
        data: PathBuf,
        /// The data's fingerprint.
        fingerprint: String,
    },
    /// The device flag is wrong.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// libtorch refused the job's switches.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Training failed.
    #[error("training the job again: {0}")]
    Train(Box<TrainError>),
    /// The job ran a training script that could not run it again here.
    #[error(transparent)]
    Script(#[from] crate::trainer::replay::ReplayError),
    /// The comparison could not be printed.
    #[error("writing the comparison to stdout: {0}")]
    Output(std::io::Error),
    /// The new run differs from the recorded one.
    #[error("job {job} was not reproduced: {differ} of {checked} figures differ")]
    Mismatch {
        /// The job.
        job: String,
        /// Figures that differ.
        differ: usize,
        /// Figures compared.
        checked: usize,
    },
}

/// The parts of a report this command reads.
#[derive(Debug, Deserialize)]
struct ReportFile {
    experiment: ReportExperiment,
    jobs: Vec<ReportJob>,
}

#[derive(Debug, Deserialize)]
struct ReportExperiment {
    config_toml: String,
}

/// A job as the report's JSON has it (`JobRecord` of the coordinator).
#[derive(Debug, Deserialize)]
struct ReportJob {
    id: String,
    status: String,
    best_epoch: Option<u32>,
    test_accuracy: Option<f64>,
    test_loss: Option<f64>,
    val_accuracy: Option<f64>,
    val_loss: Option<f64>,
    train_seconds: Option<f64>,
    #[serde(default)]
    epochs: Vec<EpochMetrics>,
    confusion: Option<Vec<Vec<u32>>>,
    #[serde(default)]
    provenance: Option<Provenance>,
}

impl ReportJob {
    /// The recorded result and provenance, when the job has both.
    fn recorded(&self) -> Result<(JobResult, Provenance), String> {
        if self.status != "succeeded" {
            return Err(format!("its status is {}, not succeeded", self.status));
        }
        let provenance = self.provenance.clone().ok_or(
            "the report has no manifest for it (its worker predates manifests)".to_owned(),
        )?;
        let (Some(best_epoch), Some(test_accuracy), Some(test_loss)) =
            (self.best_epoch, self.test_accuracy, self.test_loss)
        else {
            return Err("the report has no selected model for it".to_owned());
        };
        let result = JobResult {
            best_epoch,
            test_accuracy,
            test_loss,
            val_accuracy: self.val_accuracy,
            val_loss: self.val_loss,
            confusion: self.confusion.clone().unwrap_or_default(),
            train_seconds: self.train_seconds.unwrap_or(0.0),
            epochs: self.epochs.clone(),
            optimistic: false,
        };
        Ok((result, provenance))
    }
}

fn read_report(path: &Path) -> Result<ReportFile, ReproduceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReproduceError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReproduceError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// The job's spec from the report's configuration over `--data`, found by
/// its id (which names the configuration, split and data).
fn job_spec(
    args: &ReproduceArgs,
    config_toml: &str,
    lif_kernels: LifKernels,
) -> Result<JobSpec, ReproduceError> {
    let mut config = ExperimentConfig::from_toml_str(config_toml)?;
    config.data.root = args.data.clone();
    let data_err = |source| ReproduceError::Data {
        path: args.data.clone(),
        source: Box::new(source),
    };
    let fingerprint = Dataset::open(&args.data)
        .and_then(|d| d.fingerprint())
        .map_err(data_err)?;
    let plan_err = |source| ReproduceError::Plan {
        data: args.data.clone(),
        source: Box::new(source),
    };
    let files = read_root_file_list(&args.data).map_err(plan_err)?;
    // Experiments are planned with the data's fingerprint when the
    // coordinator had one, without it otherwise: either way the id decides.
    for fp in [Some(fingerprint.as_str()), None] {
        let plan = plan_configurations(&config, &files, fp).map_err(plan_err)?;
        let Some(job) = plan.jobs.iter().find(|j| j.id.as_str() == args.job) else {
            continue;
        };
        let Some(job_config) = plan.job_config(job) else {
            continue;
        };
        return Ok(JobSpec {
            config: job_config,
            variant: job.variant,
            seed: job.seed,
            fold: job.fold,
            split: job.split.clone(),
            device: parse_device(&args.device)?,
            out_dir: args.out.clone(),
            init: None,
            lif_kernels,
            data_fingerprint: fingerprint.clone(),
        });
    }
    Err(ReproduceError::NotPlanned {
        job: args.job.clone(),
        data: args.data.clone(),
        fingerprint,
    })
}

/// One line describing where a run ran.
fn describe(m: &Manifest) -> String {
    format!(
        "{} ({}, {}), {} threads, libtorch {}, spikecv {}, {}",
        m.device,
        m.device_model,
        m.instruction_set,
        m.threads,
        m.libtorch,
        m.spikecv_version,
        if m.switches.deterministic {
            "deterministic"
        } else {
            "not deterministic"
        }
    )
}

/// The comparison as the command prints it.
pub fn render(job: &str, recorded: &Manifest, ours: &Manifest, c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "job {job}");
    let _ = writeln!(out, "recorded:   {}", describe(recorded));
    let _ = writeln!(out, "reproduced: {}", describe(ours));
    match &c.agreement {
        Agreement::Bitwise => {
            let _ = writeln!(out, "comparison: bit for bit");
        }
        Agreement::Tolerance { reasons } => {
            let why: Vec<String> = reasons
                .iter()
                .map(|d| format!("{} {} vs {}", d.field, d.ours, d.theirs))
                .collect();
            let _ = writeln!(
                out,
                "comparison: within tolerance (not bit for bit: {})",
                why.join("; ")
            );
        }
    }
    for check in &c.checks {
        let verdict = if check.agrees { "same  " } else { "DIFFER" };
        let _ = writeln!(
            out,
            "  {verdict} {}: recorded {}, reproduced {}",
            check.what, check.first, check.second
        );
    }
    let differ = c.differences().count();
    if differ == 0 {
        let _ = writeln!(out, "reproduced: all {} figures agree", c.checks.len());
    } else {
        let _ = writeln!(
            out,
            "NOT reproduced: {differ} of {} figures differ",
            c.checks.len()
        );
    }
    out
}

/// `worker reproduce`: trains the job again (with the recorded thread count
/// and the job's switches) and prints the comparison; an error when the runs
/// differ.
pub fn reproduce(args: &ReproduceArgs, lif_kernels: LifKernels) -> Result<(), ReproduceError> {
    let report = read_report(&args.report)?;
    let job = report
        .jobs
        .iter()
        .find(|j| j.id == args.job)
        .ok_or_else(|| ReproduceError::NoJob {
            path: args.report.clone(),
            job: args.job.clone(),
        })?;
    let (recorded, recorded_provenance) =
        job.recorded().map_err(|why| ReproduceError::Unusable {
            job: args.job.clone(),
            why,
        })?;
    let spec = job_spec(args, &report.experiment.config_toml, lif_kernels)?;
    ProcessSettings::of(&spec.config.training).apply()?;
    let threads = recorded_provenance.manifest.threads;
    if threads > 0 {
        tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
    }
    // A fresh run: no checkpoint of an earlier reproduction is resumed.
    let _ = std::fs::remove_file(crate::train::checkpoint_path(&spec.out_dir));
    let data = Dataset::open(&args.data).map_err(|source| ReproduceError::Data {
        path: args.data.clone(),
        source: Box::new(source),
    })?;
    let (result, ours) = match script_trainer(&args.job, &spec, &args.trainers)? {
        Some((trainer, grace)) => run_again(&args.job, &spec, &data, &trainer, grace, &args.out)?,
        None => {
            let result = run_job(&spec, &data, &mut ProgressObserver::default())
                .map_err(|e| ReproduceError::Train(Box::new(e)))?;
            (result, provenance(&spec))
        }
    };
    let comparison = compare((&recorded, &recorded_provenance), (&result, &ours));
    let text = render(
        &args.job,
        &recorded_provenance.manifest,
        &ours.manifest,
        &comparison,
    );
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(ReproduceError::Output)?;
    let differ = comparison.differences().count();
    if differ > 0 {
        return Err(ReproduceError::Mismatch {
            job: args.job.clone(),
            differ,
            checked: comparison.checks.len(),
        });
    }
    Ok(())
}

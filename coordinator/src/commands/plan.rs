//! `coordinator plan --experiment FILE [--json]`: the job matrix with each job's
//! train/val/test recordings; nothing is run and no database is touched.
//!
//! Without `[sweep]`, `--json` prints a JSON array, one object per job (the
//! shape DESIGN.md fixes). With a sweep it prints an object
//! `{"configurations": [{"label", "values", "baseline", "jobs": [...]}]}`,
//! each configuration with its jobs in the same per-job shape; the table form
//! heads each configuration's jobs with its label.
//!
//! Only the data root's `filelist.txt` is needed. When the whole data set is
//! there, its fingerprint is part of the job ids (as `serve` computes them);
//! `--no-fingerprint` skips hashing the recordings.

use std::io::Write;
use std::path::PathBuf;

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::plan::{Plan, PlanEntry, PlanError, PlannedJob, plan_from_root};

/// Flags of `coordinator plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The experiment config (TOML).
    #[arg(long)]
    pub experiment: PathBuf,
    /// Print a JSON array, one object per job.
    #[arg(long)]
    pub json: bool,
    /// Use this data root instead of the config's `[data] root`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Do not fingerprint the data set (ids then match a coordinator that has no
    /// fingerprint either).
    #[arg(long)]
    pub no_fingerprint: bool,
}

/// Why `coordinator plan` failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanCmdError {
    /// The config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plan could not be made (no file list, too few recordings, ...).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The data set could not be fingerprinted.
    #[error("fingerprinting the data set: {0}")]
    Fingerprint(#[from] DataError),
    /// Writing the output failed.
    #[error("writing the plan: {0}")]
    Io(#[from] std::io::Error),
    /// JSON encoding failed.
    #[error("encoding the plan as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The fingerprint of the config's data root when every file of it is there.
fn fingerprint(config: &ExperimentConfig) -> Result<Option<String>, PlanCmdError> {
    match Dataset::open(&config.data.root) {
        Ok(ds) => Ok(Some(ds.fingerprint()?)),
        Err(e) => {
            tracing::warn!(root = %config.data.root.display(), error = %e,
                "data set incomplete; job ids are planned without a data fingerprint");
            Ok(None)
        }
    }
}

/// The plan of `args`: configurations and jobs.
pub fn plan_jobs(args: &PlanArgs) -> Result<Plan, PlanCmdError> {
    let mut config = ExperimentConfig::load(&args.experiment)?;
    if let Some(root) = &args.data {
        config.data.root = root.clone();
    }
    let fp = if args.no_fingerprint {
        None
    } else {
        // Checked first so a missing file list gives the plan's clear error.
        spikecv_common::experiment::plan::read_root_file_list(&config.data.root)?;
        fingerprint(&config)?
    };
    Ok(plan_from_root(&config, fp.as_deref())?)
}

/// Runs `coordinator plan`, writing to `out`.
pub fn run(args: &PlanArgs, out: &mut dyn Write) -> Result<(), PlanCmdError> {
    let plan = plan_jobs(args)?;
    // A sweep has at least one swept key; a plain experiment none.
    let sweep = plan.configurations.iter().any(|c| !c.values.is_empty());
    if args.json {
        if sweep {
            let value = serde_json::json!({ "configurations": plan.configuration_entries() });
            serde_json::to_writer_pretty(&mut *out, &value)?;
        } else {
            let entries: Vec<PlanEntry> = plan.jobs.iter().map(PlanEntry::from).collect();
            serde_json::to_writer_pretty(&mut *out, &entries)?;
        }
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<16}  {:<7}  {:>4}  {:>4}  {:<14}  {:>5}  {:>3}  {:>4}  test recordings",
        "job", "variant", "seed", "fold", "protocol", "train", "val", "test"
    )?;
    for (i, configuration) in plan.configurations.iter().enumerate() {
        if sweep {
            let mark = if configuration.baseline {
                " (baseline)"
            } else {
                ""
            };
            writeln!(out, "configuration {}{mark}", configuration.label)?;
        }
        for j in plan.jobs.iter().filter(|j| j.configuration == i) {
            write_job(out, j)?;
        }
    }
    if sweep {
        writeln!(
            out,
            "{} jobs in {} configurations",
            plan.jobs.len(),
            plan.configurations.len()
        )?;
    } else {
        writeln!(out, "{} jobs", plan.jobs.len())?;
    }
    Ok(())
}

/// One row of the table.
fn write_job(out: &mut dyn Write, j: &PlannedJob) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16}  {:<7}  {:>4}  {:>4}  {:<14}  {:>5}  {:>3}  {:>4}  {}",
        j.id,
        j.variant,
        j.seed,
        j.fold,
        j.protocol,
        j.split.train.len(),
        j.split.val.len(),
        j.split.test.len(),
        j.split.test.join(" ")
    )
}

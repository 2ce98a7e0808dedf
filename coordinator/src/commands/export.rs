//! `coordinator export mlflow --state DB --tracking-uri URI [--experiment ID]
//! [--mlflow-experiment NAME]`: writes an experiment into an MLflow tracking
//! server through [`crate::export`], one run per job under a parent run
//! holding the report's aggregates. Exporting again updates the same runs.

use std::io::Write;
use std::path::PathBuf;

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::{Configuration, configurations};

use crate::export::{held, mlflow, payload, rest};
use crate::report::build_report;
use crate::report::from_store::{self, FromStoreError};
use crate::report::model::ExperimentRecord;
use crate::report::render::json::{JsonError, render_json};

/// Flags of `coordinator export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Where to export to.
    #[command(subcommand)]
    pub target: ExportTarget,
}

/// Export destinations.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ExportTarget {
    /// An MLflow tracking server (`mlflow server`), through its REST API.
    Mlflow(MlflowArgs),
}

/// Flags of `coordinator export mlflow`.
#[derive(Debug, Clone, clap::Args)]
pub struct MlflowArgs {
    /// The coordinator's state database (read-only; safe while it runs).
    #[arg(long)]
    pub state: PathBuf,
    /// The tracking server, e.g. `http://127.0.0.1:5000`.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: String,
    /// spikecv experiment (id or name); may be left out when the store holds one.
    #[arg(long)]
    pub experiment: Option<String>,
    /// MLflow experiment to write into (created when missing); default: the
    /// spikecv experiment's name, else its id.
    #[arg(long)]
    pub mlflow_experiment: Option<String>,
}

/// Why `coordinator export` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] FromStoreError),
    /// No experiment to export, or not the one asked for.
    #[error("state database {path}: {detail}")]
    Experiment {
        /// The store.
        path: PathBuf,
        /// What is wrong: none, several, or not the one named.
        detail: String,
    },
    /// The report could not be rendered as JSON.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The tracking server refused or could not be reached.
    #[error(transparent)]
    Mlflow(#[from] mlflow::MlflowError),
    /// The tracking URI is not usable.
    #[error(transparent)]
    Rest(#[from] rest::RestError),
    /// Printing the summary failed.
    #[error("cannot write the summary: {0}")]
    Write(std::io::Error),
}

/// The experiment `wanted` (id or name), or the only one.
fn select(
    path: &std::path::Path,
    all: Vec<ExperimentRecord>,
    wanted: Option<&str>,
) -> Result<ExperimentRecord, ExportError> {
    let ids: Vec<String> = all.iter().map(|e| e.id.clone()).collect();
    let fail = |detail: String| ExportError::Experiment {
        path: path.to_owned(),
        detail,
    };
    match wanted {
        Some(w) => {
            let mut matching: Vec<ExperimentRecord> = all
                .into_iter()
                .filter(|e| e.id == w || e.name.as_deref() == Some(w))
                .collect();
            match matching.len() {
                1 => Ok(matching.remove(0)),
                0 => Err(fail(format!(
                    "no experiment has id or name {w:?}; it holds: {}",
                    ids.join(", ")
                ))),
                n => Err(fail(format!(
                    "{n} experiments are named {w:?}; choose one by id: {}",
                    matching
                        .iter()
                        .map(|e| e.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
        None if all.len() == 1 => all
            .into_iter()
            .next()
            .ok_or_else(|| fail("holds no experiment".into())),
        None if all.is_empty() => Err(fail("holds no experiment".into())),
        None => Err(fail(format!(
            "holds {} experiments; choose one with --experiment: {}",
            ids.len(),
            ids.join(", ")
        ))),
    }
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs `coordinator export`: exports, then prints one line saying what was
/// written where.
pub fn run(args: &ExportArgs, stdout: &mut dyn Write) -> Result<(), ExportError> {
    let ExportTarget::Mlflow(args) = &args.target;
    let client = rest::Client::new(&args.tracking_uri)?;
    let conn = from_store::open_read_only(&args.state)?;
    let experiment = select(
        &args.state,
        from_store::experiments(&conn)?,
        args.experiment.as_deref(),
    )?;
    let jobs = from_store::jobs(&conn, &experiment.id)?;
    let now_ms = now_unix_ms();
    let report = build_report(&experiment, &jobs, now_ms.div_euclid(1000));
    let configs: Vec<Configuration> = ExperimentConfig::from_toml_str(&experiment.config_toml)
        .ok()
        .and_then(|c| configurations(&c).ok())
        .unwrap_or_default();
    let mut plans = Vec::with_capacity(report.jobs.len());
    for job in &report.jobs {
        let held = held::held_files(&job.id, held::stored_result(&conn, &job.id)?);
        let config = configs.get(job.configuration).map(|c| &c.config);
        plans.push(payload::job_run(&report, job, config, held));
    }
    let parent = payload::parent_run(&report, render_json(&report)?.into_bytes());
    let name = args
        .mlflow_experiment
        .clone()
        .unwrap_or_else(|| experiment.name.clone().unwrap_or(experiment.id.clone()));
    let started = std::time::Instant::now();
    let summary = mlflow::export(&client, &name, &experiment.id, &parent, &plans, now_ms)?;
    tracing::info!(
        experiment = %experiment.id,
        mlflow_experiment = %summary.experiment_id,
        runs = plans.len() + 1,
        seconds = started.elapsed().as_secs_f64(),
        "exported to MLflow"
    );
    writeln!(
        stdout,
        "exported {} to MLflow experiment {name:?} (id {}) at {}: parent run {}, {} job runs ({} created, {} updated, {} unchanged, {} replaced)",
        experiment.id,
        summary.experiment_id,
        client.base(),
        summary.parent_run_id,
        plans.len(),
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.replaced,
    )
    .map_err(ExportError::Write)
}

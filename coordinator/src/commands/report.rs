//! `coordinator report --state DB [--experiment ID] --format md|json|csv [--out DIR]`:
//! reads the store (read-only), builds the report and prints it, or writes it
//! with its plots into `--out`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::report::compute::report::build_report;
use crate::report::compute::verification::{VerificationInput, verification};
use crate::report::render::csv::render_csv;
use crate::report::render::json::{JsonError, render_json};
use crate::report::render::markdown::render_markdown;
use crate::report::render::plots::{PlotError, write_plots};
use crate::store::read_only::{self as from_store, FromStoreError};
use crate::store::verify_rows;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown, for people.
    Md,
    /// JSON (docs/report-schema.md), for programs.
    Json,
    /// CSV, one row per job.
    Csv,
}

impl ReportFormat {
    /// File extension of the format.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Json => "json",
            ReportFormat::Csv => "csv",
        }
    }
}

/// Flags of `coordinator report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The coordinator's state database (read-only; safe while it runs).
    #[arg(long)]
    pub state: PathBuf,
    /// Experiment id; may be left out when the store holds one experiment.
    #[arg(long)]
    pub experiment: Option<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ReportFormat,
    /// Write `report.<format>` and the plots (SVG and PNG) into this folder
    /// instead of printing the report.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Why `coordinator report` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportCmdError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] FromStoreError),
    /// No experiment in the store.
    #[error("state database {path} holds no experiment")]
    NoExperiment {
        /// The store.
        path: PathBuf,
    },
    /// The store holds several experiments and none was chosen.
    #[error("state database holds {} experiments; choose one with --experiment: {}", ids.len(), ids.join(", "))]
    Ambiguous {
        /// The ids present.
        ids: Vec<String>,
    },
    /// The chosen experiment is not in the store.
    #[error("experiment {id} is not in the state database; it holds: {}", known.join(", "))]
    UnknownExperiment {
        /// The id asked for.
        id: String,
        /// The ids present.
        known: Vec<String>,
    },
    /// JSON serialisation failed.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// A plot failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// Writing the report failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file (or `-` for stdout).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What the verification section is computed from, read from the store.
fn verification_input(
    conn: &rusqlite::Connection,
    experiment: &str,
) -> Result<VerificationInput, FromStoreError> {
    Ok(VerificationInput {
        states: verify_rows::states_of_experiment(conn, experiment)?,
        runs: verify_rows::runs_of_experiment(conn, experiment)?,
        suspects: verify_rows::suspects(conn)?,
    })
}

/// Runs the command: prints the report to `stdout`, or writes it and its plots
/// into `--out` and prints one line saying where.
pub fn run(args: &ReportArgs, stdout: &mut dyn Write) -> Result<(), ReportCmdError> {
    let conn = from_store::open_read_only(&args.state)?;
    let all = from_store::experiments(&conn)?;
    let ids: Vec<String> = all.iter().map(|e| e.id.clone()).collect();
    let experiment = match &args.experiment {
        Some(id) => all.into_iter().find(|e| &e.id == id).ok_or_else(|| {
            ReportCmdError::UnknownExperiment {
                id: id.clone(),
                known: ids.clone(),
            }
        })?,
        None => match all.len() {
            0 => {
                return Err(ReportCmdError::NoExperiment {
                    path: args.state.clone(),
                });
            }
            1 => all
                .into_iter()
                .next()
                .ok_or_else(|| ReportCmdError::NoExperiment {
                    path: args.state.clone(),
                })?,
            _ => return Err(ReportCmdError::Ambiguous { ids }),
        },
    };
    let jobs = from_store::jobs(&conn, &experiment.id)?;
    let mut report = build_report(&experiment, &jobs, now_unix());
    report.verification = verification(&verification_input(&conn, &experiment.id)?);
    tracing::info!(
        experiment = %experiment.id,
        jobs = jobs.len(),
        succeeded = report.progress.succeeded,
        planned = report.progress.planned,
        "report built"
    );

    let Some(out_dir) = &args.out else {
        let text = match args.format {
            ReportFormat::Md => render_markdown(&report, &[]),
            ReportFormat::Json => render_json(&report)?,
            ReportFormat::Csv => render_csv(&report),
        };
        return stdout
            .write_all(text.as_bytes())
            .map_err(|source| ReportCmdError::Write {
                path: PathBuf::from("-"),
                source,
            });
    };
    let plots = write_plots(&report, out_dir)?;
    let relative: Vec<PathBuf> = plots
        .iter()
        .map(|p| p.path.strip_prefix(out_dir).unwrap_or(&p.path).to_owned())
        .collect();
    let text = match args.format {
        ReportFormat::Md => {
            let refs: Vec<&Path> = relative.iter().map(PathBuf::as_path).collect();
            render_markdown(&report, &refs)
        }
        ReportFormat::Json => render_json(&report)?,
        ReportFormat::Csv => render_csv(&report),
    };
    let path = out_dir.join(format!("report.{}", args.format.extension()));
    std::fs::write(&path, text).map_err(|source| ReportCmdError::Write {
        path: path.clone(),
        source,
    })?;
    writeln!(
        stdout,
        "wrote {} and {} plot files into {}",
        path.display(),
        plots.len(),
        out_dir.display()
    )
    .map_err(|source| ReportCmdError::Write {
        path: PathBuf::from("-"),
        source,
    })
}

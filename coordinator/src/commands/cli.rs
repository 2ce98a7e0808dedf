//! The `coordinator` binary's command tree (clap) and the one entry point that
//! runs the command parsed.

use std::future::Future;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spikecv_common::exit;

use super::serve::ServeCmdError;
use super::{control, data, plan, serve, status, submit};

/// spikecv coordinator: hands out cross-validation jobs (variant × seed × fold)
/// to workers over gRPC, keeps their state in an embedded database and reports
/// mean ± std accuracy.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The coordinator's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve an experiment to workers over gRPC until Ctrl-C or SIGTERM.
    Serve(Box<serve::ServeArgs>),
    /// Add an experiment to a running coordinator (finished jobs are reused).
    Submit(submit::SubmitArgs),
    /// Show a running coordinator's jobs by state, workers, throughput and ETA.
    Status(status::StatusArgs),
    /// Cancel unfinished jobs of a running coordinator: one job, one
    /// configuration of an experiment, or a whole experiment.
    Cancel(control::CancelArgs),
    /// Put an experiment's failed (or cancelled) jobs back in the queue.
    Retry(control::RetryArgs),
    /// Workers' own credentials on a running coordinator: add, list, remove,
    /// enrolment tokens, and enrolling a node.
    Worker(super::workers::WorkerArgs),
    /// Report an experiment's results from the state database (Markdown, JSON
    /// or CSV; with --out, also plots), during a run or after it.
    Report(super::report::ReportArgs),
    /// Data set tools: synth, import, slice, frames, inspect, render.
    Data(data::DataArgs),
    /// Print the job matrix (variant × seed × fold) with each job's train/val/test
    /// recordings; nothing is run.
    Plan(plan::PlanArgs),
    /// Export an experiment to an experiment tracker (MLflow): one run per job
    /// under a parent run with the report's aggregates; again updates the same runs.
    Export(super::export::ExportArgs),
}

/// Runs the command `cli` names, writing its output to stdout; `serve` and
/// `status --watch` stop when `shutdown` resolves.
pub async fn run(
    cli: Cli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            serve::run(&args, shutdown).await?;
        }
        Command::Submit(args) => {
            submit::run(&args, &mut std::io::stdout().lock())
                .await
                .with_context(|| format!("submit {}", args.experiment.display()))?;
        }
        Command::Cancel(args) => {
            control::run_cancel(&args, &mut std::io::stdout().lock()).await?;
        }
        Command::Retry(args) => {
            control::run_retry(&args, &mut std::io::stdout().lock()).await?;
        }
        Command::Worker(args) => {
            super::workers::run(&args, &mut std::io::stdout().lock()).await?;
        }
        Command::Status(args) => {
            status::run(&args, &mut std::io::stdout(), shutdown).await?;
        }
        Command::Plan(args) => {
            plan::run(&args, &mut std::io::stdout().lock())
                .with_context(|| format!("plan of {}", args.experiment.display()))?;
        }
        Command::Report(args) => {
            super::report::run(&args, &mut std::io::stdout().lock())
                .with_context(|| format!("report from {}", args.state.display()))?;
        }
        Command::Export(args) => {
            super::export::run(&args, &mut std::io::stdout().lock()).context("export")?;
        }
        Command::Data(args) => {
            data::run(&args, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

/// The process exit code of a failed command ([`spikecv_common::exit`]):
/// `serve`'s refusals are [`exit::REFUSED`], everything else
/// [`exit::FAILURE`].
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error
        .downcast_ref::<ServeCmdError>()
        .map_or(exit::FAILURE, ServeCmdError::exit_code)
}

//! The `coordinator` binary: parses flags, starts tracing, runs one command.

use anyhow::Context;
use std::process::ExitCode;

use clap::Parser;
use spikecv_common::exit;
use spikecv_coordinator::cli::{Cli, Command};
use spikecv_coordinator::serve_cmd::ServeCmdError;

#[tokio::main]
async fn main() -> ExitCode {
    spikecv_common::logging::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            let code = e
                .downcast_ref::<ServeCmdError>()
                .map_or(exit::FAILURE, ServeCmdError::exit_code);
            ExitCode::from(code)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            spikecv_coordinator::serve_cmd::run(&args, shutdown_signal()).await?;
        }
        Command::Submit(args) => {
            spikecv_coordinator::submit_cmd::run(&args, &mut std::io::stdout().lock())
                .await
                .with_context(|| format!("submit {}", args.experiment.display()))?;
        }
        Command::Cancel(args) => {
            spikecv_coordinator::control_cmd::run_cancel(&args, &mut std::io::stdout().lock())
                .await?;
        }
        Command::Retry(args) => {
            spikecv_coordinator::control_cmd::run_retry(&args, &mut std::io::stdout().lock())
                .await?;
        }
        Command::Status(args) => {
            spikecv_coordinator::status_cmd::run(&args, &mut std::io::stdout(), shutdown_signal())
                .await?;
        }
        Command::Plan(args) => {
            spikecv_coordinator::plan_cmd::run(&args, &mut std::io::stdout().lock())
                .with_context(|| format!("plan of {}", args.experiment.display()))?;
        }
        Command::Report(args) => {
            spikecv_coordinator::report::cmd::run(&args, &mut std::io::stdout().lock())
                .with_context(|| format!("report from {}", args.state.display()))?;
        }
        Command::Export(args) => {
            spikecv_coordinator::export::run(&args, &mut std::io::stdout().lock())
                .context("export")?;
        }
        Command::Data(args) => {
            spikecv_coordinator::commands::data::run(&args, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

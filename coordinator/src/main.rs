//! The `coordinator` binary: parses flags, starts tracing, runs one command.

use std::process::ExitCode;

use clap::Parser;
use spikecv_coordinator::commands::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    spikecv_common::logging::init();
    let cli = Cli::parse();
    match cli::run(cli, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
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

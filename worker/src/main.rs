//! The `worker` binary: parses flags, starts tracing, runs one command.

use clap::Parser;
use spikecv_worker::cli::{Cli, Command};
use spikecv_worker::determinism::CUBLAS_WORKSPACE;

fn main() -> anyhow::Result<()> {
    set_cublas_workspace();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// Deterministic cuBLAS needs its workspace setting in the environment before
/// CUDA starts; a value the user set is kept.
#[allow(unsafe_code)]
fn set_cublas_workspace() {
    let (key, value) = CUBLAS_WORKSPACE;
    if std::env::var_os(key).is_none() {
        // SAFETY: called first thing in `main`, before any other thread
        // (the async runtime, libtorch's pools) exists.
        unsafe { std::env::set_var(key, value) };
    }
}

async fn run() -> anyhow::Result<()> {
    spikecv_common::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Join(args) => {
            let outcome = spikecv_worker::join::run_command(args).await?;
            tracing::info!(?outcome, "worker finished");
        }
        Command::Train(args) => spikecv_worker::train::command::train(&args)?,
        Command::Evaluate(args) => spikecv_worker::train::command::evaluate(&args)?,
    }
    Ok(())
}

//! The `worker` binary: parses flags, starts tracing, runs one command.

use std::process::ExitCode;

use clap::Parser;
use spikecv_common::exit;
use spikecv_worker::allocator::{self, AllocatorSetting};
use spikecv_worker::cli::{Cli, Command};
use spikecv_worker::determinism::CUBLAS_WORKSPACE;
use spikecv_worker::join::JoinError;
use spikecv_worker::train::command::CommandError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any other thread exists: glibc fixes its arena limit when a second
    // thread first allocates.
    let allocator = (!cli.return_freed_memory).then(allocator::keep_freed_memory);
    set_cublas_workspace();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli, allocator)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// [`exit::REFUSED`] for a refusal a restart will not cure, else [`exit::FAILURE`].
fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(join) = e.downcast_ref::<JoinError>() {
        return join.exit_code();
    }
    match e.downcast_ref::<CommandError>() {
        Some(CommandError::Config(_) | CommandError::Device(_)) => exit::REFUSED,
        _ => exit::FAILURE,
    }
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

async fn run(cli: Cli, allocator: Option<AllocatorSetting>) -> anyhow::Result<()> {
    spikecv_common::logging::init();
    match allocator {
        Some(setting) => tracing::debug!(?setting, "large freed blocks kept for reuse"),
        None => {
            tracing::debug!("large freed blocks returned to the system (--return-freed-memory)")
        }
    }
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

//! The `worker` binary: parses flags, starts tracing, runs one command.

use std::process::ExitCode;

use clap::Parser;
use spikecv_common::exit;
use spikecv_worker::allocator::{self, HostHeapError};
use spikecv_worker::cli::{Cli, Command};
use spikecv_worker::determinism::CUBLAS_WORKSPACE;
use spikecv_worker::join::JoinError;
use spikecv_worker::train::command::CommandError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before libtorch allocates anything that training frees.
    let host_heap = (!cli.system_allocator).then(allocator::install_host_heap);
    set_cublas_workspace();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli, host_heap)));
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

async fn run(cli: Cli, host_heap: Option<Result<(), HostHeapError>>) -> anyhow::Result<()> {
    spikecv_common::logging::init();
    match host_heap {
        Some(Ok(())) => tracing::debug!("CPU tensors in the host heap"),
        Some(Err(e)) => tracing::warn!(error = %e, "CPU tensors left to the C allocator"),
        None => tracing::debug!("CPU tensors left to the C allocator (--system-allocator)"),
    }
    let kernels = cli.lif_kernels;
    match cli.command {
        Command::Join(args) => {
            let outcome =
                spikecv_worker::join::run_command(args, kernels, cli.system_allocator).await?;
            tracing::info!(?outcome, "worker finished");
        }
        Command::Train(args) => spikecv_worker::train::command::train(&args, kernels)?,
        Command::Evaluate(args) => spikecv_worker::train::command::evaluate(&args, kernels)?,
        Command::Reproduce(args) => spikecv_worker::reproduce::reproduce(&args, kernels)?,
        Command::SlotChild(args) => spikecv_worker::slot_child::serve(&args, kernels)?,
    }
    if let Some(heap) = allocator::host_heap_stats() {
        tracing::debug!(?heap, "host heap at exit");
    }
    Ok(())
}

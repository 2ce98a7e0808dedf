//! Command-line flags of the `worker` binary.

use clap::{Parser, Subcommand};

/// spikecv worker: trains the STBP spiking CNN on SL-Animals-DVS style data with
/// libtorch, one cross-validation job per GPU slot (or on the CPU).
#[derive(Debug, Parser)]
#[command(name = "worker", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The worker's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join a coordinator and run the jobs it hands out, one per GPU slot.
    Join(JoinArgs),
}

/// Flags of `worker join`.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The coordinator's gRPC address, e.g. http://head-node:50051.
    #[arg(long)]
    pub coordinator: String,
    /// Devices to run on: `cpu`, `all` (every CUDA device, CPU if none), or `0,1,...`.
    #[arg(long, default_value = "all")]
    pub gpus: String,
    /// Jobs run at once on each device.
    #[arg(long, default_value_t = 1)]
    pub jobs_per_gpu: usize,
    /// A name for this worker (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
}

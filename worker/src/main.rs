//! The `worker` binary: parses flags, starts tracing, runs one command.

use clap::Parser;
use spikecv_worker::cli::{Cli, Command};
use spikecv_worker::join::{JoinConfig, register};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Join(args) => {
            let config =
                JoinConfig::new(args.coordinator, &args.gpus, args.jobs_per_gpu, args.name)?;
            let id = register(&config).await?;
            tracing::info!(worker_id = %id, slots = config.slots.len(), "registered");
        }
    }
    Ok(())
}

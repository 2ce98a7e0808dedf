//! The `worker` binary: parses flags, starts tracing, runs one command.

use clap::Parser;
use spikecv_worker::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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

//! Command-line flags of the `coordinator` binary, turned into validated configs.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

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
    Serve(ServeArgs),
}

/// Flags of `coordinator serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on for workers and admin calls.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
}

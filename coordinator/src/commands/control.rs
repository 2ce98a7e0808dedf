//! `coordinator cancel` and `coordinator retry`: stop work, or put it back in
//! the queue, on a running coordinator (admin token); each prints what
//! changed.

use std::io::Write;

use spikecv_common::proto::client::CallError;
use spikecv_common::proto::{CancelRequest, RetryRequest};

use super::client_args::ClientArgs;

/// Flags of `coordinator cancel`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["job", "experiment"])))]
pub struct CancelArgs {
    /// The coordinator.
    #[command(flatten)]
    pub client: ClientArgs,
    /// One job, by id.
    pub job: Option<String>,
    /// An experiment, by id or name: all its unfinished jobs (or, with
    /// --configuration, those of one configuration).
    #[arg(long, conflicts_with = "job")]
    pub experiment: Option<String>,
    /// A configuration of the experiment, by label (as `plan` and the report
    /// show it) or index.
    #[arg(long, requires = "experiment")]
    pub configuration: Option<String>,
}

/// Flags of `coordinator retry`.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The coordinator.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The experiment, by id or name.
    #[arg(long)]
    pub experiment: String,
    /// Requeue the failed jobs (the default when neither flag is given).
    #[arg(long)]
    pub failed: bool,
    /// Requeue the cancelled jobs.
    #[arg(long)]
    pub cancelled: bool,
    /// Requeue the pruned jobs (they train from epoch 0).
    #[arg(long)]
    pub pruned: bool,
}

fn print_jobs(out: &mut dyn Write, what: &str, jobs: &[String]) -> std::io::Result<()> {
    writeln!(out, "{what} {} job(s)", jobs.len())?;
    for job in jobs {
        writeln!(out, "  {job}")?;
    }
    Ok(())
}

/// Cancels what the flags name and prints the jobs cancelled.
pub async fn run_cancel(args: &CancelArgs, out: &mut dyn Write) -> Result<(), CallError> {
    let options = args.client.options()?;
    let mut client = options.admin_client()?;
    let r = client
        .cancel(CancelRequest {
            job_id: args.job.clone().unwrap_or_default(),
            experiment: args.experiment.clone().unwrap_or_default(),
            configuration: args.configuration.clone().unwrap_or_default(),
        })
        .await
        .map_err(CallError::at(&options.url))?
        .into_inner();
    print_jobs(out, "cancelled", &r.job_ids)?;
    Ok(())
}

/// Requeues the experiment's failed (and/or cancelled, pruned) jobs and
/// prints them.
pub async fn run_retry(args: &RetryArgs, out: &mut dyn Write) -> Result<(), CallError> {
    let options = args.client.options()?;
    let mut client = options.admin_client()?;
    let r = client
        .retry(RetryRequest {
            experiment: args.experiment.clone(),
            failed: args.failed || !(args.cancelled || args.pruned),
            cancelled: args.cancelled,
            pruned: args.pruned,
        })
        .await
        .map_err(CallError::at(&options.url))?
        .into_inner();
    print_jobs(out, "requeued", &r.job_ids)?;
    Ok(())
}

//! `coordinator submit`: sends an experiment to a running coordinator.

use std::io::Write;
use std::path::PathBuf;

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::proto::SubmitRequest;
use spikecv_common::proto::client::CallError;

use super::client_args::ClientArgs;

/// Flags of `coordinator submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The coordinator to submit to.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The experiment (TOML); a relative `[data] root` is resolved against the
    /// file's folder, as the coordinator sees the file system.
    #[arg(long)]
    pub experiment: PathBuf,
}

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The experiment file is invalid.
    #[error(transparent)]
    Config(#[from] spikecv_common::experiment::error::ConfigError),
    /// The client, the call or printing the answer failed.
    #[error(transparent)]
    Coordinator(#[from] CallError),
}

/// The config text sent for an experiment file: parsed, validated, its data
/// root resolved against the file's folder and made absolute.
pub fn normalized_config(
    path: &std::path::Path,
) -> Result<(ExperimentConfig, String), SubmitError> {
    let mut config = ExperimentConfig::load(path)?;
    if let Ok(abs) = std::path::absolute(&config.data.root) {
        config.data.root = abs;
    }
    let text = config.to_toml_string();
    Ok((config, text))
}

/// Submits and prints the experiment id and job counts.
pub async fn run(args: &SubmitArgs, out: &mut dyn Write) -> Result<(), SubmitError> {
    let (_, text) = normalized_config(&args.experiment)?;
    Ok(send(args, text, out).await?)
}

/// Sends the config text and prints the coordinator's answer.
async fn send(args: &SubmitArgs, text: String, out: &mut dyn Write) -> Result<(), CallError> {
    let options = args.client.options()?;
    let mut client = options.admin_client()?;
    let r = client
        .submit(SubmitRequest { config_toml: text })
        .await
        .map_err(CallError::at(&options.url))?
        .into_inner();
    writeln!(
        out,
        "experiment {}: {} new jobs, {} reused",
        r.experiment_id, r.jobs_new, r.jobs_reused
    )?;
    Ok(())
}

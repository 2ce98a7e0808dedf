//! Turning a submitted experiment TOML into a scheduler [`Submission`]: parse,
//! plan over the data root and fingerprint the data set, on a blocking thread.

use spikecv_common::dataset::Dataset;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::error::ConfigError;
use tonic::Status;

use super::actor::status_of;
use crate::scheduler::Submission;

/// The data set's fingerprint could not be computed at submission.
#[derive(Debug, thiserror::Error)]
#[error(
    "data.root {root}: cannot fingerprint the data set ({message}); the coordinator must read \
     the data its workers train on to check theirs, or run with --allow-unfingerprinted-data \
     to accept any worker's data"
)]
pub struct FingerprintError {
    /// The data root.
    pub root: std::path::PathBuf,
    /// Why it could not be read.
    pub message: String,
}

/// The fingerprint of the data set at `root`. When it cannot be computed:
/// `None` with a warning if `allow_unfingerprinted` (workers are then not
/// checked against it), else an error naming the root.
pub fn fingerprint_of(
    root: &std::path::Path,
    allow_unfingerprinted: bool,
) -> Result<Option<String>, FingerprintError> {
    match Dataset::open(root).and_then(|d| d.fingerprint()) {
        Ok(fp) => Ok(Some(fp)),
        Err(e) if allow_unfingerprinted => {
            tracing::warn!(root = %root.display(), error = %e, "cannot fingerprint the data set; workers' data will not be checked");
            Ok(None)
        }
        Err(e) => Err(FingerprintError {
            root: root.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// Parses and plans an experiment (its `[data] root` must be absolute or
/// relative to the coordinator's working folder); a data set that cannot be
/// fingerprinted is INVALID_ARGUMENT unless `allow_unfingerprinted`, an
/// experiment past a size limit (configurations, jobs) RESOURCE_EXHAUSTED.
pub async fn prepare(text: String, allow_unfingerprinted: bool) -> Result<Submission, Status> {
    tokio::task::spawn_blocking(move || {
        let config = ExperimentConfig::from_toml_str(&text).map_err(|e| match e {
            ConfigError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
            _ => Status::invalid_argument(e.to_string()),
        })?;
        let fp = fingerprint_of(&config.data.root, allow_unfingerprinted)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Submission::from_config(config, text, fp).map_err(|e| status_of(&e))
    })
    .await
    .map_err(|e| Status::internal(format!("planning failed: {e}")))?
}

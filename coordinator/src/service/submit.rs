//! Turning a submitted experiment TOML into a scheduler [`Submission`]: parse,
//! plan over the data root and fingerprint the data set, on a blocking thread.

use spikecv_common::config::ExperimentConfig;
use spikecv_common::dataset::Dataset;
use tonic::Status;

use super::actor::status_of;
use crate::scheduler::Submission;

/// The fingerprint of the data set at `root`, or `None` (with a warning) when it
/// cannot be opened here: then workers are not checked against it.
pub fn fingerprint_of(root: &std::path::Path) -> Option<String> {
    match Dataset::open(root).and_then(|d| d.fingerprint()) {
        Ok(fp) => Some(fp),
        Err(e) => {
            tracing::warn!(root = %root.display(), error = %e, "cannot fingerprint the data set; workers' data will not be checked");
            None
        }
    }
}

/// Parses and plans an experiment (its `[data] root` must be absolute or
/// relative to the coordinator's working folder).
pub async fn prepare(text: String) -> Result<Submission, Status> {
    tokio::task::spawn_blocking(move || {
        let config = ExperimentConfig::from_toml_str(&text)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fp = fingerprint_of(&config.data.root);
        Submission::from_config(config, text, fp).map_err(|e| status_of(&e))
    })
    .await
    .map_err(|e| Status::internal(format!("planning failed: {e}")))?
}

//! The files a job leaves in its output folder besides weights and checkpoint:
//! `metrics.json`, `config.toml`, and TensorBoard scalars.

use serde::Serialize;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::metrics;

use crate::tensorboard::EventWriter;
use crate::train::{CONFIG_FILE, FINAL_WEIGHTS, JobSpec, METRICS_FILE, TrainError};
use crate::weights::write_atomic;

/// The content of `metrics.json`.
#[derive(Debug, Serialize)]
pub struct MetricsFile<'a> {
    /// Data set variant.
    pub variant: String,
    /// Job seed.
    pub seed: u64,
    /// Fold number.
    pub fold: u32,
    /// Protocol name.
    pub protocol: &'static str,
    /// Device the job ran on last.
    pub device: String,
    /// Training recordings in training order.
    pub train: &'a [String],
    /// Validation recordings.
    pub val: &'a [String],
    /// Test recordings.
    pub test: &'a [String],
    /// What the job ran on and with (libtorch's switches as they were when
    /// it ended), and the hash of its final weights.
    #[serde(flatten)]
    pub provenance: Provenance,
    /// Per-epoch metrics and the selection.
    pub result: &'a JobResult,
}

/// The provenance of `spec`'s job, run in this process (its final weights
/// written).
pub fn provenance(spec: &JobSpec) -> Provenance {
    let weights = spec.out_dir.join(FINAL_WEIGHTS);
    Provenance {
        manifest: crate::manifest::job_manifest(
            spec.device,
            spec.config.training.precision,
            &spec.data_fingerprint,
        ),
        weights_sha256: crate::manifest::file_sha256(&weights).unwrap_or_else(|e| {
            tracing::warn!(path = %weights.display(), error = %e, "cannot hash the final weights");
            String::new()
        }),
    }
}

/// Writes `metrics.json` and `config.toml` into the job's folder.
pub fn write_job_files(spec: &JobSpec, result: &JobResult) -> Result<(), TrainError> {
    write_job_files_with(spec, result, provenance(spec))
}

/// [`write_job_files`] with the job's provenance given (a training script's:
/// its manifest names the script, its hash is the script's last checkpoint's).
pub fn write_job_files_with(
    spec: &JobSpec,
    result: &JobResult,
    provenance: Provenance,
) -> Result<(), TrainError> {
    let file = MetricsFile {
        variant: spec.variant.to_string(),
        seed: spec.seed,
        fold: spec.fold,
        protocol: spec.config.protocol.kind.as_str(),
        device: spec.device.to_string(),
        train: &spec.split.train,
        val: &spec.split.val,
        test: &spec.split.test,
        provenance,
        result,
    };
    let json = serde_json::to_string_pretty(&file).unwrap_or_default();
    write_atomic(&spec.out_dir.join(METRICS_FILE), json.as_bytes())?;
    write_atomic(
        &spec.out_dir.join(CONFIG_FILE),
        spec.config.to_toml_string().as_bytes(),
    )?;
    Ok(())
}

/// Logs an epoch's scalars under their [`metrics::epoch`] names (a failed
/// write only loses log lines), each LIF layer's firing rates as
/// `firing_rate/train/<layer>` and `firing_rate/eval/<layer>`.
pub fn log_epoch(board: &mut EventWriter, m: &EpochMetrics) {
    let step = i64::from(m.epoch);
    let mut scalars: Vec<(String, Option<f64>)> = metrics::epoch_scalars(m)
        .into_iter()
        .map(|(tag, value)| (tag.to_owned(), value))
        .collect();
    for r in &m.firing_rates {
        scalars.push((metrics::epoch::firing_rate_train(&r.layer), Some(r.train)));
        scalars.push((metrics::epoch::firing_rate_eval(&r.layer), r.eval));
    }
    for (tag, value) in &scalars {
        let (tag, value) = (tag.as_str(), *value);
        if let Some(Err(e)) = value.map(|v| board.scalar(tag, v, step)) {
            tracing::warn!(path = %board.path().display(), error = %e, "cannot write TensorBoard event");
        }
    }
    let _ = board.flush();
}

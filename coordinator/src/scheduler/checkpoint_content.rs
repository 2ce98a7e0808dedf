//! What an uploaded checkpoint says about itself, checked against the job it
//! is declared for. A worker's checkpoint is a safetensors file whose header
//! metadata holds the progress record (`spikecv.progress`, JSON: the job key,
//! the epoch, every epoch's metrics and the best-so-far record); a worker
//! resumes nothing else. Only the header is read here (no tensor library):
//! the record must name the declared epoch, the job's variant, seed, fold and
//! split, its protocol, `[simulation]` and `[training]`, its epochs must be
//! the metrics the coordinator holds for the job, and its `best` the epoch
//! the protocol selects from them, with its figures. A file that
//! carries no record (no safetensors header, or no `spikecv.progress` entry)
//! cannot be resumed by any worker, which then trains from epoch 0; it is
//! kept as it came.
//!
//! The header is parsed with the same shape the worker's reader uses, so a
//! header this module cannot parse does not parse for a worker either.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::Value;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, selected_epoch};

use super::SchedulerError;
use super::validate::same_figures;
use crate::store::jobs::JobRow;
use crate::store::metrics;

type Result<T> = std::result::Result<T, SchedulerError>;

/// Metadata key of the progress record (the worker's `PROGRESS_KEY`).
pub const PROGRESS_KEY: &str = "spikecv.progress";
/// The largest safetensors header (the format's own bound).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The header as the safetensors reader sees it: metadata and tensor entries.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "__metadata__")]
    metadata: Option<HashMap<String, String>>,
    #[serde(flatten)]
    _tensors: HashMap<String, serde::de::IgnoredAny>,
}

/// The best-so-far record, as far as it is checked.
#[derive(Debug, Deserialize)]
struct BestRecord {
    epoch: u32,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    test_loss: f64,
    test_accuracy: f64,
}

/// The progress record, as far as it is checked (other fields ignored).
#[derive(Debug, Deserialize)]
struct ProgressRecord {
    job_key: String,
    epoch: u32,
    epochs: Vec<EpochMetrics>,
    best: Option<BestRecord>,
}

fn refuse(job: &JobRow, field: &str, message: String) -> SchedulerError {
    SchedulerError::BadRequest {
        message: format!(
            "checkpoint of job {}: progress record's {field}: {message}",
            job.id
        ),
    }
}

/// The progress record's JSON text in the file at `path`, if it carries one.
fn progress_text(path: &Path) -> Result<Option<String>> {
    let io = |e| SchedulerError::checkpoint_io(format!("reading {}", path.display()), e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    if size < 8 {
        return Ok(None);
    }
    file.read_exact(&mut len).map_err(io)?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > size - 8 {
        return Ok(None);
    }
    let mut header = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    file.take(n).read_to_end(&mut header).map_err(io)?;
    let Ok(text) = std::str::from_utf8(&header) else {
        return Ok(None);
    };
    if !text.starts_with('{') {
        return Ok(None);
    }
    let Ok(parsed) = serde_json::from_str::<Header>(text) else {
        return Ok(None);
    };
    Ok(parsed.metadata.and_then(|mut m| m.remove(PROGRESS_KEY)))
}

/// `Ok` when the checkpoint file at `path`, declared as `job`'s after
/// `epoch`, carries no progress record or one that agrees with the job and
/// the metrics stored for it; else INVALID_ARGUMENT naming the field.
pub(super) fn check_checkpoint_content(
    conn: &Connection,
    job: &JobRow,
    epoch: u32,
    path: &Path,
) -> Result<()> {
    let Some(text) = progress_text(path)? else {
        return Ok(());
    };
    let record: ProgressRecord = serde_json::from_str(&text)
        .map_err(|e| refuse(job, PROGRESS_KEY, format!("does not parse: {e}")))?;
    if record.epoch != epoch {
        return Err(refuse(
            job,
            "epoch",
            format!(
                "says epoch {}, the upload declares epoch {epoch}",
                record.epoch
            ),
        ));
    }
    check_key(job, &record.job_key)?;
    check_metrics(conn, job, &record)
}

fn to_value<T: serde::Serialize>(job: &JobRow, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| refuse(job, "job_key", e.to_string()))
}

/// The job key names this job (variant, seed, fold, split) and its
/// configuration (protocol, `[simulation]`, `[training]`).
fn check_key(job: &JobRow, key: &str) -> Result<()> {
    let key: Value = serde_json::from_str(key)
        .map_err(|e| refuse(job, "job_key", format!("does not parse: {e}")))?;
    let config = ExperimentConfig::from_toml_str(&job.config_toml)
        .map_err(|e| refuse(job, "configuration", format!("stored config: {e}")))?;
    let expected = [
        ("job", "variant", to_value(job, &job.variant)?),
        ("job", "seed", to_value(job, &job.seed)?),
        ("job", "fold", to_value(job, &job.fold)?),
        ("job", "split", to_value(job, &job.split)?),
        ("configuration", "protocol", to_value(job, &job.protocol)?),
        (
            "configuration",
            "simulation",
            to_value(job, &config.simulation)?,
        ),
        (
            "configuration",
            "training",
            to_value(job, &config.training)?,
        ),
    ];
    for (what, field, ours) in expected {
        let found = key.get(field).unwrap_or(&Value::Null);
        if *found != ours {
            let shown = |v: &Value| {
                let s = v.to_string();
                if s.len() > 200 {
                    format!("{}…", s.chars().take(200).collect::<String>())
                } else {
                    s
                }
            };
            return Err(refuse(
                job,
                what,
                format!(
                    "its {field} is {}, job {}'s is {}",
                    shown(found),
                    job.id,
                    shown(&ours)
                ),
            ));
        }
    }
    Ok(())
}

/// The record's epochs are the ones stored for the job, and its `best` is
/// one of them with that epoch's figures.
fn check_metrics(conn: &Connection, job: &JobRow, record: &ProgressRecord) -> Result<()> {
    let held: HashMap<u32, EpochMetrics> = metrics::job_epochs(conn, job.id.as_str())?
        .into_iter()
        .filter(|m| m.epoch <= record.epoch)
        .map(|m| (m.epoch, m))
        .collect();
    let listed: Vec<u32> = record.epochs.iter().map(|m| m.epoch).collect();
    let wanted: Vec<u32> = (1..=record.epoch).collect();
    if listed != wanted {
        return Err(refuse(
            job,
            "epochs",
            format!("lists epochs {listed:?}, expected 1..={}", record.epoch),
        ));
    }
    for m in &record.epochs {
        if !held.get(&m.epoch).is_some_and(|h| same_figures(h, m)) {
            return Err(refuse(
                job,
                "epochs",
                format!(
                    "epoch {}'s figures differ from the ones reported for job {}",
                    m.epoch, job.id
                ),
            ));
        }
    }
    let Some(best) = &record.best else {
        return Ok(());
    };
    let selected = selected_epoch(job.protocol, &record.epochs);
    if selected != Some(best.epoch) {
        return Err(refuse(
            job,
            "best",
            format!(
                "epoch {} is not the one the {} protocol selects from the reported epochs ({})",
                best.epoch,
                job.protocol.as_str(),
                selected.map_or_else(|| "none".to_owned(), |e| format!("epoch {e}"))
            ),
        ));
    }
    let agrees = held.get(&best.epoch).is_some_and(|m| {
        m.val_loss == best.val_loss
            && m.val_accuracy == best.val_accuracy
            && m.test_accuracy == Some(best.test_accuracy)
            && m.test_loss == Some(best.test_loss)
    });
    if agrees {
        Ok(())
    } else {
        Err(refuse(
            job,
            "best",
            format!(
                "epoch {} with test accuracy {} and validation accuracy {:?} is not what job {} reported for that epoch",
                best.epoch, best.test_accuracy, best.val_accuracy, job.id
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use spikecv_common::experiment::sections::ProtocolKind;

    use super::*;

    fn epoch(epoch: u32, val_loss: f64, test_accuracy: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 1.0,
            train_accuracy: 0.5,
            val_loss: Some(val_loss),
            val_accuracy: Some(0.5),
            test_loss: Some(1.0),
            test_accuracy: Some(test_accuracy),
            epoch_seconds: 1.0,
            samples_per_second: 1.0,
            firing_rates: Vec::new(),
        }
    }

    #[test]
    fn each_protocol_selects_as_the_worker_does() {
        // Validation losses 0.5, 0.3, 0.3, 0.4; test accuracies 0.2, 0.9, 0.9, 0.95.
        let epochs = [
            epoch(1, 0.5, 0.2),
            epoch(2, 0.3, 0.9),
            epoch(3, 0.3, 0.9),
            epoch(4, 0.4, 0.95),
        ];
        // The first minimum of the validation loss.
        assert_eq!(selected_epoch(ProtocolKind::TrainValTest, &epochs), Some(2));
        // The first maximum of the test accuracy.
        assert_eq!(selected_epoch(ProtocolKind::TrainTest, &epochs), Some(4));
        assert_eq!(
            selected_epoch(ProtocolKind::TrainTest, &epochs[..3]),
            Some(2)
        );
        // The last epoch.
        assert_eq!(selected_epoch(ProtocolKind::Official, &epochs), Some(4));
        assert_eq!(selected_epoch(ProtocolKind::Official, &[]), None);
    }
}

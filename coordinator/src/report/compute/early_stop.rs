//! Jobs that early stopping (`training.patience`) ended before their last
//! epoch, and the time that saved; the estimate shared with pruning's.

use serde::Serialize;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;

use super::configurations::ConfigurationInfo;
use crate::store::records::JobRecord;

/// One job that stopped before its configured last epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoppedJob {
    /// The job's id.
    pub job: String,
    /// Data set variant.
    pub variant: Variant,
    /// Protocol (always train-val-test: patience watches validation accuracy).
    pub protocol: ProtocolKind,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Configuration index.
    pub configuration: usize,
    /// The last epoch it trained.
    pub stopped_epoch: u32,
    /// The epochs it was configured to train.
    pub epochs: u32,
    /// Seconds the remaining epochs would have taken at its own mean epoch time.
    pub saved_seconds: f64,
}

/// What early stopping did over the experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EarlyStopping {
    /// The jobs it stopped, in the report's job order.
    pub jobs: Vec<StoppedJob>,
    /// What they did not spend.
    #[serde(flatten)]
    pub saving: Saving,
}

/// Epochs and time that stopped jobs (pruned or early-stopped) did not spend.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Saving {
    /// Epochs they did not train.
    pub epochs_saved: u64,
    /// Seconds those epochs would have taken (each job's mean epoch time).
    pub saved_seconds: f64,
    /// The part of it on CUDA devices, in hours.
    pub saved_gpu_hours: f64,
    /// The part of it on other devices, in hours.
    pub saved_cpu_hours: f64,
}

impl Saving {
    /// Counts `left` epochs of `job` taking `seconds`.
    pub fn add(&mut self, job: &JobRecord, left: u32, seconds: f64) {
        self.epochs_saved += u64::from(left);
        self.saved_seconds += seconds;
        if job.on_gpu() {
            self.saved_gpu_hours += seconds / 3600.0;
        } else {
            self.saved_cpu_hours += seconds / 3600.0;
        }
    }
}

/// Epochs `job` did not train of `total`, and the seconds they would have
/// taken at its own mean epoch time; `None` when none are left or it has no
/// epoch to estimate from.
pub fn unspent(job: &JobRecord, total: u32) -> Option<(u32, f64)> {
    let done = job.epochs.iter().map(|e| e.epoch).max()?;
    let left = total.saturating_sub(done);
    if left == 0 {
        return None;
    }
    let mean = job.epochs.iter().map(|e| e.epoch_seconds).sum::<f64>() / job.epochs.len() as f64;
    Some((left, f64::from(left) * mean))
}

/// The succeeded jobs that trained fewer epochs than their configuration's
/// (only early stopping ends a job that succeeds early); `None` when there
/// are none.
pub fn early_stopping(infos: &[ConfigurationInfo], jobs: &[&JobRecord]) -> Option<EarlyStopping> {
    let mut s = EarlyStopping {
        jobs: Vec::new(),
        saving: Saving::default(),
    };
    for j in jobs.iter().filter(|j| j.status == JobStatus::Succeeded) {
        let Some(total) = infos.get(j.configuration).and_then(|i| i.epochs) else {
            continue;
        };
        let Some((left, seconds)) = unspent(j, total) else {
            continue;
        };
        s.saving.add(j, left, seconds);
        s.jobs.push(StoppedJob {
            job: j.id.clone(),
            variant: j.variant,
            protocol: j.protocol,
            seed: j.seed,
            fold: j.fold,
            configuration: j.configuration,
            stopped_epoch: total - left,
            epochs: total,
            saved_seconds: seconds,
        });
    }
    (!s.jobs.is_empty()).then_some(s)
}

//! Time and hardware a run used: wall time, training time of every job on
//! GPUs and CPUs, and the training speed seen on each worker's device.

use std::collections::BTreeMap;

use serde::Serialize;

use super::metric::{Metric, plausible, seconds};
use crate::store::records::{ExperimentRecord, JobRecord};

/// Training speed seen on one worker's device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Worker name (`unknown` when not recorded).
    pub worker: String,
    /// Device (`unknown` when not recorded).
    pub device: String,
    /// Jobs with epoch metrics from this device.
    pub jobs: usize,
    /// Epochs reported.
    pub epochs: usize,
    /// Mean training samples per second over those epochs.
    pub samples_per_second: Metric,
}

/// Time and hardware used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compute {
    /// Seconds from submission to the last job's end (finished runs) or to the
    /// report (runs still going); `None` when unknown.
    pub wall_seconds: Option<f64>,
    /// What `wall_seconds` measures: `submission to last job finished` or
    /// `submission to report (run not finished)`.
    pub wall_basis: String,
    /// Training seconds of every job (finished: its train time; otherwise the
    /// sum of its reported epochs).
    pub train_seconds: f64,
    /// Training seconds on CUDA devices / 3600.
    pub gpu_hours: f64,
    /// Training seconds on other devices / 3600.
    pub cpu_hours: f64,
    /// Speed per worker and device.
    pub throughput: Vec<Throughput>,
}

/// Training seconds a job has used: its train time once finished, else the sum
/// of the epochs it reported; a stored figure that is not a plausible number
/// of seconds (NaN, negative, past the plausible bound) counts as 0.
pub fn job_seconds(job: &JobRecord) -> f64 {
    job.train_seconds.map_or_else(
        || job.epochs.iter().map(|e| seconds(e.epoch_seconds)).sum(),
        seconds,
    )
}

/// What `jobs` of `experiment` used; `complete` when every planned job is done.
pub fn usage(
    experiment: &ExperimentRecord,
    jobs: &[&JobRecord],
    complete: bool,
    now_unix: i64,
) -> Compute {
    let all_terminal = jobs.iter().all(|j| j.status.is_terminal());
    let last_finish = jobs.iter().filter_map(|j| j.finished_unix).max();
    let (wall_seconds, wall_basis) = match (complete || all_terminal, last_finish) {
        (true, Some(t)) => (
            Some((t - experiment.created_unix) as f64),
            "submission to last job finished",
        ),
        (true, None) => (None, "unknown (the store has no finish times)"),
        (false, _) => (
            Some((now_unix - experiment.created_unix) as f64),
            "submission to report (run not finished)",
        ),
    };
    let train_seconds: f64 = jobs.iter().map(|j| job_seconds(j)).sum();
    let gpu_seconds: f64 = jobs
        .iter()
        .filter(|j| j.on_gpu())
        .map(|j| job_seconds(j))
        .sum();

    let mut by_device: BTreeMap<(String, String), (usize, Vec<f64>)> = BTreeMap::new();
    for j in jobs.iter().filter(|j| !j.epochs.is_empty()) {
        let key = (
            j.worker.clone().unwrap_or_else(|| "unknown".into()),
            j.device.clone().unwrap_or_else(|| "unknown".into()),
        );
        let entry = by_device.entry(key).or_default();
        entry.0 += 1;
        entry.1.extend(
            j.epochs
                .iter()
                .map(|e| e.samples_per_second)
                .filter(|v| plausible(*v)),
        );
    }
    let throughput = by_device
        .into_iter()
        .map(|((worker, device), (jobs, speeds))| Throughput {
            worker,
            device,
            jobs,
            epochs: speeds.len(),
            samples_per_second: Metric::of(&speeds, speeds.len()),
        })
        .collect();
    Compute {
        wall_seconds,
        wall_basis: wall_basis.to_owned(),
        train_seconds,
        gpu_hours: gpu_seconds / 3600.0,
        cpu_hours: (train_seconds - gpu_seconds) / 3600.0,
        throughput,
    }
}

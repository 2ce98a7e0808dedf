//! Turns job records into the figures of a report: per variant and protocol
//! (and sweep configuration, compared in [`super::compare`]),
//! mean ± std (population and sample) over every (seed, fold) job, per-seed and
//! per-fold tables, progress against the plan, failures and compute used.
//!
//! Every figure carries the count of jobs behind it and the count planned, so
//! a partial run is never mistaken for a finished one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spikecv_common::dataset::kind::DataKind;
use spikecv_common::dataset::kind::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::configurations;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_common::stats;

use super::compare::{ConfigurationInfo, SweepComparison, compare_configurations};
use super::early_stop::{EarlyStopping, early_stopping};
use super::model::{ExperimentRecord, JobRecord};
use super::published::PublishedTable;
use super::silent::{SilentJob, silent};

/// Version of the JSON layout (docs/report-schema.md); bumped on any change
/// that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

/// One figure: mean and spread of a metric over the jobs that have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Values behind the figure.
    pub count: usize,
    /// Values there would be if every planned job had succeeded.
    pub planned: usize,
    /// Mean; `None` without values.
    pub mean: Option<f64>,
    /// Population standard deviation (ddof = 0).
    pub std_population: Option<f64>,
    /// Sample standard deviation (ddof = 1); needs two values.
    pub std_sample: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

impl Metric {
    /// Summarises `values` against `planned`.
    pub fn of(values: &[f64], planned: usize) -> Self {
        let s = stats::summarize(values);
        Self {
            count: values.len(),
            planned,
            mean: s.map(|s| s.mean),
            std_population: s.map(|s| s.std_population),
            std_sample: s.and_then(|s| s.std_sample),
            min: s.map(|s| s.min),
            max: s.map(|s| s.max),
        }
    }

    /// Whether fewer values than planned stand behind the figure.
    pub fn is_partial(&self) -> bool {
        self.count < self.planned
    }
}

/// The metrics of one seed over its folds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedRow {
    /// The seed.
    pub seed: u64,
    /// Test accuracy over the seed's folds.
    pub test_accuracy: Metric,
    /// Validation accuracy over the seed's folds (`None` for train-test).
    pub val_accuracy: Option<Metric>,
}

/// The metrics of one fold over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoldRow {
    /// The fold (0-based).
    pub fold: u32,
    /// Test accuracy over the seeds.
    pub test_accuracy: Metric,
    /// Validation accuracy over the seeds (`None` for train-test).
    pub val_accuracy: Option<Metric>,
    /// Test loss over the seeds.
    pub test_loss: Metric,
}

/// Everything reported for one variant under one protocol (and, in a sweep,
/// one configuration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// Index of the configuration in [`Report::configurations`] (0 without a sweep).
    pub configuration: usize,
    /// The configuration's label (empty without a sweep).
    pub configuration_label: String,
    /// Data set variant.
    pub variant: Variant,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// True for train-test: best test accuracy over epochs, an optimistic figure.
    pub optimistic: bool,
    /// Jobs planned (distinct seed × fold), less those pruned.
    pub planned: usize,
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// Jobs the sweep's pruner stopped (left out of every figure).
    pub pruned: usize,
    /// Test accuracy over every succeeded (seed, fold) job.
    pub test_accuracy: Metric,
    /// Validation accuracy of the selected models (`None` for train-test).
    pub val_accuracy: Option<Metric>,
    /// Test loss of the selected models.
    pub test_loss: Metric,
    /// Epoch of the selected models.
    pub best_epoch: Metric,
    /// Per-seed test accuracy (mean over folds).
    pub per_seed: Vec<SeedRow>,
    /// Spread between seeds: summary of the per-seed mean test accuracies.
    pub seed_spread: Metric,
    /// Per-fold metrics (over seeds).
    pub per_fold: Vec<FoldRow>,
    /// Confusion matrix `[true][predicted]` summed over the jobs that have one.
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Jobs whose confusion matrix is in the sum.
    pub confusion_jobs: usize,
    /// Succeeded jobs whose output layer never fired ([`super::silent`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub silent_jobs: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How many jobs are in each state, against the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Jobs planned (from the configuration and the store together).
    pub planned: usize,
    /// Planned jobs the store does not hold at all.
    pub missing: usize,
    /// Jobs waiting for a worker.
    pub pending: usize,
    /// Jobs leased, no progress yet.
    pub leased: usize,
    /// Jobs running.
    pub running: usize,
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// Jobs that failed.
    pub failed: usize,
    /// Jobs cancelled.
    pub cancelled: usize,
    /// Jobs stopped by the sweep's pruner.
    pub pruned: usize,
    /// True when every planned job succeeded or was pruned.
    pub complete: bool,
}

/// A job that failed or was cancelled, with its error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedJob {
    /// Variant.
    pub variant: Variant,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// `failed` or `cancelled`.
    pub status: JobStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Last worker.
    pub worker: Option<String>,
    /// Last device.
    pub device: Option<String>,
    /// The error reported.
    pub error: Option<String>,
}

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

/// Identity and exact configuration of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentInfo {
    /// Id.
    pub id: String,
    /// Human name.
    pub name: Option<String>,
    /// Hash of the configuration.
    pub config_hash: String,
    /// The configuration exactly as submitted.
    pub config_toml: String,
    /// Submission time (Unix seconds).
    pub created_unix: i64,
    /// Class names in class order.
    pub class_names: Vec<String>,
    /// The data set (`[data] kind` of the stored configuration); left out of
    /// the JSON for SL-Animals-DVS, the default.
    #[serde(skip_serializing_if = "DataKind::is_default")]
    pub data_kind: DataKind,
}

/// A whole report, the source of every format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Layout version of the JSON form.
    pub schema_version: u32,
    /// When the report was made (Unix seconds).
    pub generated_unix: i64,
    /// The experiment.
    pub experiment: ExperimentInfo,
    /// Job counts against the plan.
    pub progress: Progress,
    /// One entry per variant and protocol, whole before reduced.
    pub groups: Vec<GroupReport>,
    /// Published figures to compare with: the table of the experiment's data set.
    pub published: PublishedTable,
    /// Failed and cancelled jobs.
    pub failed_jobs: Vec<FailedJob>,
    /// Time and hardware used.
    pub compute: Compute,
    /// The experiment's configurations (one, unlabelled, without a sweep).
    pub configurations: Vec<ConfigurationInfo>,
    /// The sweep's comparison with the baseline (`None` without a sweep).
    pub sweep: Option<SweepComparison>,
    /// Jobs that early stopping ended before their last epoch (`None`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
    /// Jobs whose output layer never fired, in job order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub silent_jobs: Vec<SilentJob>,
    /// Things the reader should know (unparsable config, duplicate jobs, ...).
    pub warnings: Vec<String>,
    /// Every job, in variant, protocol, seed, fold order.
    pub jobs: Vec<JobRecord>,
}

/// (variant, protocol, configuration).
type GroupKey = (Variant, &'static str, usize);
/// (variant, protocol, configuration, seed, fold).
type JobKey = (Variant, &'static str, usize, u64, u32);

fn key_of(job: &JobRecord) -> JobKey {
    (
        job.variant,
        job.protocol.as_str(),
        job.configuration,
        job.seed,
        job.fold,
    )
}

fn protocol_of(name: &str) -> ProtocolKind {
    name.parse().unwrap_or(ProtocolKind::TrainValTest)
}

/// How far a status is from a result; the record closest to one represents a
/// job the store holds twice.
fn status_rank(status: JobStatus) -> u8 {
    match status {
        JobStatus::Succeeded => 0,
        JobStatus::Running => 1,
        JobStatus::Leased => 2,
        JobStatus::Pending => 3,
        JobStatus::Failed => 4,
        JobStatus::Pruned => 5,
        JobStatus::Cancelled => 6,
    }
}

/// Builds the report of `experiment` from its job records, as of `now_unix`.
pub fn build_report(experiment: &ExperimentRecord, jobs: &[JobRecord], now_unix: i64) -> Report {
    let mut warnings = Vec::new();
    let mut by_key: BTreeMap<JobKey, &JobRecord> = BTreeMap::new();
    for job in jobs {
        if job.experiment != experiment.id {
            warnings.push(format!(
                "job {} seed {} fold {} belongs to experiment {}, not {}; left out",
                job.variant, job.seed, job.fold, job.experiment, experiment.id
            ));
            continue;
        }
        match by_key.get(&key_of(job)) {
            Some(kept) => {
                warnings.push(format!(
                    "{} {} seed {} fold {} is in the store twice; the {} record is used",
                    job.variant,
                    job.protocol,
                    job.seed,
                    job.fold,
                    if status_rank(job.status) < status_rank(kept.status) {
                        job.status
                    } else {
                        kept.status
                    }
                ));
                if status_rank(job.status) < status_rank(kept.status) {
                    by_key.insert(key_of(job), job);
                }
            }
            None => {
                by_key.insert(key_of(job), job);
            }
        }
    }

    let mut planned: BTreeSet<JobKey> = by_key.keys().copied().collect();
    let configs = match ExperimentConfig::from_toml_str(&experiment.config_toml)
        .map_err(|e| e.to_string())
        .and_then(|c| configurations(&c).map_err(|e| e.to_string()))
    {
        Ok(configs) => {
            for (c, configuration) in configs.iter().enumerate() {
                let p = &configuration.config.protocol;
                for &variant in &p.variants {
                    for &seed in &p.seeds {
                        for fold in 0..p.kind.fold_count(p.folds) {
                            planned.insert((variant, p.kind.as_str(), c, seed, fold));
                        }
                    }
                }
            }
            configs
        }
        Err(e) => {
            warnings.push(format!(
                "the stored configuration does not parse ({e}); the plan is taken from the store's jobs only"
            ));
            Vec::new()
        }
    };
    let data_kind = match data_kind_of(&experiment.config_toml) {
        Ok(kind) => kind,
        Err(e) => {
            warnings.push(format!(
                "the stored configuration's data set is not known ({e}); the report takes it for {}",
                DataKind::default()
            ));
            DataKind::default()
        }
    };
    let classes = (!experiment.class_names.is_empty()).then_some(experiment.class_names.len());
    // The networks' output layers have one unit per class: the stored class
    // names' count, else (a store that did not record them) the data set's
    // own (19 for SL-Animals-DVS, 11 for DVS128 Gesture).
    let network_classes = classes
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(data_kind.classes() as u32);
    let configuration_infos =
        ConfigurationInfo::list(&configs, planned.iter().map(|k| k.2), network_classes);

    let progress = progress(&planned, &by_key);
    let mut group_keys: BTreeSet<GroupKey> = BTreeSet::new();
    for &(v, p, c, _, _) in &planned {
        group_keys.insert((v, p, c));
    }
    let mut groups: Vec<GroupReport> = group_keys
        .iter()
        .map(|&(variant, protocol, c)| {
            let keys: Vec<JobKey> = planned
                .iter()
                .copied()
                .filter(|&(v, p, k, _, _)| v == variant && p == protocol && k == c)
                .collect();
            let mut g = group_report(variant, protocol_of(protocol), &keys, &by_key, classes);
            g.configuration = c;
            g.configuration_label = configuration_infos
                .get(c)
                .map_or_else(|| format!("#{c}"), |i| i.label.clone());
            g
        })
        .collect();

    let records: Vec<&JobRecord> = by_key.values().copied().collect();
    let sweep = (configuration_infos.len() > 1)
        .then(|| compare_configurations(&configuration_infos, &groups, &records));
    let early_stopping = early_stopping(&configuration_infos, &records);
    let silent_jobs: Vec<SilentJob> = records.iter().filter_map(|j| silent(j)).collect();
    for g in &mut groups {
        g.silent_jobs = records
            .iter()
            .filter(|j| {
                j.status == JobStatus::Succeeded
                    && (j.variant, j.protocol, j.configuration)
                        == (g.variant, g.protocol, g.configuration)
            })
            .filter(|j| silent(j).is_some())
            .count();
    }
    let failed_jobs = records
        .iter()
        .filter(|j| matches!(j.status, JobStatus::Failed | JobStatus::Cancelled))
        .map(|j| FailedJob {
            variant: j.variant,
            protocol: j.protocol,
            seed: j.seed,
            fold: j.fold,
            status: j.status,
            attempts: j.attempts,
            worker: j.worker.clone(),
            device: j.device.clone(),
            error: j.error.clone(),
        })
        .collect();

    Report {
        schema_version: SCHEMA_VERSION,
        generated_unix: now_unix,
        experiment: ExperimentInfo {
            id: experiment.id.clone(),
            name: experiment.name.clone(),
            config_hash: experiment.config_hash.clone(),
            config_toml: experiment.config_toml.clone(),
            created_unix: experiment.created_unix,
            class_names: experiment.class_names.clone(),
            data_kind,
        },
        compute: compute(experiment, &records, progress.complete, now_unix),
        progress,
        groups,
        published: PublishedTable::of(data_kind),
        failed_jobs,
        configurations: configuration_infos,
        sweep,
        early_stopping,
        silent_jobs,
        warnings,
        jobs: records.into_iter().cloned().collect(),
    }
}

/// The data set of a stored configuration: its `[data] kind`, the default
/// (SL-Animals-DVS) when it has none. Read from the TOML alone, so that a
/// configuration this build no longer accepts in full still names its data
/// set; a text that is not TOML at all is taken for the default (the report
/// already warns that it does not parse).
fn data_kind_of(config_toml: &str) -> Result<DataKind, String> {
    let Ok(table) = config_toml.parse::<toml::Table>() else {
        return Ok(DataKind::default());
    };
    match table.get("data").and_then(|d| d.get("kind")) {
        None => Ok(DataKind::default()),
        Some(toml::Value::String(kind)) => kind.parse().map_err(|e| format!("{e}")),
        Some(other) => Err(format!("data.kind = {other} is not a string")),
    }
}

fn progress(planned: &BTreeSet<JobKey>, by_key: &BTreeMap<JobKey, &JobRecord>) -> Progress {
    let count = |s: JobStatus| by_key.values().filter(|j| j.status == s).count();
    let succeeded = count(JobStatus::Succeeded);
    Progress {
        planned: planned.len(),
        missing: planned.iter().filter(|k| !by_key.contains_key(k)).count(),
        pending: count(JobStatus::Pending),
        leased: count(JobStatus::Leased),
        running: count(JobStatus::Running),
        succeeded,
        failed: count(JobStatus::Failed),
        cancelled: count(JobStatus::Cancelled),
        pruned: count(JobStatus::Pruned),
        complete: succeeded + count(JobStatus::Pruned) == planned.len(),
    }
}

/// Largest magnitude of a stored figure a report uses. The scheduler refuses
/// anything near it today; a store written before it checked may hold NaN,
/// infinities or 1e308, which would make sums infinite and `inf - inf` NaN.
/// Left out, every sum over a store's jobs stays finite.
const PLAUSIBLE: f64 = 1e12;

/// Whether a stored figure can enter a sum.
fn plausible(v: f64) -> bool {
    v.is_finite() && v.abs() <= PLAUSIBLE
}

/// A stored number of seconds, or 0 when it is not a plausible one.
fn seconds(v: f64) -> f64 {
    if plausible(v) && v >= 0.0 { v } else { 0.0 }
}

fn values(jobs: &[&JobRecord], f: impl Fn(&JobRecord) -> Option<f64>) -> Vec<f64> {
    jobs.iter()
        .filter_map(|j| f(j))
        .filter(|v| plausible(*v))
        .collect()
}

fn group_report(
    variant: Variant,
    protocol: ProtocolKind,
    keys: &[JobKey],
    by_key: &BTreeMap<JobKey, &JobRecord>,
    classes: Option<usize>,
) -> GroupReport {
    let optimistic = protocol == ProtocolKind::TrainTest;
    let pruned: BTreeSet<JobKey> = keys
        .iter()
        .copied()
        .filter(|k| by_key.get(k).is_some_and(|j| j.status == JobStatus::Pruned))
        .collect();
    let keys: Vec<JobKey> = keys
        .iter()
        .copied()
        .filter(|k| !pruned.contains(k))
        .collect();
    let keys = &keys[..];
    let done: Vec<&JobRecord> = keys
        .iter()
        .filter_map(|k| by_key.get(k).copied())
        .filter(|j| j.status == JobStatus::Succeeded)
        .collect();
    let planned = keys.len();
    // Only train-val-test holds out a validation set (train-test and the
    // data set's own split test the model of the last or best epoch).
    let has_val = protocol == ProtocolKind::TrainValTest;
    let val = |jobs: &[&JobRecord], n: usize| {
        has_val.then(|| Metric::of(&values(jobs, |j| j.val_accuracy), n))
    };

    let seeds: BTreeSet<u64> = keys.iter().map(|k| k.3).collect();
    let folds: BTreeSet<u32> = keys.iter().map(|k| k.4).collect();
    let per_seed: Vec<SeedRow> = seeds
        .iter()
        .map(|&seed| {
            let n = keys.iter().filter(|k| k.3 == seed).count();
            let jobs: Vec<&JobRecord> = done.iter().copied().filter(|j| j.seed == seed).collect();
            SeedRow {
                seed,
                test_accuracy: Metric::of(&values(&jobs, |j| j.test_accuracy), n),
                val_accuracy: val(&jobs, n),
            }
        })
        .collect();
    let seed_means: Vec<f64> = per_seed
        .iter()
        .filter_map(|r| r.test_accuracy.mean)
        .collect();
    let per_fold = folds
        .iter()
        .map(|&fold| {
            let n = keys.iter().filter(|k| k.4 == fold).count();
            let jobs: Vec<&JobRecord> = done.iter().copied().filter(|j| j.fold == fold).collect();
            FoldRow {
                fold,
                test_accuracy: Metric::of(&values(&jobs, |j| j.test_accuracy), n),
                val_accuracy: val(&jobs, n),
                test_loss: Metric::of(&values(&jobs, |j| j.test_loss), n),
            }
        })
        .collect();

    let (confusion, confusion_jobs) = sum_confusions(&done, classes);
    GroupReport {
        configuration: 0,
        configuration_label: String::new(),
        variant,
        protocol,
        optimistic,
        planned,
        succeeded: done.len(),
        pruned: pruned.len(),
        test_accuracy: Metric::of(&values(&done, |j| j.test_accuracy), planned),
        val_accuracy: val(&done, planned),
        test_loss: Metric::of(&values(&done, |j| j.test_loss), planned),
        best_epoch: Metric::of(&values(&done, |j| j.best_epoch.map(f64::from)), planned),
        seed_spread: Metric::of(&seed_means, seeds.len()),
        per_seed,
        per_fold,
        confusion,
        confusion_jobs,
        silent_jobs: 0,
    }
}

/// Sums the square confusion matrices of `classes` classes (the data set's;
/// when it is not known, the size most matrices have, the smaller on a tie),
/// so that no one job's matrix decides the size for the rest.
fn sum_confusions(jobs: &[&JobRecord], classes: Option<usize>) -> (Option<Vec<Vec<u64>>>, usize) {
    let square = |m: &&Vec<Vec<u32>>| !m.is_empty() && m.iter().all(|row| row.len() == m.len());
    let matrices: Vec<&Vec<Vec<u32>>> = jobs
        .iter()
        .filter_map(|j| j.confusion.as_ref())
        .filter(square)
        .collect();
    let common = classes.or_else(|| {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for m in &matrices {
            *counts.entry(m.len()).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(n, _)| n)
    });
    let Some(n) = common else {
        return (None, 0);
    };
    let mut sum: Option<Vec<Vec<u64>>> = None;
    let mut used = 0;
    for m in matrices.into_iter().filter(|m| m.len() == n) {
        let acc = sum.get_or_insert_with(|| vec![vec![0; n]; n]);
        for (a, r) in acc.iter_mut().zip(m) {
            for (x, &y) in a.iter_mut().zip(r) {
                *x += u64::from(y);
            }
        }
        used += 1;
    }
    (sum, used)
}

/// Training seconds a job has used: its train time once finished, else the sum
/// of the epochs it reported; a stored figure that is not a plausible number
/// of seconds (NaN, negative, past [`PLAUSIBLE`]) counts as 0.
pub fn job_seconds(job: &JobRecord) -> f64 {
    job.train_seconds.map_or_else(
        || job.epochs.iter().map(|e| seconds(e.epoch_seconds)).sum(),
        seconds,
    )
}

fn compute(
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

/// Report inputs of both data sets for the report modules' tests.
#[cfg(test)]
pub(crate) mod tests {
    use spikecv_common::dataset::kind::DataKind;
    use spikecv_common::dataset::kind::Variant;
    use spikecv_common::experiment::job::JobStatus;
    use spikecv_common::experiment::sections::ProtocolKind;

    use super::super::markdown::render_markdown;
    use super::super::model::{ExperimentRecord, JobRecord};
    use super::super::published::PublishedTable;
    use super::super::render_json;
    use super::{Report, build_report};

    const GESTURE_CONFIG: &str = "name = \"gesture\"\n[data]\nroot = \"d\"\nkind = \"dvs-gesture\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n";
    const SL_ANIMALS_CONFIG: &str = "name = \"animals\"\n[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n";

    fn experiment(config_toml: &str, class_names: &[&str]) -> ExperimentRecord {
        ExperimentRecord {
            id: "exp-1".into(),
            name: None,
            config_toml: config_toml.into(),
            config_hash: "abc".into(),
            created_unix: 1_780_000_000,
            class_names: class_names.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Both folds succeeded, each with an `n`-class confusion matrix: 5 on
    /// the diagonal, one sample of class 0 taken for the last class.
    fn jobs(n: usize) -> Vec<JobRecord> {
        (0..2u32)
            .map(|fold| {
                let mut j = JobRecord::pending(
                    "exp-1",
                    Variant::Whole,
                    0,
                    fold,
                    ProtocolKind::TrainValTest,
                );
                j.status = JobStatus::Succeeded;
                j.test_accuracy = Some(0.8 + 0.1 * f64::from(fold));
                j.val_accuracy = Some(0.75);
                j.test_loss = Some(0.5);
                j.best_epoch = Some(3);
                let mut m = vec![vec![0u32; n]; n];
                for (i, row) in m.iter_mut().enumerate() {
                    row[i] = 5;
                }
                m[0][n - 1] = 1;
                j.confusion = Some(m);
                j
            })
            .collect()
    }

    /// A finished DVS128 Gesture experiment (2 folds, 11-class matrices).
    pub(crate) fn gesture_report() -> Report {
        let names = spikecv_common::dataset::dvs_gesture::CLASS_NAMES;
        build_report(
            &experiment(GESTURE_CONFIG, &names),
            &jobs(names.len()),
            1_780_000_100,
        )
    }

    #[test]
    fn a_gesture_report_has_the_gesture_table_and_eleven_classes() {
        let r = gesture_report();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.experiment.data_kind, DataKind::DvsGesture);
        assert!(
            matches!(r.published, PublishedTable::DvsGesture(_)),
            "{:?}",
            r.published
        );
        assert_eq!(r.experiment.class_names.len(), 11);
        let confusion = r.groups[0].confusion.as_ref().unwrap();
        assert_eq!(confusion.len(), 11);
        assert!(confusion.iter().all(|row| row.len() == 11));
        assert_eq!(confusion[0][0], 10);
        assert_eq!(confusion[0][10], 2);
        assert_eq!(r.groups[0].confusion_jobs, 2);
        // The network's last layer has one unit per gesture class.
        let network = r.configurations[0].network.as_ref().unwrap();
        assert!(network.name.ends_with("-f11"), "{}", network.name);
    }

    #[test]
    fn without_stored_class_names_the_network_follows_the_data_set() {
        let r = build_report(&experiment(GESTURE_CONFIG, &[]), &jobs(11), 1_780_000_100);
        let network = r.configurations[0].network.as_ref().unwrap();
        assert!(network.name.ends_with("-f11"), "{}", network.name);
        // The matrices' own size is summed when the store has no names.
        assert_eq!(r.groups[0].confusion.as_ref().unwrap().len(), 11);
        let r = build_report(
            &experiment(SL_ANIMALS_CONFIG, &[]),
            &jobs(19),
            1_780_000_100,
        );
        let network = r.configurations[0].network.as_ref().unwrap();
        assert!(network.name.ends_with("-f19"), "{}", network.name);
    }

    #[test]
    fn gesture_markdown_names_the_data_set_its_classes_and_its_figures() {
        let md = render_markdown(&gesture_report(), &[]);
        assert!(
            md.contains("\n## Compared with published figures on DVS128 Gesture\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "- Data set: DVS128 Gesture, 11 classes: hand\\_clapping, right\\_hand\\_wave,"
            ),
            "{md}"
        );
        assert!(md.contains("right\\_arm\\_counter\\_clockwise"), "{md}");
        assert!(md.contains("other\\_gestures\n"), "{md}");
        assert!(md.contains(
            "| method | official split (users 1-23 train, 24-29 test) | k-fold over people | classes | protocol |"
        ));
        assert!(
            md.contains(
                "| SLAYER (Shrestha \\& Orchard, NeurIPS 2018) | 93.64 % ± 0.49 | not given | 11 |"
            ),
            "{md}"
        );
        assert!(md.contains("| 95.54 % ± 0.16 | not given | 11 |"), "{md}");
        assert!(md.contains("whether it selects on the test set is not stated"));
        // This run's k-fold figure is not put in the official split's column.
        assert!(
            md.contains("| this run, train-val-test | not run | 85.00 % ± 5.00 (2 of 2 jobs) | 11 | train-val-test, ± population std"),
            "{md}"
        );
        // Nothing of SL-Animals-DVS' table.
        for absent in [
            "reduced (no S3)",
            "Vasudevan",
            "4-fold over recordings",
            "## Compared with published figures\n",
        ] {
            assert!(!md.contains(absent), "{absent:?} in {md}");
        }
    }

    #[test]
    fn an_official_split_run_stands_in_the_published_figures_column() {
        let config = GESTURE_CONFIG
            .replace("train-val-test", "official")
            .replace("seeds = [0]", "seeds = [0, 1]");
        let names = spikecv_common::dataset::dvs_gesture::CLASS_NAMES;
        let jobs: Vec<JobRecord> = (0..2u64)
            .map(|seed| {
                let mut j =
                    JobRecord::pending("exp-1", Variant::Whole, seed, 0, ProtocolKind::Official);
                j.status = JobStatus::Succeeded;
                j.test_accuracy = Some(0.9 + 0.02 * seed as f64);
                j.test_loss = Some(0.3);
                j
            })
            .collect();
        let r = build_report(&experiment(&config, &names), &jobs, 1_780_000_100);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].protocol, ProtocolKind::Official);
        assert!(!r.groups[0].optimistic);
        assert!(r.groups[0].val_accuracy.is_none());
        let md = render_markdown(&r, &[]);
        assert!(
            md.contains("| this run, official | 91.00 % ± 1.00 (2 of 2 jobs) | not run | 11 | official, ± population std over (seed, fold) jobs |"),
            "{md}"
        );
    }

    #[test]
    fn gesture_json_has_the_gesture_rows_and_eleven_classes() {
        let j: serde_json::Value =
            serde_json::from_str(&render_json(&gesture_report()).unwrap()).unwrap();
        assert_eq!(j["experiment"]["data_kind"], "dvs-gesture");
        let names = j["experiment"]["class_names"].as_array().unwrap();
        assert_eq!(names.len(), 11);
        assert_eq!(names[10], "other_gestures");
        let confusion = j["groups"][0]["confusion"].as_array().unwrap();
        assert_eq!(confusion.len(), 11);
        assert!(
            confusion
                .iter()
                .all(|row| row.as_array().unwrap().len() == 11)
        );
        let published = j["published"].as_array().unwrap();
        assert_eq!(published.len(), 3);
        for row in published {
            assert!(
                row.get("whole").is_none() && row.get("reduced").is_none(),
                "{row}"
            );
            assert!(row["official_split"]["mean_percent"].is_f64(), "{row}");
        }
        assert_eq!(published[1]["official_split"]["mean_percent"], 93.64);
        assert_eq!(published[1]["official_split"]["std_percent"], 0.49);
        assert_eq!(published[2]["official_split"]["mean_percent"], 95.54);
        assert_eq!(published[2]["classes"], 11);
    }

    #[test]
    fn an_sl_animals_report_keeps_its_table_and_layout() {
        let names = spikecv_common::dataset::sl_animals::CLASS_NAMES;
        let r = build_report(
            &experiment(SL_ANIMALS_CONFIG, &names),
            &jobs(19),
            1_780_000_100,
        );
        assert_eq!(r.experiment.data_kind, DataKind::SlAnimals);
        assert!(matches!(r.published, PublishedTable::SlAnimals(_)));
        let md = render_markdown(&r, &[]);
        assert!(md.contains("\n## Compared with published figures\n\nTest accuracy, mean ± population std. Published figures are 4-fold over recordings, ± std over folds.\n"));
        assert!(md.contains("| method | whole set | reduced (no S3) | protocol |"));
        assert!(
            !md.contains("- Data set:") && !md.contains("DVS128"),
            "{md}"
        );
        let j: serde_json::Value = serde_json::from_str(&render_json(&r).unwrap()).unwrap();
        assert!(j["experiment"].get("data_kind").is_none());
        assert_eq!(j["published"][0]["whole"]["mean_percent"], 56.2);
        assert_eq!(j["groups"][0]["confusion"].as_array().unwrap().len(), 19);
    }

    #[test]
    fn the_data_set_is_read_from_the_stored_toml_alone() {
        use super::data_kind_of;
        assert_eq!(data_kind_of(SL_ANIMALS_CONFIG), Ok(DataKind::SlAnimals));
        assert_eq!(data_kind_of(GESTURE_CONFIG), Ok(DataKind::DvsGesture));
        // A config this build does not accept in full still names its data set.
        let unknown_protocol = GESTURE_CONFIG.replace("train-val-test", "some-future-kind");
        assert_eq!(data_kind_of(&unknown_protocol), Ok(DataKind::DvsGesture));
        assert_eq!(data_kind_of("not = [toml"), Ok(DataKind::SlAnimals));
        assert!(data_kind_of("[data]\nkind = \"mnist\"\n").is_err());
        assert!(data_kind_of("[data]\nkind = 3\n").is_err());
        // An unknown data set is said, and the default's table shown.
        let r = build_report(
            &experiment("[data]\nroot = \"d\"\nkind = \"mnist\"\n", &[]),
            &[],
            1_780_000_100,
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("data set is not known")),
            "{:?}",
            r.warnings
        );
        assert!(matches!(r.published, PublishedTable::SlAnimals(_)));
    }
}

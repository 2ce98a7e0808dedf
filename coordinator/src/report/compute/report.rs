//! The whole report, the source of every format: built from the job records
//! in steps (the jobs and the plan, the configurations, the groups, the
//! sweep's comparison, early-stopped and silent jobs, failures, compute).

use serde::Serialize;
use spikecv_common::dataset::kind::DataKind;
use spikecv_common::dataset::published::PublishedTable;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_common::experiment::sweep::DEFAULT_ROPE_PP;

use super::compare::{SweepComparison, compare_configurations};
use super::configurations::ConfigurationInfo;
use super::early_stop::{EarlyStopping, early_stopping};
use super::environments::{Environments, environments};
use super::groups::{GroupReport, groups};
use super::jobs::{Progress, index_jobs, plan, progress};
use super::silent::{SilentJob, silent};
use super::usage::{Compute, usage};
use crate::store::records::{ExperimentRecord, JobRecord};

/// Version of the JSON layout (docs/report-schema.md); bumped on any change
/// that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

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
    pub published: &'static PublishedTable,
    /// Failed and cancelled jobs.
    pub failed_jobs: Vec<FailedJob>,
    /// Time and hardware used.
    pub compute: Compute,
    /// What the results were computed on and with, and what made the report.
    pub environments: Environments,
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
    /// Verified results (`[protocol] verify`; `None`: nothing verified).
    /// Filled in from the store's runs ([`super::verification`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<super::verification::Verification>,
    /// Things the reader should know (unparsable config, duplicate jobs, ...).
    pub warnings: Vec<String>,
    /// Every job, in variant, protocol, seed, fold order.
    pub jobs: Vec<JobRecord>,
}

/// Builds the report of `experiment` from its job records, as of `now_unix`.
pub fn build_report(experiment: &ExperimentRecord, jobs: &[JobRecord], now_unix: i64) -> Report {
    let mut warnings = Vec::new();
    let by_key = index_jobs(experiment, jobs, &mut warnings);
    let (planned, configs) = plan(&experiment.config_toml, &by_key, &mut warnings);
    let data_kind = data_kind(experiment, &mut warnings);
    let classes = (!experiment.class_names.is_empty()).then_some(experiment.class_names.len());
    // The networks' output layers have one unit per class: the stored class
    // names' count, else (a store that did not record them) the data set's
    // own (19 for SL-Animals-DVS, 11 for DVS128 Gesture).
    let network_classes = classes
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(data_kind.classes() as u32);
    let configuration_infos = ConfigurationInfo::list(
        &configs,
        planned.iter().map(|k| k.configuration),
        network_classes,
    );

    let progress = progress(&planned, &by_key);
    let mut groups = groups(&planned, &by_key, &configuration_infos, classes);
    let records: Vec<&JobRecord> = by_key.values().copied().collect();
    let sweep = (configuration_infos.len() > 1).then(|| {
        compare_configurations(
            &configuration_infos,
            &groups,
            &records,
            rope_of(&experiment.config_toml),
        )
    });
    let early_stopping = early_stopping(&configuration_infos, &records);
    let silent_jobs: Vec<SilentJob> = records.iter().filter_map(|j| silent(j)).collect();
    count_silent(&mut groups, &records);
    Report {
        schema_version: SCHEMA_VERSION,
        generated_unix: now_unix,
        experiment: experiment_info(experiment, data_kind),
        compute: usage(experiment, &records, progress.complete, now_unix),
        environments: environments(&records),
        progress,
        groups,
        published: data_kind.published(),
        failed_jobs: failed_jobs(&records),
        configurations: configuration_infos,
        sweep,
        early_stopping,
        silent_jobs,
        verification: None,
        warnings,
        jobs: records.into_iter().cloned().collect(),
    }
}

/// The sweep's rope (`[sweep] rope`, percentage points); the default where
/// the stored configuration does not parse (the report already says so) or
/// has no sweep.
fn rope_of(config_toml: &str) -> f64 {
    ExperimentConfig::from_toml_str(config_toml)
        .ok()
        .and_then(|c| c.sweep.map(|s| s.rope()))
        .unwrap_or(DEFAULT_ROPE_PP)
}

/// The experiment's data set; when its stored configuration names one this
/// build does not know, the default, and `warnings` says so.
fn data_kind(experiment: &ExperimentRecord, warnings: &mut Vec<String>) -> DataKind {
    match data_kind_of(&experiment.config_toml) {
        Ok(kind) => kind,
        Err(e) => {
            warnings.push(format!(
                "the stored configuration's data set is not known ({e}); the report takes it for {}",
                DataKind::default()
            ));
            DataKind::default()
        }
    }
}

/// Counts in each group its succeeded jobs that were silent.
fn count_silent(groups: &mut [GroupReport], records: &[&JobRecord]) {
    for g in groups {
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
}

/// The failed and cancelled jobs, in job order.
fn failed_jobs(records: &[&JobRecord]) -> Vec<FailedJob> {
    records
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
        .collect()
}

/// Identity and exact configuration of `experiment`.
fn experiment_info(experiment: &ExperimentRecord, data_kind: DataKind) -> ExperimentInfo {
    ExperimentInfo {
        id: experiment.id.clone(),
        name: experiment.name.clone(),
        config_hash: experiment.config_hash.clone(),
        config_toml: experiment.config_toml.clone(),
        created_unix: experiment.created_unix,
        class_names: experiment.class_names.clone(),
        data_kind,
    }
}

/// The data set of a stored configuration: its `[data] kind`, the default
/// (SL-Animals-DVS) when it has none. Read from the TOML alone, so that a
/// configuration this build no longer accepts in full still names its data
/// set; a text that is not TOML at all is taken for the default (the report
/// already warns that it does not parse).
pub(crate) fn data_kind_of(config_toml: &str) -> Result<DataKind, String> {
    let Ok(table) = config_toml.parse::<toml::Table>() else {
        return Ok(DataKind::default());
    };
    match table.get("data").and_then(|d| d.get("kind")) {
        None => Ok(DataKind::default()),
        Some(toml::Value::String(kind)) => kind.parse().map_err(|e| format!("{e}")),
        Some(other) => Err(format!("data.kind = {other} is not a string")),
    }
}

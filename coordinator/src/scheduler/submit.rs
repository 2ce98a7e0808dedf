//! What `submit` takes: an experiment config with its planned jobs.

use std::collections::BTreeMap;
use std::path::Path;

use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::{DataKind, SampleCut};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::Configuration;
use spikecv_common::experiment::plan::{PlannedJob, plan_from_root};

use super::SchedulerError;

/// An experiment to submit: its config, the text as submitted, and its jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The parsed config.
    pub config: ExperimentConfig,
    /// The config text exactly as submitted (kept for the report).
    pub config_toml: String,
    /// The planned jobs (configurations × variants × seeds × folds).
    pub jobs: Vec<PlannedJob>,
    /// The experiment's configurations (one without `[sweep]`); a job's
    /// `configuration` indexes this list.
    pub configurations: Vec<Configuration>,
    /// Fingerprint of the data set the plan was made from, when known; workers
    /// must have the same one.
    pub data_fingerprint: Option<String>,
    /// Class names in class order.
    pub class_names: Vec<String>,
    /// Samples per recording, for a data set whose recordings hold any
    /// number of them (DVS128 Gesture: its label rows); `None` for one per
    /// class (SL-Animals) or when the root holds no labels to count.
    pub sample_counts: Option<BTreeMap<String, u64>>,
}

impl Submission {
    /// Plans `config` over `config.data.root`'s file list. Class names come
    /// from the root's definitions (SL-Animals' `class_defs.csv`, DVS128
    /// Gesture's `gesture_mapping.csv`) when present, else the data set's
    /// published names; DVS128 Gesture's sample counts from its labels files
    /// when the root holds them all.
    pub fn from_config(
        config: ExperimentConfig,
        config_toml: String,
        data_fingerprint: Option<String>,
    ) -> Result<Self, SchedulerError> {
        let plan = plan_from_root(&config, data_fingerprint.as_deref())?;
        let bad = |e: DataError| SchedulerError::BadRequest {
            message: e.to_string(),
        };
        let kind = config.data.kind;
        let root = &config.data.root;
        let class_names = kind.class_names_or_default(root).map_err(bad)?;
        // Label rows vary per recording: count them where the root holds them.
        let sample_counts = match (kind.cut(), kind.files_dir(root)) {
            (SampleCut::TimeWindows, Some(dir)) => {
                label_row_counts(kind, &dir, &plan.jobs).map_err(bad)?
            }
            _ => None,
        };
        Ok(Self {
            config,
            config_toml,
            jobs: plan.jobs,
            configurations: plan.configurations,
            data_fingerprint,
            class_names,
            sample_counts,
        })
    }

    /// The config `job` runs, as the store keeps it for the worker: its
    /// configuration's (the sweep's values applied, no `[sweep]`) narrowed to
    /// its seed and variant. A job whose configuration index is out of range
    /// (not one this submission planned) runs the experiment's own config.
    pub fn job_config(&self, job: &PlannedJob) -> ExperimentConfig {
        self.configurations
            .get(job.configuration)
            .map_or(&self.config, |c| &c.config)
            .for_job(job.seed, job.variant)
    }
}

/// The label rows of every recording the jobs test on, from `dir`'s labels
/// files; `None` when one is missing (a head node holding only the trial
/// lists: results are then not checked against a test set's size).
fn label_row_counts(
    kind: DataKind,
    dir: &Path,
    jobs: &[PlannedJob],
) -> Result<Option<BTreeMap<String, u64>>, DataError> {
    let mut counts = BTreeMap::new();
    for recording in jobs.iter().flat_map(|j| &j.split.test) {
        if counts.contains_key(recording) {
            continue;
        }
        if !kind.tags_path(dir, recording).is_file() {
            return Ok(None);
        }
        let rows = kind.sample_classes_at(dir, recording)?.len() as u64;
        counts.insert(recording.clone(), rows);
    }
    Ok(Some(counts))
}

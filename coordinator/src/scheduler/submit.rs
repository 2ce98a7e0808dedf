//! What `submit` takes: an experiment config with its planned jobs.

use spikecv_common::config::ExperimentConfig;
use spikecv_common::datakind::DataKind;
use spikecv_common::dataset::{CLASS_DEFS, CLASS_NAMES, read_class_names};
use spikecv_common::plan::{PlannedJob, plan_from_root};
use spikecv_common::sweep::Configuration;

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
}

impl Submission {
    /// Plans `config` over `config.data.root`'s file list; class names come from
    /// the root's definitions file when present, else the 19 SL-Animals names.
    /// A data set other than SL-Animals is refused (its training is not done).
    pub fn from_config(
        config: ExperimentConfig,
        config_toml: String,
        data_fingerprint: Option<String>,
    ) -> Result<Self, SchedulerError> {
        if config.data.kind != DataKind::SlAnimals {
            // The worker still cuts and labels samples as SL-Animals' 19
            // classes: refuse rather than train on wrong labels.
            return Err(SchedulerError::BadRequest {
                message: format!(
                    "data.kind = \"{}\": training this data set is not supported yet \
                     (`coordinator plan` and `coordinator data` work on it)",
                    config.data.kind
                ),
            });
        }
        let plan = plan_from_root(&config, data_fingerprint.as_deref())?;
        let defs = config.data.root.join(CLASS_DEFS);
        let class_names = if defs.is_file() {
            read_class_names(&defs).map_err(|e| SchedulerError::BadRequest {
                message: e.to_string(),
            })?
        } else {
            CLASS_NAMES.iter().map(|s| (*s).to_owned()).collect()
        };
        Ok(Self {
            config,
            config_toml,
            jobs: plan.jobs,
            configurations: plan.configurations,
            data_fingerprint,
            class_names,
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

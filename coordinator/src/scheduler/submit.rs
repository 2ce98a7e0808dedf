//! Submitting an experiment: what `submit` takes (an experiment config with
//! its planned jobs) and the operation, one store transaction that stores
//! the experiment and its jobs (reusing, requeuing or leaving alone those
//! an earlier experiment planned).

use std::collections::BTreeMap;
use std::path::Path;

use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::{DataKind, SampleCut};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::Configuration;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::{PlannedJob, plan_from_root};
use spikecv_common::experiment::trainer;

use super::checkpoint_ops::drop_checkpoint;
use super::fence::{sha256_hex, to_json};
use super::types::{ExperimentId, SubmitOutcome};
use super::verify;
use super::{Scheduler, SchedulerError};
use crate::store::job_writes::{self, NewExperiment, NewJob};
use crate::store::{StoreError, jobs, verify_rows};

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

/// Hex digits of the config hash kept in an experiment id.
const EXPERIMENT_ID_HEX_LEN: usize = 12;

impl Scheduler {
    /// Stores an experiment and its jobs. Submitting the same config again is
    /// idempotent; a job that already succeeded (in this or another experiment) is
    /// reused, a failed or cancelled one is put back to pending with a fresh retry
    /// budget, a pending or running one is left alone.
    pub fn submit(&mut self, s: &Submission) -> Result<SubmitOutcome, SchedulerError> {
        let now = self.now_ms();
        let normalised = s.config.to_toml_string();
        let config_hash = sha256_hex(normalised.as_bytes());
        let experiment = ExperimentId(config_hash[..EXPERIMENT_ID_HEX_LEN].to_owned());
        let mut out = SubmitOutcome {
            experiment: experiment.clone(),
            jobs_new: 0,
            jobs_reused: 0,
            jobs_in_progress: 0,
            jobs_requeued: 0,
        };
        let tx = self.store.transaction()?;
        job_writes::insert_experiment(
            &tx,
            &NewExperiment {
                id: &experiment,
                name: s.config.name.as_deref(),
                config_toml: &s.config_toml,
                config_hash: &config_hash,
                data_fingerprint: s.data_fingerprint.as_deref(),
                class_names: &s.class_names,
                sample_counts: s.sample_counts.as_ref(),
                created_ms: now,
            },
        )?;
        let max_attempts = s.config.protocol.max_attempts;
        let prunes = s.config.pruning().ok().flatten().is_some();
        if s.config.protocol.verify.is_some() {
            verify_rows::keep_secret(&tx, &experiment.0, &verify::new_secret())?;
        }
        let mut dropped = Vec::new();
        for (position, job) in s.jobs.iter().enumerate() {
            match jobs::job(&tx, &job.id)? {
                None => {
                    let job_config = s.job_config(job);
                    job_writes::insert_job(
                        &tx,
                        &NewJob {
                            id: &job.id,
                            experiment: &experiment,
                            variant: job.variant.as_str(),
                            seed: i64::try_from(job.seed).map_err(|_| {
                                SchedulerError::BadRequest {
                                    message: format!("seed {} is too large", job.seed),
                                }
                            })?,
                            fold: job.fold,
                            protocol: job.protocol.as_str(),
                            config_toml: &job_config.to_toml_string(),
                            split_json: &to_json(&job.split)?,
                            data_fingerprint: s.data_fingerprint.as_deref(),
                            max_attempts,
                            epochs: job_config.training.epochs,
                            epoch_timeout_s: job_config.protocol.epoch_timeout_s,
                            trainer: trainer::name_of(job_config.trainer.as_ref()),
                            now,
                        },
                    )?;
                    out.jobs_new += 1;
                }
                Some(row) => match row.status {
                    JobStatus::Succeeded => out.jobs_reused += 1,
                    JobStatus::Pending | JobStatus::Leased | JobStatus::Running => {
                        out.jobs_in_progress += 1
                    }
                    // A pruned job stays pruned where the sweep prunes; an
                    // experiment without pruning runs it to its end.
                    JobStatus::Pruned if prunes => out.jobs_reused += 1,
                    JobStatus::Failed | JobStatus::Cancelled | JobStatus::Pruned => {
                        // A fresh start: nothing of an earlier run is resumed.
                        drop_checkpoint(&tx, &job.id, &mut dropped)?;
                        job_writes::requeue_job(&tx, &job.id, max_attempts, now)?;
                        out.jobs_requeued += 1;
                    }
                },
            }
            job_writes::link_job(&tx, &experiment, &job.id, position, job.configuration)?;
            if let Some(v) = s.job_config(job).protocol.verify {
                verify_rows::raise_fraction(&tx, &job.id, v.fraction())?;
                // A job reused from an earlier experiment keeps its state;
                // one never sampled is sampled now.
                verify::sample_succeeded(&tx, &job.id, now)?;
            }
        }
        tx.commit().map_err(StoreError::from)?;
        self.remove_checkpoint_files(&dropped);
        tracing::info!(experiment = %out.experiment, new = out.jobs_new, reused = out.jobs_reused,
            in_progress = out.jobs_in_progress, requeued = out.jobs_requeued, "experiment submitted");
        Ok(out)
    }
}

//! A leased job whose experiment names a training script
//! (docs/trainers.md): run by the trainer's runner ([`crate::trainer::run`])
//! on the slot's training thread instead of the slot's process, with the
//! same observer, checkpoint upload and outcome report.

use std::path::PathBuf;
use std::time::Duration;

use spikecv_common::dataset::Dataset;
use spikecv_common::experiment::manifest::Manifest;
use spikecv_common::experiment::trainer::is_native;

use super::observer::SlotObserver;
use super::state::Shared;
use crate::slot_child::wire::ChildOutcome;
use crate::train::JobSpec;
use crate::trainer::{ScriptJob, Trainer};

/// The folder of `<work_dir>` where exported frames are cached.
pub const FRAMES_DIR: &str = "frames";

/// Which runner a job needs.
pub(super) enum Runner {
    /// The native engine, in the slot's process.
    Native,
    /// A registered script.
    Script(Box<Trainer>),
    /// A script this worker was not started with.
    Missing(String),
}

/// The runner `spec`'s experiment names, among this worker's trainers.
pub(super) fn runner_of(shared: &Shared, spec: &JobSpec) -> Runner {
    let trainer = spec.config.trainer.as_ref();
    if is_native(trainer) {
        return Runner::Native;
    }
    let name = trainer.map(|t| t.name.clone()).unwrap_or_default();
    match shared.config.trainers.registry.get(&name) {
        Some(t) => Runner::Script(Box::new(t.clone())),
        None => Runner::Missing(name),
    }
}

/// Everything a script's attempt needs on its thread.
pub(super) struct ScriptLaunch {
    /// The trainer.
    pub trainer: Trainer,
    /// The job.
    pub spec: JobSpec,
    /// The job's id.
    pub job_id: String,
    /// The attempt's id.
    pub attempt: String,
    /// The data set root.
    pub data_dir: PathBuf,
    /// Where frames are cached.
    pub frames_root: PathBuf,
    /// Time the script gets after SIGTERM.
    pub grace: Duration,
    /// The slot's manifest.
    pub manifest: Manifest,
}

impl ScriptLaunch {
    /// The launch of `spec`'s attempt `attempt` of job `job_id` in slot
    /// `index` with `trainer`.
    pub fn new(
        shared: &Shared,
        index: usize,
        trainer: Trainer,
        spec: JobSpec,
        job_id: &str,
        attempt: &str,
    ) -> ScriptLaunch {
        let manifest = shared
            .registration
            .slots
            .get(index)
            .and_then(|s| s.manifest.as_ref())
            .map(Manifest::from_proto)
            .unwrap_or_default();
        ScriptLaunch {
            data_dir: shared
                .config
                .data_dir
                .clone()
                .unwrap_or_else(|| spec.config.data.root.clone()),
            frames_root: shared.config.work_dir.join(FRAMES_DIR),
            grace: shared.config.trainers.grace,
            trainer,
            spec,
            job_id: job_id.to_owned(),
            attempt: attempt.to_owned(),
            manifest,
        }
    }

    /// Runs the attempt to its end (blocking).
    pub fn run(self, observer: &mut SlotObserver) -> ChildOutcome {
        let data = match Dataset::open(&self.data_dir) {
            Ok(d) => d,
            Err(e) => {
                return ChildOutcome::Failed {
                    message: format!("data set {}: {e}", self.data_dir.display()),
                    deterministic: !e.is_io(),
                    sticky: false,
                };
            }
        };
        let job = ScriptJob {
            trainer: &self.trainer,
            spec: &self.spec,
            job_id: &self.job_id,
            attempt: &self.attempt,
            data: &data,
            frames_root: &self.frames_root,
            grace: self.grace,
            manifest: &self.manifest,
        };
        crate::trainer::run(&job, observer)
    }
}

//! `worker reproduce` of a job a training script ran (docs/trainers.md):
//! refused unless this worker has the script and declares it deterministic,
//! else the script runs the job again ([`crate::trainer::run`]).

use std::path::Path;
use std::time::Duration;

use spikecv_common::dataset::Dataset;
use spikecv_common::experiment::job::JobResult;
use spikecv_common::experiment::manifest::Provenance;
use spikecv_common::experiment::trainer::is_native;

use super::registry::{RegistryError, TrainerArgs, TrainerSettings};
use super::{ScriptJob, Trainer};
use crate::slot_child::wire::ChildOutcome;
use crate::train::{JobSpec, NoObserver};

/// Why a script's job was not run again.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// This worker lacks the script, or does not declare it deterministic.
    #[error("job {job} cannot be reproduced here: {why}")]
    Refused {
        /// The job.
        job: String,
        /// Why.
        why: String,
    },
    /// The `--trainer` or `--trainers` flags are unusable.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The script's run did not complete.
    #[error("running trainer {trainer:?} again: {message}")]
    Ended {
        /// The trainer.
        trainer: String,
        /// How it ended.
        message: String,
    },
}

/// The registered trainer that ran `spec`'s job (`None`: the native
/// engine) and the grace period; a script this worker lacks, or does not
/// declare deterministic, is refused with the reason.
pub fn script_trainer(
    job: &str,
    spec: &JobSpec,
    args: &TrainerArgs,
) -> Result<Option<(Trainer, Duration)>, ReplayError> {
    let named = spec.config.trainer.as_ref();
    if is_native(named) {
        return Ok(None);
    }
    let name = named.map(|t| t.name.clone()).unwrap_or_default();
    let refuse = |why: String| ReplayError::Refused {
        job: job.to_owned(),
        why,
    };
    let settings = TrainerSettings::from_args(args)?;
    match settings.registry.get(&name) {
        None => Err(refuse(format!(
            "it ran the training script {name:?}, which this worker does not have \
             (--trainer {name}=SCRIPT, or --trainers FILE declaring it deterministic = true)"
        ))),
        Some(t) if !t.deterministic => Err(refuse(format!(
            "its training script {name:?} is not declared deterministic on this worker: \
             a script's runs are compared only where its worker vouches that the same job \
             gives the same figures (deterministic = true in a --trainers file)"
        ))),
        Some(t) => Ok(Some((t.clone(), settings.grace))),
    }
}

/// Runs job `job_id` (`spec`, its files in `spec.out_dir`, frames under
/// `out`) with its script; its result and provenance.
pub fn run_again(
    job_id: &str,
    spec: &JobSpec,
    data: &Dataset,
    trainer: &Trainer,
    grace: Duration,
    out: &Path,
) -> Result<(JobResult, Provenance), ReplayError> {
    let manifest = crate::manifest::job_manifest(
        spec.device,
        spec.config.training.precision,
        &spec.data_fingerprint,
    );
    let frames_root = out.join("frames");
    let job = ScriptJob {
        trainer,
        spec,
        job_id,
        attempt: "reproduce",
        data,
        frames_root: &frames_root,
        grace,
        manifest: &manifest,
    };
    match crate::trainer::run(&job, &mut NoObserver) {
        ChildOutcome::Complete { result, provenance } => Ok((*result, *provenance)),
        ChildOutcome::Failed { message, .. } => Err(ReplayError::Ended {
            trainer: trainer.name.clone(),
            message,
        }),
        ChildOutcome::Stopped { epoch } => Err(ReplayError::Ended {
            trainer: trainer.name.clone(),
            message: format!("stopped after epoch {epoch}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use spikecv_common::dataset::variant::Variant;
    use spikecv_common::experiment::config::ExperimentConfig;
    use spikecv_common::experiment::cv::FoldSplit;

    use super::*;
    use crate::devices::DeviceSpec;
    use crate::lif::fused::LifKernels;

    fn spec(trainer: &str) -> JobSpec {
        let text = format!("[data]\nroot = \"d\"\n[trainer]\nname = \"{trainer}\"\n");
        JobSpec {
            config: ExperimentConfig::from_toml_str(&text).unwrap(),
            variant: Variant::WHOLE,
            seed: 0,
            fold: 0,
            split: FoldSplit {
                train: Vec::new(),
                val: Vec::new(),
                test: Vec::new(),
            },
            device: DeviceSpec::Cpu,
            out_dir: "o".into(),
            init: None,
            lif_kernels: LifKernels::Auto,
            data_fingerprint: String::new(),
        }
    }

    #[test]
    fn only_a_deterministic_script_of_this_worker_reproduces() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.py"), "pass\n").unwrap();
        let file = dir.path().join("trainers.toml");
        let write = |deterministic: bool| {
            let text =
                format!("[trainers.py]\nscript = \"t.py\"\ndeterministic = {deterministic}\n");
            std::fs::write(&file, text).unwrap();
        };
        let mut args = TrainerArgs::default();
        assert!(
            script_trainer("j", &spec("native"), &args)
                .unwrap()
                .is_none()
        );
        let e = script_trainer("j", &spec("py"), &args)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not have") && e.contains("job j"), "{e}");
        write(false);
        args.trainers = Some(file.clone());
        let e = script_trainer("j", &spec("py"), &args)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not declared deterministic"), "{e}");
        write(true);
        let (t, _) = script_trainer("j", &spec("py"), &args).unwrap().unwrap();
        assert!(t.deterministic);
    }
}

//! Everything a script's attempt needs before the script starts: the job's
//! sets checked, its samples listed, its frames exported (when asked), a
//! fresh checkpoint folder, the downloaded checkpoint unwrapped (the
//! script's file as `resume.<ext>`, the epochs it holds and their metrics),
//! the job file and an empty events file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::events::frames::FrameSpec;
use spikecv_common::experiment::manifest::Manifest;
use spikecv_common::experiment::sections::ProtocolKind;

use super::events::Rules;
use super::frames::{FramesError, cache_key, export};
use super::history::History;
use super::jobfile::{FORMAT, FramesInfo, JobFile, Listing, TrainerEntry, device_name};
use super::registry::Trainer;
use super::wrap::unwrap;
use crate::loader::LoadError;
use crate::train::{JobShape, JobSpec, checkpoint_path, frame_specs, job_key, net_config};
use crate::weights::WeightsError;

/// The job file in the job's folder.
pub const JOB_FILE: &str = "job.json";
/// The events file in the job's folder.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The script's checkpoint folder in the job's folder.
pub const CHECKPOINT_DIR: &str = "trainer";
/// The frames folder in the job's folder, when the data has no fingerprint
/// to share them under.
pub const JOB_FRAMES_DIR: &str = "frames";

/// A job for a training script: which script, which job, where things are.
#[derive(Debug, Clone)]
pub struct ScriptJob<'a> {
    /// The trainer that runs it.
    pub trainer: &'a Trainer,
    /// The job (its `out_dir` is the job's folder).
    pub spec: &'a JobSpec,
    /// The job's id.
    pub job_id: &'a str,
    /// The attempt's id.
    pub attempt: &'a str,
    /// The data set.
    pub data: &'a Dataset,
    /// Where exported frames are cached (`<work_dir>/frames`).
    pub frames_root: &'a Path,
    /// Time the script gets after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// The slot's manifest (the result's gets the trainer and its hash).
    pub manifest: &'a Manifest,
}

/// Why an attempt could not start its script.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The data root holds another data set than the experiment's.
    #[error("data.kind = \"{wanted}\", but the data root {} holds {found}", root.display())]
    WrongData {
        /// The experiment's.
        wanted: String,
        /// The root's.
        found: String,
        /// The root.
        root: PathBuf,
    },
    /// A set the protocol uses is empty.
    #[error("the {set} set of this fold is empty")]
    EmptySet {
        /// `train`, `val` or `test`.
        set: &'static str,
    },
    /// The samples could not be listed.
    #[error(transparent)]
    Load(Box<LoadError>),
    /// A recording's windows could not be read.
    #[error(transparent)]
    Data(Box<DataError>),
    /// The frames could not be exported.
    #[error(transparent)]
    Frames(#[from] FramesError),
    /// A folder or file of the job could not be made.
    #[error("{}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The job file or the resume file could not be written.
    #[error(transparent)]
    Write(#[from] WeightsError),
}

impl PrepareError {
    /// Whether another attempt would fail the same way (not an I/O error).
    pub fn is_deterministic(&self) -> bool {
        match self {
            PrepareError::WrongData { .. } | PrepareError::EmptySet { .. } => true,
            PrepareError::Load(e) => !e.is_io(),
            PrepareError::Data(e) => !e.is_io(),
            PrepareError::Frames(e) => !e.is_io(),
            PrepareError::Io { .. } | PrepareError::Write(_) => false,
        }
    }
}

/// An attempt ready to start its script.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The job file.
    pub job_file: PathBuf,
    /// The events file (empty).
    pub events: PathBuf,
    /// What the events are checked against.
    pub rules: Rules,
    /// The epochs the resumed checkpoint holds (none on a fresh start).
    pub history: History,
    /// The job's checkpoint key (the native engine's).
    pub job_key: String,
    /// The resumed checkpoint's epoch and the SHA-256 of the script's file
    /// in it.
    pub resumed: Option<(u32, String)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + use<> {
    let path = path.to_owned();
    move |source| PrepareError::Io { path, source }
}

/// The sets the protocol uses are not empty (as the native engine checks).
fn check_sets(spec: &JobSpec) -> Result<(), PrepareError> {
    let s = &spec.split;
    let with_val = spec.config.protocol.kind == ProtocolKind::TrainValTest;
    for (set, empty) in [
        ("train", s.train.is_empty()),
        ("test", s.test.is_empty()),
        ("val", with_val && s.val.is_empty()),
    ] {
        if empty {
            return Err(PrepareError::EmptySet { set });
        }
    }
    Ok(())
}

/// Prepares `job`'s attempt (see the module's documentation).
pub fn prepare(job: &ScriptJob<'_>) -> Result<Prepared, PrepareError> {
    let (spec, data) = (job.spec, job.data);
    let config = &spec.config;
    if data.kind() != config.data.kind {
        return Err(PrepareError::WrongData {
            wanted: config.data.kind.to_string(),
            found: data.kind().to_string(),
            root: data.root().to_owned(),
        });
    }
    check_sets(spec)?;
    let listing = Listing::of(data, &spec.split).map_err(|e| PrepareError::Load(Box::new(e)))?;
    let (train, test) = frame_specs(config);
    let with_frames = config.trainer.as_ref().is_some_and(|t| t.frames);
    let frames = match with_frames {
        true => Some(export_frames(job, &listing, &train)?),
        false => None,
    };
    let out = &spec.out_dir;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let out = std::fs::canonicalize(out).map_err(io(out))?;
    let ckpt_dir = out.join(CHECKPOINT_DIR);
    match std::fs::remove_dir_all(&ckpt_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&ckpt_dir)(e)),
        _ => {}
    }
    std::fs::create_dir_all(&ckpt_dir).map_err(io(&ckpt_dir))?;
    let classes = data.class_names().len();
    let shape = JobShape {
        net: net_config(config, classes),
        train,
        test,
    };
    let key = job_key(spec, &shape);
    let (history, resume, resumed_sha256) = match resume(job, &key, &ckpt_dir)? {
        Some((history, path, sha)) => (history, Some(path), Some(sha)),
        None => (History::new(config.protocol.kind), None, None),
    };
    let resume_epoch = history.last_epoch();
    let splits = listing
        .entries(data, frames.as_ref())
        .map_err(|e| PrepareError::Data(Box::new(e)))?;
    let tc = config.trainer.as_ref();
    let file = JobFile {
        format: FORMAT,
        job: job.job_id.to_owned(),
        attempt: job.attempt.to_owned(),
        variant: spec.variant.to_string(),
        seed: spec.seed,
        fold: spec.fold,
        protocol: config.protocol.kind.as_str(),
        trainer: TrainerEntry {
            name: job.trainer.name.clone(),
            params: serde_json::to_value(tc.map(|t| &t.params)).unwrap_or_default(),
            sha256: job.trainer.sha256.clone(),
        },
        config: serde_json::to_value(config).unwrap_or_default(),
        epochs: config.training.epochs,
        classes: data.class_names().to_vec(),
        splits,
        frames: frames.as_ref().map(|_| FramesInfo::of(&train)),
        device: device_name(spec.device),
        checkpoint_dir: ckpt_dir.clone(),
        resume_epoch: resume.as_ref().map(|_| resume_epoch),
        resume,
    };
    let job_file = out.join(JOB_FILE);
    file.write(&job_file)?;
    let events = out.join(EVENTS_FILE);
    std::fs::File::create(&events).map_err(io(&events))?;
    Ok(Prepared {
        job_file,
        events,
        rules: Rules {
            protocol: config.protocol.kind,
            epochs: config.training.epochs,
            classes,
            test_samples: listing.test.len(),
            resume_epoch,
            checkpoint_dir: ckpt_dir,
        },
        history,
        job_key: key,
        resumed: resumed_sha256.map(|sha| (resume_epoch, sha)),
    })
}

/// Exports the frames of every sample of the job: into the shared cache
/// under the data's fingerprint and the binning, or into the job's folder
/// when the data has no fingerprint.
fn export_frames(
    job: &ScriptJob<'_>,
    listing: &Listing,
    spec: &FrameSpec,
) -> Result<BTreeMap<String, PathBuf>, PrepareError> {
    let data = job.data;
    let identity = Some(job.spec.data_fingerprint.clone())
        .filter(|f| !f.is_empty())
        .or_else(|| crate::cache::dataset_identity(data));
    let dir = match identity {
        Some(id) => job.frames_root.join(cache_key(&id, data.kind(), spec)),
        None => job.spec.out_dir.join(JOB_FRAMES_DIR),
    };
    let samples: Vec<_> = listing.all().cloned().collect();
    Ok(export(data, &samples, spec, &dir)?)
}

/// What a resumed checkpoint gives: the history, the resume file and the
/// SHA-256 of the script's file.
type Resumed = (History, PathBuf, String);

/// The history and the resume file of the job's downloaded checkpoint, when
/// it has one this trainer wrote for this job; `None` (a fresh start)
/// otherwise: a checkpoint only saves time.
fn resume(
    job: &ScriptJob<'_>,
    key: &str,
    ckpt_dir: &Path,
) -> Result<Option<Resumed>, PrepareError> {
    let protocol = job.spec.config.protocol.kind;
    let fresh = None;
    let downloaded = checkpoint_path(&job.spec.out_dir);
    if !downloaded.exists() {
        return Ok(fresh);
    }
    let unwrapped = match unwrap(&downloaded, key, &job.trainer.name) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint unusable; the script starts from epoch 0");
            return Ok(fresh);
        }
    };
    let p = &unwrapped.progress;
    let listed: Vec<u32> = p.epochs.iter().map(|m| m.epoch).collect();
    if listed != (1..=p.epoch).collect::<Vec<u32>>() || p.epoch > job.spec.config.training.epochs {
        tracing::warn!(
            epoch = p.epoch,
            ?listed,
            "checkpoint's record is inconsistent; the script starts from epoch 0"
        );
        return Ok(fresh);
    }
    let ext = Path::new(&unwrapped.origin.file)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric()));
    let target = ckpt_dir.join(match ext {
        Some(ext) => format!("resume.{ext}"),
        None => "resume".to_owned(),
    });
    crate::weights::write_atomic(&target, &unwrapped.bytes)?;
    tracing::info!(epoch = p.epoch, path = %target.display(), "resuming the script from its checkpoint");
    let history = History::resumed(protocol, p.epochs.clone(), p.best.as_ref());
    Ok(Some((history, target, sha256_hex(&unwrapped.bytes))))
}

/// SHA-256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

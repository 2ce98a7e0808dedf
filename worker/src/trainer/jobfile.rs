//! The job file a script reads (`$SPIKECV_JOB`, JSON, `format` 1), exactly
//! as docs/trainers.md ("The job, handed to the script") describes it and
//! `python/spikecv_trainer/job.py` reads it: the job, its trainer and config,
//! its classes, its splits as samples (absolute paths; a sample's window in
//! its recording where the data set cuts samples by time), the frames'
//! settings, the device, the checkpoint folder and what to resume from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::{Label, SampleCut};
use spikecv_common::events::frames::FrameSpec;
use spikecv_common::experiment::cv::FoldSplit;

use super::frames::{encoding, mode_name};
use crate::devices::DeviceSpec;
use crate::loader::{LoadError, SampleRef, source_samples};
use crate::weights::{WeightsError, write_atomic};

/// The job file's format.
pub const FORMAT: u32 = 1;

/// One sample of a split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleEntry {
    /// Its name, `<recording>_<NN>` (unique in the data set).
    pub name: String,
    /// The event file it is cut from (its own file when sliced).
    pub recording: PathBuf,
    /// Start of its window in the recording (µs), where samples are cut by time.
    pub start_us: Option<i64>,
    /// End of its window (µs, exclusive).
    pub end_us: Option<i64>,
    /// Its class index.
    pub label: usize,
    /// Its exported frames, when the job has frames.
    pub frames: Option<PathBuf>,
}

/// The samples of each split.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Splits {
    /// Training samples, in training order.
    pub train: Vec<SampleEntry>,
    /// Validation samples.
    pub val: Vec<SampleEntry>,
    /// Test samples.
    pub test: Vec<SampleEntry>,
}

/// How the frames were binned and stored (`frames`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FramesInfo {
    /// T.
    pub steps: usize,
    /// Window length, ms.
    pub dt_ms: u32,
    /// `OR`, `SUM` or `SUM_NORM`.
    pub bin_mode: &'static str,
    /// The decoded shape `[2, X, Y, T]`.
    pub shape: [usize; 4],
    /// `bits` or `counts`.
    pub encoding: &'static str,
}

impl FramesInfo {
    /// The settings of frames binned by `spec`.
    pub fn of(spec: &FrameSpec) -> FramesInfo {
        FramesInfo {
            steps: spec.steps,
            dt_ms: spec.dt_ms,
            bin_mode: mode_name(spec.mode),
            shape: spec.shape(),
            encoding: encoding(spec.mode),
        }
    }
}

/// The trainer as the job file names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainerEntry {
    /// Its name.
    pub name: String,
    /// `[trainer.params]`, as they are.
    pub params: serde_json::Value,
    /// SHA-256 of its script.
    pub sha256: String,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobFile {
    /// [`FORMAT`].
    pub format: u32,
    /// The job's id.
    pub job: String,
    /// The attempt's id.
    pub attempt: String,
    /// The data set variant.
    pub variant: String,
    /// The seed.
    pub seed: u64,
    /// The fold (0-based).
    pub fold: u32,
    /// `train-val-test`, `train-test` or `official`.
    pub protocol: &'static str,
    /// The trainer.
    pub trainer: TrainerEntry,
    /// The job's experiment config (sweep values applied), as JSON.
    pub config: serde_json::Value,
    /// Epochs in all.
    pub epochs: u32,
    /// The class names; a label indexes them.
    pub classes: Vec<String>,
    /// The samples.
    pub splits: Splits,
    /// The frames' settings; `None` without `[trainer] frames = true`.
    pub frames: Option<FramesInfo>,
    /// `cpu` or `cuda`.
    pub device: &'static str,
    /// Where checkpoints go.
    pub checkpoint_dir: PathBuf,
    /// The script's checkpoint to resume from.
    pub resume: Option<PathBuf>,
    /// The epochs it holds.
    pub resume_epoch: Option<u32>,
}

impl JobFile {
    /// Writes the file atomically.
    pub fn write(&self, path: &Path) -> Result<(), WeightsError> {
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_atomic(path, &text)
    }
}

/// `cpu` or `cuda`: what the script trains on (the one GPU it sees).
pub fn device_name(device: DeviceSpec) -> &'static str {
    match device {
        DeviceSpec::Cpu => "cpu",
        DeviceSpec::Cuda(_) => "cuda",
    }
}

/// The samples of each split of a job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Training samples.
    pub train: Vec<SampleRef>,
    /// Validation samples.
    pub val: Vec<SampleRef>,
    /// Test samples.
    pub test: Vec<SampleRef>,
}

impl Listing {
    /// The samples of `split`'s recordings in `data`, as the native engine
    /// lists them ([`source_samples`]).
    pub fn of(data: &Dataset, split: &FoldSplit) -> Result<Listing, LoadError> {
        let classes = data.class_names().len();
        Ok(Listing {
            train: source_samples(data, &split.train, classes)?,
            val: source_samples(data, &split.val, classes)?,
            test: source_samples(data, &split.test, classes)?,
        })
    }

    /// Every sample, train then val then test.
    pub fn all(&self) -> impl Iterator<Item = &SampleRef> {
        self.train.iter().chain(&self.val).chain(&self.test)
    }

    /// The job file's splits, with each sample's frames file from `frames`.
    pub fn entries(
        &self,
        data: &Dataset,
        frames: Option<&BTreeMap<String, PathBuf>>,
    ) -> Result<Splits, DataError> {
        let mut windows = Windows::default();
        let mut list = |samples: &[SampleRef]| {
            samples
                .iter()
                .map(|s| entry(data, s, &mut windows, frames))
                .collect::<Result<Vec<_>, DataError>>()
        };
        Ok(Splits {
            train: list(&self.train)?,
            val: list(&self.val)?,
            test: list(&self.test)?,
        })
    }
}

/// The label rows of recordings read so far.
type Windows = HashMap<String, Vec<Label>>;

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn entry(
    data: &Dataset,
    s: &SampleRef,
    windows: &mut Windows,
    frames: Option<&BTreeMap<String, PathBuf>>,
) -> Result<SampleEntry, DataError> {
    let name = s.name();
    let (recording, window) = match data.kind().cut() {
        SampleCut::TimeWindows => {
            if !windows.contains_key(&s.recording) {
                windows.insert(s.recording.clone(), data.labels(&s.recording)?);
            }
            let label = windows.get(&s.recording).and_then(|l| l.get(s.index));
            let window = label.map(|l| (l.start_us, l.end_us));
            (data.recording_path(&s.recording), window)
        }
        // Cut by event indices: the reader cuts the sample (no time window).
        SampleCut::EventIndices if data.is_sliced(&s.recording) => {
            (data.sliced_path(&s.recording, s.index), None)
        }
        SampleCut::EventIndices => (data.recording_path(&s.recording), None),
    };
    Ok(SampleEntry {
        frames: frames.and_then(|f| f.get(&name)).cloned().map(absolute),
        name,
        recording: absolute(recording),
        start_us: window.map(|w| w.0),
        end_us: window.map(|w| w.1),
        label: s.class,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use spikecv_common::dataset::synth::{SynthOptions, SynthSize, generate};

    use super::*;

    #[test]
    fn samples_have_absolute_paths_labels_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(
            dir.path(),
            &SynthOptions {
                seed: 1,
                size: SynthSize::Tiny,
                recordings: Some(3),
            },
        )
        .unwrap();
        let data = Dataset::open(dir.path()).unwrap();
        let r = &summary.recordings;
        let split = FoldSplit {
            train: vec![r[0].clone(), r[1].clone()],
            val: Vec::new(),
            test: vec![r[2].clone()],
        };
        let listing = Listing::of(&data, &split).unwrap();
        assert_eq!(listing.train.len(), 38);
        assert_eq!(listing.all().count(), 57);
        let frames: BTreeMap<String, PathBuf> = listing
            .all()
            .map(|s| (s.name(), PathBuf::from(format!("f/{}.npy", s.name()))))
            .collect();
        let splits = listing.entries(&data, Some(&frames)).unwrap();
        let third = &splits.train[3];
        assert_eq!(third.name, format!("{}_03", r[0]));
        assert_eq!(third.label, 3);
        assert!(third.recording.is_absolute() && third.recording.is_file());
        assert_eq!((third.start_us, third.end_us), (None, None));
        let f = third.frames.as_ref().unwrap();
        assert!(f.is_absolute() && f.ends_with(format!("f/{}_03.npy", r[0])));
        assert_eq!(splits.test.len(), 19);
        assert!(splits.val.is_empty());
        let bare = listing.entries(&data, None).unwrap();
        assert!(bare.train.iter().all(|s| s.frames.is_none()));
        let json = serde_json::to_value(&bare.train[0]).unwrap();
        assert_eq!(json["start_us"], serde_json::Value::Null);
        assert_eq!(json["frames"], serde_json::Value::Null);
    }

    #[test]
    fn time_cut_samples_carry_their_label_windows() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            seed: 2,
            size: SynthSize::Tiny,
            recordings: Some(2),
        };
        let summary =
            spikecv_common::dataset::dvs_gesture::synth::generate(dir.path(), &opts).unwrap();
        let data = Dataset::open(dir.path()).unwrap();
        let r = &summary.recordings;
        let split = FoldSplit {
            train: vec![r[0].clone()],
            val: Vec::new(),
            test: vec![r[1].clone()],
        };
        let listing = Listing::of(&data, &split).unwrap();
        let splits = listing.entries(&data, None).unwrap();
        let labels = data.labels(&r[0]).unwrap();
        assert_eq!(splits.train.len(), labels.len());
        for (entry, label) in splits.train.iter().zip(&labels) {
            assert_eq!(entry.start_us, Some(label.start_us));
            assert_eq!(entry.end_us, Some(label.end_us));
            assert_eq!(entry.label, label.class);
            assert!(entry.recording.is_absolute() && entry.recording.is_file());
        }
    }
}

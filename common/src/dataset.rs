//! A data set root laid out like the downloaded SL-Animals-DVS (DESIGN.md):
//! `recordings/<name>.aedat`, `tags/<name>.csv`, optionally
//! `sliced/<name>_<NN>.npy`, and beside them
//! `SL-Animals-DVS_gestures_definitions.csv` and `filelist.txt` (the recordings to
//! use, in order). Everything works on what the file list names.
//!
//! A root may instead hold DVS128 Gesture as downloaded ([`crate::dataset::dvs_gesture`]):
//! [`Dataset::open`] tells the two apart by their files, and
//! [`Dataset::description`] says which it is and what it holds.

pub mod dvs_gesture;
pub mod error;
pub mod import;
pub mod kind;
pub mod metadata;
pub mod published;
pub mod registry;
pub mod sl_animals;
pub mod synth;
pub mod variant;

use std::fs::File;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dataset::error::{DataError, MAX_SAMPLE_SPAN_US, io_err};
use crate::dataset::kind::Label;
use crate::dataset::kind::{DataKind, Description, SampleCut};
use crate::dataset::variant::Variant;
use crate::events::Event;
use crate::events::aedat;
use crate::events::npy;
use crate::events::slicing::{sample_name, slice, slice_one};
use crate::events::tags::{self, CLASSES, Tag};

thread_local! {
    /// Per loader thread, the event buffer of the last raw recording read.
    static SPARE_EVENTS: std::cell::RefCell<Vec<Event>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `Ok` when `events` (sample `class` of `recording`) span at most
/// [`MAX_SAMPLE_SPAN_US`].
pub fn check_span(events: &[Event], recording: &str, class: usize) -> Result<(), DataError> {
    let (Some(lo), Some(hi)) = (
        events.iter().map(|e| e.t).min(),
        events.iter().map(|e| e.t).max(),
    ) else {
        return Ok(());
    };
    let span = hi.saturating_sub(lo);
    if span > MAX_SAMPLE_SPAN_US {
        return Err(DataError::SampleTooLong {
            recording: recording.to_owned(),
            class,
            span_s: span as f64 / 1e6,
            limit_s: (MAX_SAMPLE_SPAN_US / 1_000_000) as u64,
        });
    }
    Ok(())
}

/// An opened data set root.
#[derive(Debug, Clone)]
pub struct Dataset {
    root: PathBuf,
    /// Where the recordings' files lie: the root, or its `DvsGesture/`.
    dir: PathBuf,
    kind: DataKind,
    recordings: Vec<String>,
    class_names: Vec<String>,
}

impl Dataset {
    /// Opens a root: reads the file list and class definitions and checks that
    /// every listed recording is present, raw (`recordings/` + `tags/`) or sliced
    /// (all 19 `sliced/<name>_<NN>.npy`).
    ///
    /// A root without `filelist.txt` whose `DvsGesture/` (or itself) holds
    /// `trials_to_train.txt` opens as DVS128 Gesture ([`Dataset::open_kind`]).
    pub fn open(root: &Path) -> Result<Dataset, DataError> {
        Self::open_kind(root, DataKind::detect(root).unwrap_or_default())
    }

    /// Opens a root as the data set `kind`: reads its recording list and
    /// class names, and checks that every listed recording has its event
    /// file and tags or labels file (SL-Animals: or all its sliced samples).
    pub fn open_kind(root: &Path, kind: DataKind) -> Result<Dataset, DataError> {
        let cut = kind.cut();
        let dir = match kind.files_dir(root) {
            Some(dir) => dir,
            None if cut == SampleCut::EventIndices => root.to_path_buf(),
            None => {
                return Err(DataError::WrongKind {
                    root: root.to_path_buf(),
                    kind: kind.as_str(),
                    missing: kind.marker(),
                });
            }
        };
        // Each kind's files are read in the order that names its first missing one.
        let (recordings, class_names) = match cut {
            SampleCut::EventIndices => (kind.read_recordings(root)?, kind.read_class_names(root)?),
            SampleCut::TimeWindows => {
                let class_names = kind.read_class_names(root)?;
                (kind.read_recordings(root)?, class_names)
            }
        };
        let ds = Dataset {
            root: root.to_path_buf(),
            dir,
            kind,
            recordings,
            class_names,
        };
        let whats = match cut {
            SampleCut::EventIndices => [
                "recording listed in filelist.txt (and no sliced samples)",
                "tag file of a listed recording",
            ],
            SampleCut::TimeWindows => [
                "recording of a listed trial",
                "labels file of a listed trial",
            ],
        };
        for name in ds.recordings.iter().filter(|n| !ds.is_sliced(n)) {
            let paths = [ds.recording_path(name), ds.tags_path(name)];
            if let Some((path, what)) = paths.into_iter().zip(whats).find(|(p, _)| !p.is_file()) {
                return Err(DataError::Missing { path, what });
            }
        }
        Ok(ds)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The recordings of a variant in file-list order (`Reduced` drops
    /// `_indoor`; a lighting variant keeps that lighting's).
    pub fn recordings(&self, variant: Variant) -> Vec<String> {
        self.kind.variant_recordings(&self.recordings, variant)
    }

    /// The class names in class order (19 for SL-Animals, 11 for DVS128 Gesture).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Which data set this is.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// Kind, classes, sample cutting, variants and people of the whole list.
    pub fn description(&self) -> Description {
        Description::new(self.kind, self.class_names.clone(), &self.recordings)
    }

    /// `recordings/<name>.aedat` (DVS128 Gesture: `DvsGesture/<name>.aedat`).
    pub fn recording_path(&self, name: &str) -> PathBuf {
        self.kind.recording_path(&self.dir, name)
    }

    /// `tags/<name>.csv` (DVS128 Gesture: `DvsGesture/<name>_labels.csv`).
    pub fn tags_path(&self, name: &str) -> PathBuf {
        self.kind.tags_path(&self.dir, name)
    }

    /// The label rows of a DVS128 Gesture recording (empty for SL-Animals,
    /// whose tag rows are its classes in order).
    pub fn labels(&self, recording: &str) -> Result<Vec<Label>, DataError> {
        self.check_known(recording)?;
        match self.kind.cut() {
            SampleCut::EventIndices => Ok(Vec::new()),
            SampleCut::TimeWindows => dvs_gesture::read_labels(&self.tags_path(recording)),
        }
    }

    /// The class of each sample of a recording, in sample order.
    pub fn sample_classes(&self, recording: &str) -> Result<Vec<usize>, DataError> {
        self.check_known(recording)?;
        self.kind.sample_classes_at(&self.dir, recording)
    }

    /// The samples of a recording with their classes, in sample order.
    pub fn labelled_samples(&self, recording: &str) -> Result<Vec<(usize, Vec<Event>)>, DataError> {
        let classes = self.sample_classes(recording)?;
        Ok(classes
            .into_iter()
            .zip(self.recording_samples(recording)?)
            .collect())
    }

    fn gesture_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        let labels = self.labels(recording)?;
        let file = aedat::read_file(&self.recording_path(recording))?;
        Ok(dvs_gesture::cut(&file.events, &labels))
    }

    /// `sliced/<name>_<NN>.npy`.
    pub fn sliced_path(&self, name: &str, class: usize) -> PathBuf {
        self.root
            .join("sliced")
            .join(format!("{}.npy", sample_name(name, class)))
    }

    /// Whether all 19 sliced samples of a recording exist.
    pub fn is_sliced(&self, name: &str) -> bool {
        self.kind.cut() == SampleCut::EventIndices
            && (0..CLASSES).all(|c| self.sliced_path(name, c).is_file())
    }

    fn check_known(&self, recording: &str) -> Result<(), DataError> {
        if self.recordings.iter().any(|r| r == recording) {
            Ok(())
        } else {
            Err(DataError::UnknownRecording {
                name: recording.to_string(),
            })
        }
    }

    /// Reads a raw recording and its tags, checking the tags against it.
    pub fn read_raw(&self, recording: &str) -> Result<(Vec<Event>, Vec<Tag>), DataError> {
        self.read_raw_reusing(recording, Vec::new())
    }

    /// [`Dataset::read_raw`] into `spare`'s allocation (see
    /// [`aedat::read_file_reusing`]).
    fn read_raw_reusing(
        &self,
        recording: &str,
        spare: Vec<Event>,
    ) -> Result<(Vec<Event>, Vec<Tag>), DataError> {
        let tags_path = self.tags_path(recording);
        let tags = tags::read(&tags_path)?;
        let file = aedat::read_file_reusing(&self.recording_path(recording), spare)?;
        tags::check_range(&tags, file.events.len(), &tags_path)?;
        Ok((file.events, tags))
    }

    /// Sample `class` (0-based) of a recording: the sliced file if present, else
    /// cut from the raw recording by its tags. DVS128 Gesture: the sample of
    /// label row `class` (0-based), whatever its class.
    pub fn sample_events(&self, recording: &str, class: usize) -> Result<Vec<Event>, DataError> {
        self.check_known(recording)?;
        if self.kind.cut() == SampleCut::TimeWindows {
            let mut samples = self.gesture_samples(recording)?;
            if class >= samples.len() {
                return Err(DataError::BadSample {
                    recording: recording.to_owned(),
                    index: class,
                    samples: samples.len(),
                });
            }
            let events = samples.swap_remove(class);
            check_span(&events, recording, class)?;
            return Ok(events);
        }
        if class >= CLASSES {
            return Err(DataError::BadClass { class });
        }
        let sliced = self.sliced_path(recording, class);
        let events = if sliced.is_file() {
            npy::read_events(&sliced)?
        } else {
            let (events, tags) = self.read_raw(recording)?;
            slice_one(&events, &tags[class])
        };
        check_span(&events, recording, class)?;
        Ok(events)
    }

    /// All 19 samples of a recording in class order, reading the recording file
    /// once (through a buffer; the raw bytes are never held whole) or the 19
    /// sliced files. DVS128 Gesture: one sample per label row, in row order
    /// ([`Dataset::sample_classes`] gives their classes).
    pub fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        self.check_known(recording)?;
        let samples = if self.kind.cut() == SampleCut::TimeWindows {
            self.gesture_samples(recording)?
        } else if self.is_sliced(recording) {
            (0..CLASSES)
                .map(|c| Ok(npy::read_events(&self.sliced_path(recording, c))?))
                .collect::<Result<Vec<_>, DataError>>()?
        } else {
            // The whole recording is only needed until it is sliced: its buffer is
            // kept per thread for the next recording (no fresh pages to fault in).
            let spare = SPARE_EVENTS.with(|cell| cell.take());
            let (events, tags) = self.read_raw_reusing(recording, spare)?;
            let samples = slice(&events, &tags);
            SPARE_EVENTS.with(|cell| cell.replace(events));
            samples
        };
        for (class, events) in samples.iter().enumerate() {
            check_span(events, recording, class)?;
        }
        Ok(samples)
    }

    /// The files the file list makes this data set use, in order: metadata, then
    /// per recording its raw file and tags, or its sliced files.
    pub fn used_files(&self) -> Vec<PathBuf> {
        let mut files = self.kind.metadata_files(&self.root);
        for name in &self.recordings {
            if self.kind.cut() == SampleCut::TimeWindows || self.recording_path(name).is_file() {
                files.push(self.recording_path(name));
                files.push(self.tags_path(name));
            } else {
                files.extend((0..CLASSES).map(|c| self.sliced_path(name, c)));
            }
        }
        files
    }

    /// A hex SHA-256 over the names (relative paths), sizes and content hashes
    /// of [`Dataset::used_files`]: equal fingerprints mean equal inputs. Paths
    /// are taken from the folder holding the files (DVS128 Gesture: its
    /// `DvsGesture/`, so a root and that folder opened alone agree).
    pub fn fingerprint(&self) -> Result<String, DataError> {
        let mut outer = Sha256::new();
        for path in self.used_files() {
            let rel = path.strip_prefix(&self.dir).unwrap_or(&path);
            let mut file = File::open(&path).map_err(io_err(&path))?;
            let size = file.metadata().map_err(io_err(&path))?.len();
            let mut inner = Sha256::new();
            std::io::copy(&mut file, &mut inner).map_err(io_err(&path))?;
            outer.update(rel.to_string_lossy().as_bytes());
            outer.update([0]);
            outer.update(size.to_le_bytes());
            outer.update(inner.finalize());
        }
        Ok(hex::encode(outer.finalize()))
    }
}

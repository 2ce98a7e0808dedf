//! What a sample is, where its events come from, and why it could not be
//! loaded: shared by the loader ([`crate::loader`]) and the frame cache
//! ([`crate::cache`]), which reads events through [`EventSource`] and is read
//! by the loader in turn.

use spikecv_common::dataset::error::DataError;
use spikecv_common::events::Event;

/// What the frame cache reads from a source of samples. Every
/// [`crate::loader::SampleSource`] is one.
pub trait EventSource: Sync {
    /// All samples of a recording, in sample order (one read per recording).
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError>;

    /// The data's content fingerprint (see
    /// [`crate::loader::SampleSource::cache_identity`]).
    fn cache_identity(&self) -> Option<String>;
}

/// One sample to load: recording, row, class, and how to crop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRef {
    /// The recording's name.
    pub recording: String,
    /// The sample's row in its recording's tags or labels file (SL-Animals:
    /// the class itself).
    pub index: usize,
    /// The sample's class (the label the network is trained to give).
    pub class: usize,
    /// `None`: the first `T` windows. `Some(draw)`: a random run of `T`
    /// windows whose start is drawn from a generator seeded with `draw`.
    pub crop_draw: Option<u64>,
}

impl SampleRef {
    /// The sample's name, `<recording>_<NN>` (`NN` its row).
    pub fn name(&self) -> String {
        format!("{}_{:02}", self.recording, self.index)
    }

    /// Sample `index` of `recording`, of class `class`, uncropped.
    pub fn new(recording: &str, index: usize, class: usize) -> Self {
        Self {
            recording: recording.to_owned(),
            index,
            class,
            crop_draw: None,
        }
    }
}

/// Every sample of `recordings` of a data set with one sample per class per
/// recording (SL-Animals), recording by recording, classes in order (the
/// reference's file order), uncropped.
pub fn samples_of(recordings: &[String], classes: usize) -> Vec<SampleRef> {
    recordings
        .iter()
        .flat_map(|r| (0..classes).map(move |class| SampleRef::new(r, class, class)))
        .collect()
}

/// A sample the loader could not produce.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the events failed.
    #[error("sample {sample}: {source}")]
    Data {
        /// The sample's name.
        sample: String,
        /// The data set's error.
        source: Box<DataError>,
    },
    /// The frame cache does not hold the sample's recording.
    #[error("sample {sample}: not in the frame cache")]
    NotCached {
        /// The sample's name.
        sample: String,
    },
    /// libtorch failed on the frame cache.
    #[error("frame cache: libtorch failed while {during}: {message}")]
    Cache {
        /// What was running.
        during: &'static str,
        /// libtorch's message (first line).
        message: String,
    },
    /// A sample's class is past the network's last output.
    #[error("sample {sample}: class {class}, but the network has {classes} classes (0..{classes})")]
    BadClass {
        /// The sample's name.
        sample: String,
        /// Its class.
        class: usize,
        /// The network's classes.
        classes: usize,
    },
    /// The recording has fewer samples than the class index asks for.
    #[error("sample {sample}: recording has only {available} samples")]
    NoSuchSample {
        /// The sample's name.
        sample: String,
        /// Samples in the recording.
        available: usize,
    },
}

impl LoadError {
    /// Whether reading failed in the operating system (see [`DataError::is_io`]).
    pub fn is_io(&self) -> bool {
        matches!(self, LoadError::Data { source, .. } if source.is_io())
    }
}

//! Why a data set (or part of it) is unusable: [`DataError`], shared by every
//! data set kind and the readers beneath them.

use std::path::PathBuf;

use crate::events::aedat::ReadError;
use crate::events::npy::NpyError;
use crate::events::tags::{CLASSES, TagsError};

/// Why a data set (or part of it) is unusable.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A required file is missing.
    #[error("{path}: missing ({what})")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The file list or class definitions are malformed.
    #[error("{path}, line {line}: {what}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A recording the file list does not name.
    #[error("recording {name:?} is not in the data set's file list")]
    UnknownRecording {
        /// The name asked for.
        name: String,
    },
    /// A class index outside 0..19.
    #[error("class index {class} is out of range (0..{CLASSES})")]
    BadClass {
        /// The index asked for.
        class: usize,
    },
    /// A sample index past a recording's label rows (DVS128 Gesture).
    #[error("recording {recording:?} has {samples} samples; there is no sample {index}")]
    BadSample {
        /// The recording.
        recording: String,
        /// The index asked for.
        index: usize,
        /// Samples it has.
        samples: usize,
    },
    /// The root is not the kind of data set the config says.
    #[error("{root}: holds no {kind} data set (no {missing})")]
    WrongKind {
        /// The root.
        root: PathBuf,
        /// The kind asked for, as configs name it (`dvs-gesture`).
        kind: &'static str,
        /// The file that marks the kind, which the root lacks.
        missing: &'static str,
    },
    /// An event file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A tag file is unusable.
    #[error(transparent)]
    Tags(#[from] TagsError),
    /// A sliced sample is unusable.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A sample whose events span more time than any gesture (its time
    /// windows, and the buffers sized by them, would grow without bound).
    #[error(
        "sample {class} of recording {recording:?} spans {span_s:.1} s; the limit is {limit_s} s \
         (time stamps of that recording are broken)"
    )]
    SampleTooLong {
        /// The recording.
        recording: String,
        /// The class index (0-based).
        class: usize,
        /// Its span, seconds.
        span_s: f64,
        /// [`MAX_SAMPLE_SPAN_US`] in seconds.
        limit_s: u64,
    },
}

/// A name that is none of those a list offers (a data set kind, a variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key {key}: {name:?} is not one of {offered}")]
pub struct UnknownName {
    /// The dotted key the name was given for, e.g. `data.kind`.
    pub key: &'static str,
    /// The name given.
    pub name: String,
    /// The names offered, comma-separated.
    pub offered: String,
}

/// The longest time a sample's events may span, µs: ten minutes, far beyond
/// a gesture (a few seconds), so that its `dt` windows stay bounded (600,000
/// at `dt` = 1 ms).
pub const MAX_SAMPLE_SPAN_US: i64 = 600_000_000;
/// Maps an OS error reading `path` to [`DataError::Io`].
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DataError {
    /// Whether the operating system failed to read a file (a network file
    /// system's hiccup may pass), as opposed to content that is wrong for good.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            DataError::Io { .. }
                | DataError::Read(ReadError::Io { .. })
                | DataError::Tags(TagsError::Io { .. })
                | DataError::Npy(NpyError::Io { .. })
        )
    }
}

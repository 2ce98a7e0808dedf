//! Why a data tool (`coordinator data ...`) failed, shared by every tool.

use std::path::{Path, PathBuf};

use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::synth::SynthError;
use spikecv_common::events::aedat::ReadError;
use spikecv_common::events::npy::NpyError;
use spikecv_common::events::render::RenderError;
use spikecv_common::experiment::error::ConfigError;

use spikecv_common::dataset::import::ImportError;

/// Why a data tool failed.
#[derive(Debug, thiserror::Error)]
pub enum DataCmdError {
    /// A data set problem.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An event file problem.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An .npy problem.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// Synthesis failed.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Importing a download failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The imported root has problems (listed in the summary above).
    #[error("{root}: imported, but `data inspect` finds {count} problem(s) (listed above)")]
    ImportedWithProblems {
        /// The root written.
        root: PathBuf,
        /// How many problems.
        count: usize,
    },
    /// A sample name that is not `<recording>_<NN>`.
    #[error("bad sample name {name:?}: expected <recording>_<NN> with NN = 00..18")]
    BadSample {
        /// What was given.
        name: String,
    },
    /// A DVS128 Gesture sample name that is not `<recording>_<NN>`.
    #[error(
        "bad sample name {name:?}: expected <recording>_<NN> with NN a row of the \
         recording's labels file, 00 the first (DVS128 Gesture)"
    )]
    BadRowName {
        /// What was given.
        name: String,
    },
    /// A sample of a recording that the data set's recording lists do not name.
    #[error(
        "sample {sample:?}: recording {recording:?} is in none of {}",
        lists.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    UnknownTrial {
        /// The sample name given.
        sample: String,
        /// Its recording.
        recording: String,
        /// The files listing the data set's recordings.
        lists: Vec<PathBuf>,
    },
    /// A label row past the end of a recording's labels file (DVS128 Gesture).
    #[error(
        "sample {sample:?}: {labels} has {rows} label rows, numbered from 00; there is no row {row}"
    )]
    NoSuchRow {
        /// The sample name.
        sample: String,
        /// The row asked for (0-based).
        row: usize,
        /// Rows the file has.
        rows: usize,
        /// The labels file.
        labels: PathBuf,
    },
    /// A labels file with more rows than two-digit sample names can number.
    #[error("{labels}: {rows} label rows; sample names number rows 00..{MAX_ROWS_SHOWN}")]
    TooManyRows {
        /// The labels file.
        labels: PathBuf,
        /// Rows it has.
        rows: usize,
    },
    /// Writing output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (or `-` for stdout).
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Label rows a recording may have: sample names give the row in two digits.
pub const MAX_ROWS: usize = 100;
const MAX_ROWS_SHOWN: usize = MAX_ROWS - 1;

/// Maps a failure to write `path` to [`DataCmdError::Io`].
pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DataCmdError + '_ {
    move |source| DataCmdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Maps a failure to write stdout to [`DataCmdError::Io`] (path `-`).
pub(crate) fn stdout_err(source: std::io::Error) -> DataCmdError {
    DataCmdError::Io {
        path: PathBuf::from("-"),
        source,
    }
}

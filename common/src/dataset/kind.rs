//! What a data set kind is ([`DataSetKind`]): its layout and readers, its
//! recordings and classes, the variants it offers, its split rule and its
//! synthetic generator and its published figures. [`DataKind`] is the handle
//! configs, plans and reports carry; each kind lives in its own module and is
//! listed once in [`crate::dataset::registry`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::dataset::error::DataError;
use crate::dataset::import::{ImportError, ImportOptions, ImportReport};
use crate::dataset::published::PublishedTable;
use crate::dataset::synth::{SynthError, SynthOptions, SynthSummary};
use crate::dataset::variant::Variant;

/// How samples are cut from a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleCut {
    /// `tags/<name>.csv` rows of event indices, one per class in class order.
    EventIndices,
    /// `<name>_labels.csv` rows of µs times (`start ≤ t < end`), any number,
    /// each naming its class.
    TimeWindows,
}

/// One sample of a [`SampleCut::TimeWindows`] recording: a row of its
/// labels file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// Class index, 0-based (the file numbers them from 1).
    pub class: usize,
    /// First time stamp of the sample, µs (inclusive).
    pub start_us: i64,
    /// End of the sample, µs (exclusive).
    pub end_us: i64,
}

/// One data set kind: everything the layers above ask of a data set, so that
/// none of them names a particular one.
pub trait DataSetKind: Sync {
    /// The name used in configs and on the command line (`sl-animals`).
    fn name(&self) -> &'static str;
    /// The name reports give it (`SL-Animals-DVS`).
    fn title(&self) -> &'static str;
    /// How many classes it has.
    fn classes(&self) -> usize {
        self.default_class_names().len()
    }
    /// Its class names in class order, as the download gives them.
    fn default_class_names(&self) -> &'static [&'static str];
    /// The variants (`protocol.variants`) it offers, `whole` first.
    fn variants(&self) -> &'static [Variant];
    /// Whether `variant` keeps `recording` (by its name).
    fn keeps(&self, variant: Variant, recording: &str) -> bool;
    /// How its samples are cut from its recordings.
    fn cut(&self) -> SampleCut;
    /// The person of a recording (the unit the folds keep together): the
    /// recording itself unless the kind knows better.
    fn person_of<'a>(&self, recording: &'a str) -> &'a str {
        recording
    }
    /// Whether folds are made over people rather than recordings.
    fn folds_over_people(&self) -> bool {
        false
    }
    /// Its own train/test split of `recordings` (`[protocol] kind =
    /// "official"`), when it has one.
    fn official_split(&self, _recordings: &[String]) -> Option<(Vec<String>, Vec<String>)> {
        None
    }
    /// The file (relative to a root) whose presence marks this kind, named
    /// when a root lacks it.
    fn marker(&self) -> &'static str;
    /// The folder of `root` where its recordings lie, `None` when `root`
    /// holds none of this kind.
    fn files_dir(&self, root: &Path) -> Option<PathBuf>;
    /// Whether `root` holds a data set of this kind (by its files).
    fn holds(&self, root: &Path) -> bool {
        self.files_dir(root).is_some()
    }
    /// Its recordings at `root`, in list order.
    fn read_recordings(&self, root: &Path) -> Result<Vec<String>, DataError>;
    /// Its class names at `root`, read from the root's own files.
    fn read_class_names(&self, root: &Path) -> Result<Vec<String>, DataError>;
    /// Its class names from `root`'s own files where it holds them, else
    /// [`DataSetKind::default_class_names`] (a head node may hold only lists).
    fn class_names_or_default(&self, root: &Path) -> Result<Vec<String>, DataError>;
    /// The class of each sample of recording `name` in the files folder
    /// `dir`, in sample order (read from its cut file where samples vary).
    fn sample_classes_at(&self, dir: &Path, name: &str) -> Result<Vec<usize>, DataError>;
    /// Its metadata files at `root` (lists, class names), in a fixed order.
    fn metadata_files(&self, root: &Path) -> Vec<PathBuf>;
    /// The files at `root` that list its recordings (named when a recording
    /// is not in them).
    fn list_files(&self, root: &Path) -> Vec<PathBuf>;
    /// The event file of recording `name` in the files folder `dir`.
    fn recording_path(&self, dir: &Path, name: &str) -> PathBuf;
    /// The file that cuts recording `name` into samples (tags or labels).
    fn tags_path(&self, dir: &Path, name: &str) -> PathBuf;
    /// Writes a synthetic data set of this kind laid out as its download.
    fn synth(&self, out: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError>;
    /// The published figures a run on it is compared with.
    fn published(&self) -> &'static PublishedTable;
    /// The folder of the download `dir` (canonical) holding this kind's
    /// files, when they are marked so (the default kind takes any folder).
    fn import_source(&self, dir: &Path) -> Option<PathBuf>;
    /// Imports the download `dir` (canonical; its files in `src`) into the
    /// root `out` (resolved, outside `dir`).
    fn import(
        &self,
        opts: &ImportOptions,
        dir: &Path,
        src: &Path,
        out: PathBuf,
    ) -> Result<ImportReport, ImportError>;
}

/// `[data] kind`: a handle on one registered [`DataSetKind`]; equal, hashed,
/// shown and serialised by its name.
#[derive(Clone, Copy)]
pub struct DataKind(&'static dyn DataSetKind);

impl DataKind {
    /// The handle of `kind` (each kind's module makes its own).
    pub const fn new(kind: &'static dyn DataSetKind) -> Self {
        DataKind(kind)
    }

    /// The name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    /// Whether this is the default (left out of serialised configs, so job
    /// ids of experiments made before kinds existed stay as they were).
    pub fn is_default(&self) -> bool {
        *self == DataKind::default()
    }

    /// Whether the data set has a train/test split of its own.
    pub fn has_official_split(self) -> bool {
        self.0.official_split(&[]).is_some()
    }

    /// The recordings of `file_list` that `variant` keeps, in list order.
    pub fn variant_recordings(self, file_list: &[String], variant: Variant) -> Vec<String> {
        file_list
            .iter()
            .filter(|n| self.0.keeps(variant, n))
            .cloned()
            .collect()
    }
}

impl std::ops::Deref for DataKind {
    type Target = dyn DataSetKind;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for DataKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for DataKind {}

impl Hash for DataKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKind({})", self.as_str())
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An opened data set, described: what the data layer asks of it instead of
/// SL-Animals' constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Which data set.
    pub kind: DataKind,
    /// Class names in class order (from the root's files).
    pub class_names: Vec<String>,
    /// How samples are cut.
    pub cut: SampleCut,
    /// The variants it offers.
    pub variants: &'static [Variant],
    /// The people in order of first appearance in the recording list.
    pub people: Vec<String>,
}

impl Description {
    /// Describes `recordings` of a data set of `kind` with `class_names`.
    pub fn new(kind: DataKind, class_names: Vec<String>, recordings: &[String]) -> Self {
        Self {
            kind,
            class_names,
            cut: kind.cut(),
            variants: kind.variants(),
            people: people(kind, recordings),
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
}

/// The distinct people of `recordings`, in order of first appearance.
pub fn people(kind: DataKind, recordings: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in recordings {
        let p = kind.person_of(r);
        if !out.iter().any(|q| q == p) {
            out.push(p.to_owned());
        }
    }
    out
}

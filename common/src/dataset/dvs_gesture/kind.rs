//! DVS128 Gesture as a [`DataSetKind`]: folds over people (`userNN`), one
//! variant per lighting, and the data set's own split (users 1-23 train,
//! 24-29 test).

use std::path::{Path, PathBuf};

use crate::dataset::dvs_gesture::import;
use crate::dataset::dvs_gesture::published;
use crate::dataset::dvs_gesture::{
    self, CLASS_NAMES, FLUORESCENT, FLUORESCENT_LED, LAB, LED, MAPPING, NATURAL, TEST_LIST,
    TRAIN_LIST, find_dir, labels_path, read_labels, read_mapping,
};
use crate::dataset::error::DataError;
use crate::dataset::import::{ImportError, ImportOptions, ImportReport};
use crate::dataset::kind::{DataKind, DataSetKind, SampleCut};
use crate::dataset::published::PublishedTable;
use crate::dataset::synth::{SynthError, SynthOptions, SynthSummary};
use crate::dataset::variant::Variant;

/// DVS128 Gesture (IBM): the `DvsGesture/` folder as downloaded.
#[derive(Debug)]
pub struct DvsGesture;

/// The handle of [`DvsGesture`].
pub const DVS_GESTURE: DataKind = DataKind::new(&DvsGesture);

impl DataSetKind for DvsGesture {
    fn name(&self) -> &'static str {
        "dvs-gesture"
    }

    fn title(&self) -> &'static str {
        "DVS128 Gesture"
    }

    fn default_class_names(&self) -> &'static [&'static str] {
        &CLASS_NAMES
    }

    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::WHOLE,
            FLUORESCENT,
            FLUORESCENT_LED,
            LAB,
            LED,
            NATURAL,
        ]
    }

    fn keeps(&self, variant: Variant, recording: &str) -> bool {
        variant == Variant::WHOLE || dvs_gesture::lighting_of(recording) == variant.as_str()
    }

    fn cut(&self) -> SampleCut {
        SampleCut::TimeWindows
    }

    fn person_of<'a>(&self, recording: &'a str) -> &'a str {
        dvs_gesture::person_of(recording)
    }

    fn folds_over_people(&self) -> bool {
        true
    }

    fn official_split(&self, recordings: &[String]) -> Option<(Vec<String>, Vec<String>)> {
        Some(dvs_gesture::official_split(recordings))
    }

    fn marker(&self) -> &'static str {
        "DvsGesture/trials_to_train.txt"
    }

    fn files_dir(&self, root: &Path) -> Option<PathBuf> {
        find_dir(root)
    }

    fn read_recordings(&self, root: &Path) -> Result<Vec<String>, DataError> {
        match find_dir(root) {
            Some(dir) => dvs_gesture::read_recordings(&dir),
            None => Err(DataError::Missing {
                path: root.join(dvs_gesture::FOLDER).join(TRAIN_LIST),
                what: "DVS128 Gesture's training list",
            }),
        }
    }

    fn read_class_names(&self, root: &Path) -> Result<Vec<String>, DataError> {
        let dir = find_dir(root).unwrap_or_else(|| root.to_path_buf());
        read_mapping(&dir.join(MAPPING))
    }

    fn class_names_or_default(&self, root: &Path) -> Result<Vec<String>, DataError> {
        match find_dir(root).map(|dir| dir.join(MAPPING)) {
            Some(mapping) if mapping.is_file() => read_mapping(&mapping),
            _ => Ok(CLASS_NAMES.map(str::to_owned).to_vec()),
        }
    }

    fn sample_classes_at(&self, dir: &Path, name: &str) -> Result<Vec<usize>, DataError> {
        Ok(read_labels(&labels_path(dir, name))?
            .iter()
            .map(|l| l.class)
            .collect())
    }

    fn metadata_files(&self, root: &Path) -> Vec<PathBuf> {
        let dir = find_dir(root).unwrap_or_else(|| root.to_path_buf());
        [MAPPING, TRAIN_LIST, TEST_LIST]
            .iter()
            .map(|f| dir.join(f))
            .collect()
    }

    fn list_files(&self, root: &Path) -> Vec<PathBuf> {
        let dir = find_dir(root).unwrap_or_else(|| root.to_path_buf());
        vec![dir.join(TRAIN_LIST), dir.join(TEST_LIST)]
    }

    fn recording_path(&self, dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.aedat"))
    }

    fn tags_path(&self, dir: &Path, name: &str) -> PathBuf {
        labels_path(dir, name)
    }

    fn synth(&self, out: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
        dvs_gesture::synth::generate(out, opts)
    }

    fn published(&self) -> &'static PublishedTable {
        &published::TABLE
    }

    fn import_source(&self, dir: &Path) -> Option<PathBuf> {
        find_dir(dir)
    }

    fn import(
        &self,
        opts: &ImportOptions,
        dir: &Path,
        src: &Path,
        out: PathBuf,
    ) -> Result<ImportReport, ImportError> {
        import::import(opts, dir.to_path_buf(), src, out)
    }
}

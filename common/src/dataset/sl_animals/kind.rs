//! SL-Animals-DVS as a [`DataSetKind`]: folds over recordings (one person
//! each), whole and reduced (no S3, `_indoor`) variants, no split of its own.

use std::path::{Path, PathBuf};

use crate::dataset::error::DataError;
use crate::dataset::import::{ImportError, ImportOptions, ImportReport};
use crate::dataset::kind::{DataKind, DataSetKind, SampleCut};
use crate::dataset::published::PublishedTable;
use crate::dataset::sl_animals::import;
use crate::dataset::sl_animals::published;
use crate::dataset::sl_animals::{
    CLASS_DEFS, CLASS_NAMES, FILE_LIST, REDUCED, read_class_names, read_file_list,
};
use crate::dataset::synth::{self, SynthError, SynthOptions, SynthSummary};
use crate::dataset::variant::Variant;
use crate::events::tags::CLASSES;

/// SL-Animals-DVS: `recordings/`, `tags/`, `filelist.txt` and the class
/// definitions at the root.
#[derive(Debug)]
pub struct SlAnimals;

/// The handle of [`SlAnimals`].
pub const SL_ANIMALS: DataKind = DataKind::new(&SlAnimals);

impl DataSetKind for SlAnimals {
    fn name(&self) -> &'static str {
        "sl-animals"
    }

    fn title(&self) -> &'static str {
        "SL-Animals-DVS"
    }

    fn default_class_names(&self) -> &'static [&'static str] {
        &CLASS_NAMES
    }

    fn variants(&self) -> &'static [Variant] {
        &[Variant::WHOLE, REDUCED]
    }

    fn keeps(&self, variant: Variant, recording: &str) -> bool {
        variant == Variant::WHOLE || (variant == REDUCED && !recording.contains("_indoor"))
    }

    fn cut(&self) -> SampleCut {
        SampleCut::EventIndices
    }

    fn marker(&self) -> &'static str {
        FILE_LIST
    }

    fn files_dir(&self, root: &Path) -> Option<PathBuf> {
        root.join(FILE_LIST).exists().then(|| root.to_path_buf())
    }

    fn read_recordings(&self, root: &Path) -> Result<Vec<String>, DataError> {
        read_file_list(&root.join(FILE_LIST))
    }

    fn read_class_names(&self, root: &Path) -> Result<Vec<String>, DataError> {
        read_class_names(&root.join(CLASS_DEFS))
    }

    fn class_names_or_default(&self, root: &Path) -> Result<Vec<String>, DataError> {
        let defs = root.join(CLASS_DEFS);
        if defs.is_file() {
            read_class_names(&defs)
        } else {
            Ok(CLASS_NAMES.map(str::to_owned).to_vec())
        }
    }

    fn sample_classes_at(&self, _dir: &Path, _name: &str) -> Result<Vec<usize>, DataError> {
        Ok((0..CLASSES).collect())
    }

    fn metadata_files(&self, root: &Path) -> Vec<PathBuf> {
        vec![root.join(FILE_LIST), root.join(CLASS_DEFS)]
    }

    fn list_files(&self, root: &Path) -> Vec<PathBuf> {
        vec![root.join(FILE_LIST)]
    }

    fn recording_path(&self, dir: &Path, name: &str) -> PathBuf {
        dir.join("recordings").join(format!("{name}.aedat"))
    }

    fn tags_path(&self, dir: &Path, name: &str) -> PathBuf {
        dir.join("tags").join(format!("{name}.csv"))
    }

    fn synth(&self, out: &Path, opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
        synth::generate(out, opts)
    }

    fn published(&self) -> &'static PublishedTable {
        &published::TABLE
    }

    fn import_source(&self, dir: &Path) -> Option<PathBuf> {
        Some(dir.to_path_buf())
    }

    fn import(
        &self,
        opts: &ImportOptions,
        dir: &Path,
        _src: &Path,
        out: PathBuf,
    ) -> Result<ImportReport, ImportError> {
        import::import(opts, dir.to_path_buf(), out)
    }
}

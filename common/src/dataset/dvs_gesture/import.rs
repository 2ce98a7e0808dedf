//! Importing DVS128 Gesture as downloaded: DIR holds `DvsGesture/` (or is
//! it), with `trials_to_train.txt`, `trials_to_test.txt`,
//! `gesture_mapping.csv` and per listed trial `<name>.aedat` and
//! `<name>_labels.csv`. Every trial named in the two lists must be there, once
//! (a trial listed twice fails, naming the line), with a labels file that
//! parses; the mapping must give 11 classes. The files go to
//! `ROOT/DvsGesture/` the same way as SL-Animals' (hard link, else copy;
//! files already there and identical kept), the training list last.

use std::path::{Path, PathBuf};

use crate::dataset::dvs_gesture::{self, FOLDER, MAPPING, TEST_LIST, TRAIN_LIST};
use crate::dataset::import::place::{Source, check_out};
use crate::dataset::import::{
    ClassDefsSource, ImportError, ImportOptions, ImportReport, io_at, resolved,
};

/// `.aedat` files of `src` whose name no list gives.
fn unexpected(src: &Path, names: &[String]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(src).map_err(io_at(src))? {
        let path = entry.map_err(io_at(src))?.path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let is_aedat = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("aedat"));
        if is_aedat && !names.iter().any(|n| n == stem) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Imports the DVS128 Gesture download in `src` (under `dir`, canonical) into `out`.
pub fn import(
    opts: &ImportOptions,
    dir: PathBuf,
    src: &Path,
    out: PathBuf,
) -> Result<ImportReport, ImportError> {
    let names = dvs_gesture::read_recordings(src)?;
    // The mapping must give the classes, though the root keeps the file as it is.
    dvs_gesture::read_mapping(&src.join(MAPPING))?;
    let mut complete = Vec::new();
    let mut missing = Vec::new();
    for name in &names {
        let files = [format!("{name}.aedat"), format!("{name}_labels.csv")];
        let absent: Vec<&String> = files.iter().filter(|f| !src.join(f).is_file()).collect();
        if absent.is_empty() {
            dvs_gesture::read_labels(&src.join(&files[1]))?;
            complete.push(name.clone());
        } else {
            missing.extend(absent.into_iter().cloned());
        }
    }
    let unexpected = unexpected(src, &names)?;
    if !missing.is_empty() && !opts.allow_missing {
        return Err(ImportError::Mismatch {
            dir,
            missing,
            doubled: Vec::new(),
            unexpected,
            allow_missing: false,
        });
    }
    if complete.is_empty() {
        return Err(ImportError::NothingToImport { dir });
    }
    let mut plan: Vec<(String, Source)> = Vec::new();
    for name in &complete {
        for file in [format!("{name}.aedat"), format!("{name}_labels.csv")] {
            let real = resolved(&dir, src.join(&file))?;
            plan.push((format!("{FOLDER}/{file}"), Source::File(real)));
        }
    }
    let mapping = resolved(&dir, src.join(MAPPING))?;
    plan.push((format!("{FOLDER}/{MAPPING}"), Source::File(mapping.clone())));
    // The test list, then the training list: a root is one once the latter is there.
    for list in [TEST_LIST, TRAIN_LIST] {
        let source = if missing.is_empty() {
            Source::File(resolved(&dir, src.join(list))?)
        } else {
            let listed = dvs_gesture::read_trials(&src.join(list))?;
            let kept = listed
                .iter()
                .map(|(_, n)| n)
                .filter(|n| complete.contains(n));
            Source::Text(dvs_gesture::trials_text(kept))
        };
        plan.push((format!("{FOLDER}/{list}"), source));
    }
    let write = check_out(&out, &plan, &[], &[], Vec::new())?;
    let folder = out.join(FOLDER);
    std::fs::create_dir_all(&folder).map_err(io_at(&folder))?;
    let mut report = ImportReport {
        out: out.clone(),
        left_out: names
            .iter()
            .filter(|n| !complete.contains(n))
            .cloned()
            .collect(),
        recordings: complete,
        missing,
        unexpected,
        class_defs: ClassDefsSource::Found(mapping),
        linked: 0,
        copied: 0,
        kept: 0,
    };
    report.place_all(&plan, &write, &out, opts.copy)?;
    Ok(report)
}

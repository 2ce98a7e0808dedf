//! Importing SL-Animals-DVS, laid out however the publisher packs it, to a
//! root (`recordings/<name>.aedat`, `tags/<name>.csv`, `filelist.txt`, the
//! class definitions).
//!
//! Every file under DIR is looked at ([`crate::dataset::sl_animals::scan`]).
//! A file counts as the recording of `<name>` when it is called
//! `<name>.aedat` and as its tags when it is called `<name>.csv`, where
//! `<name>` is one of the 59 names of the file list, spelt exactly; the
//! extension may be in any case. Other `.aedat`/`.csv` files are reported as
//! unexpected and left out; other files are ignored.
//! `SL-Animals-DVS_gestures_definitions.csv` is used when found, else the
//! built-in definitions are written. A name found twice always fails;
//! `--allow-missing` leaves incomplete names out of `filelist.txt`, which is
//! written last.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dataset::import::place::{Source, check_out};
use crate::dataset::import::{ClassDefsSource, ImportError, ImportOptions, ImportReport, io_at};
use crate::dataset::sl_animals::scan::{Found, scan};
use crate::dataset::sl_animals::{
    CLASS_DEFS, CLASS_NAMES, FILE_LIST, read_class_names, read_file_list,
};
use crate::dataset::synth::{class_definitions_csv, recording_names};

/// For each name of the file list, its one recording and one tag file, if so.
#[derive(Debug, Default)]
struct Picked {
    /// (name, recording, tags) of the complete names, in file-list order.
    complete: Vec<(String, PathBuf, PathBuf)>,
    /// Files not found.
    missing: Vec<String>,
    /// Files found more than once, with where.
    doubled: Vec<(String, Vec<PathBuf>)>,
}

/// Picks the single file found for each name, collecting what is missing or doubled.
fn pick(names: &[String], found: &Found) -> Picked {
    let mut picked = Picked::default();
    let Picked {
        complete,
        missing,
        doubled,
    } = &mut picked;
    for name in names {
        let mut one = |map: &BTreeMap<String, Vec<(PathBuf, PathBuf)>>, ext: &str| {
            let file = format!("{name}.{ext}");
            match map.get(name).map(Vec::as_slice) {
                None | Some([]) => {
                    missing.push(file);
                    None
                }
                Some([(_, real)]) => Some(real.clone()),
                Some(many) => {
                    let mut shown: Vec<PathBuf> = many.iter().map(|(s, _)| s.clone()).collect();
                    shown.sort();
                    doubled.push((file, shown));
                    None
                }
            }
        };
        let rec = one(&found.recordings, "aedat");
        let tags = one(&found.tags, "csv");
        if let (Some(rec), Some(tags)) = (rec, tags) {
            complete.push((name.clone(), rec, tags));
        }
    }
    picked
}

/// The root's file list and class definitions where they differ in meaning
/// from what the import writes: the list may name fewer recordings (an
/// import with `--allow-missing` being completed), never others.
fn differs_by_meaning(out: &Path, recordings: &[String], class_names: &[String]) -> Vec<PathBuf> {
    let mut differing = Vec::new();
    let list = out.join(FILE_LIST);
    if list.exists() {
        let fits =
            read_file_list(&list).is_ok_and(|old| old.iter().all(|n| recordings.contains(n)));
        if !fits {
            differing.push(list);
        }
    }
    let defs = out.join(CLASS_DEFS);
    if defs.exists() && read_class_names(&defs).ok().as_deref() != Some(class_names) {
        differing.push(defs);
    }
    differing
}

/// Imports the SL-Animals-DVS download in `dir` (canonical) into `out`.
pub fn import(
    opts: &ImportOptions,
    dir: PathBuf,
    out: PathBuf,
) -> Result<ImportReport, ImportError> {
    let names = recording_names();
    let found = scan(&dir, &out, &names.iter().cloned().collect())?;
    let mut unexpected = found.unexpected.clone();
    unexpected.sort();
    let Picked {
        complete,
        missing,
        doubled,
    } = pick(&names, &found);
    if !doubled.is_empty() || (!missing.is_empty() && !opts.allow_missing) {
        return Err(ImportError::Mismatch {
            dir,
            missing,
            doubled,
            unexpected,
            allow_missing: opts.allow_missing,
        });
    }
    if complete.is_empty() {
        return Err(ImportError::NothingToImport { dir });
    }
    let (class_defs, class_names) = match found.class_defs.as_slice() {
        [] => (
            ClassDefsSource::BuiltIn,
            CLASS_NAMES.map(String::from).to_vec(),
        ),
        [(_, first), rest @ ..] => {
            let names = read_class_names(first)?;
            for (_, other) in rest {
                if read_class_names(other)? != names {
                    return Err(ImportError::ClassDefsDisagree {
                        paths: found.class_defs.iter().map(|(s, _)| s.clone()).collect(),
                    });
                }
            }
            (ClassDefsSource::Found(first.clone()), names)
        }
    };
    let recordings: Vec<String> = complete.iter().map(|(n, _, _)| n.clone()).collect();
    let mut plan: Vec<(String, Source)> = Vec::new();
    for (name, rec, tags) in complete {
        plan.push((format!("recordings/{name}.aedat"), Source::File(rec)));
        plan.push((format!("tags/{name}.csv"), Source::File(tags)));
    }
    plan.push((
        CLASS_DEFS.to_string(),
        match &class_defs {
            ClassDefsSource::Found(p) => Source::File(p.clone()),
            ClassDefsSource::BuiltIn => Source::Text(class_definitions_csv()),
        },
    ));
    // Last: a root is only a root once its file list is there.
    let mut list = recordings.join("\n");
    list.push('\n');
    plan.push((FILE_LIST.to_string(), Source::Text(list)));
    let differing = differs_by_meaning(&out, &recordings, &class_names);
    let write = check_out(
        &out,
        &plan,
        &[FILE_LIST, CLASS_DEFS],
        &[FILE_LIST],
        differing,
    )?;

    for sub in ["recordings", "tags"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(io_at(&d))?;
    }
    let left_out = names
        .iter()
        .filter(|n| !recordings.contains(n))
        .cloned()
        .collect();
    let mut report = ImportReport {
        out: out.clone(),
        recordings,
        left_out,
        missing,
        unexpected,
        class_defs,
        linked: 0,
        copied: 0,
        kept: 0,
    };
    report.place_all(&plan, &write, &out, opts.copy)?;
    Ok(report)
}

//! Finding the candidate files of an SL-Animals-DVS import under DIR.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::dataset::import::{ImportError, io_at};
use crate::dataset::sl_animals::CLASS_DEFS;

/// The candidate files found under DIR: (path as found under DIR, resolved path).
#[derive(Debug, Default)]
pub struct Found {
    /// `<name>.aedat` files by name.
    pub recordings: BTreeMap<String, Vec<(PathBuf, PathBuf)>>,
    /// `<name>.csv` files by name.
    pub tags: BTreeMap<String, Vec<(PathBuf, PathBuf)>>,
    /// Class definitions files.
    pub class_defs: Vec<(PathBuf, PathBuf)>,
    /// `.aedat`/`.csv` files of names not in the file list (as found).
    pub unexpected: Vec<PathBuf>,
}

/// Walks `dir` (canonical), following links, visiting each folder and file once
/// and never entering `out` (unless through `dir` itself, when `dir` lies in it).
/// A link that resolves outside `dir` is an error.
pub fn scan(dir: &Path, out: &Path, names: &HashSet<String>) -> Result<Found, ImportError> {
    let in_out = |p: &Path| p.starts_with(out) && !p.starts_with(dir);
    let mut found = Found::default();
    let mut seen_dirs = HashSet::new();
    let mut seen_files = HashSet::new();
    let mut stack = vec![(dir.to_path_buf(), dir.to_path_buf())];
    while let Some((shown, real)) = stack.pop() {
        if in_out(&real) || !seen_dirs.insert(real.clone()) {
            continue;
        }
        let mut entries = std::fs::read_dir(&real)
            .map_err(io_at(&shown))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_at(&shown))?;
        entries.sort();
        // Folders are pushed in reverse so they are walked in name order.
        for file_name in entries.iter().rev() {
            let Some(name) = file_name.to_str() else {
                continue; // not UTF-8: cannot be a listed name
            };
            if name.starts_with('.') || name == "__MACOSX" {
                continue;
            }
            let path = shown.join(name);
            let (meta, resolved) = match std::fs::metadata(real.join(name))
                .and_then(|m| Ok((m, real.join(name).canonicalize()?)))
            {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipped (unreadable or a broken link)");
                    continue;
                }
            };
            if !resolved.starts_with(dir) {
                return Err(ImportError::LinkOutside {
                    link: path,
                    target: resolved,
                    dir: dir.to_path_buf(),
                });
            }
            if in_out(&resolved) {
                continue;
            }
            if meta.is_dir() {
                stack.push((path, resolved));
            } else if meta.is_file() && seen_files.insert(resolved.clone()) {
                classify(&mut found, names, name, path, resolved);
            }
        }
    }
    Ok(found)
}

fn classify(found: &mut Found, names: &HashSet<String>, file: &str, shown: PathBuf, real: PathBuf) {
    let Some((stem, ext)) = file.rsplit_once('.') else {
        return;
    };
    let listed = names.contains(stem);
    if ext.eq_ignore_ascii_case("aedat") {
        if listed {
            found
                .recordings
                .entry(stem.to_string())
                .or_default()
                .push((shown, real));
        } else {
            found.unexpected.push(shown);
        }
    } else if ext.eq_ignore_ascii_case("csv") {
        if file.eq_ignore_ascii_case(CLASS_DEFS) {
            found.class_defs.push((shown, real));
        } else if listed {
            found
                .tags
                .entry(stem.to_string())
                .or_default()
                .push((shown, real));
        } else {
            found.unexpected.push(shown);
        }
    }
}

//! `coordinator data import DIR --out ROOT`: from a data set as downloaded to
//! a data set root. The kind is told by DIR's files
//! ([`crate::dataset::kind::DataSetKind::import_source`]: DVS128 Gesture's
//! `DvsGesture/`), else the default kind's import takes DIR ([`by_kind`]);
//! each kind's importer lives in its folder and uses the checks and placing
//! here.
//!
//! Common to every kind: symbolic links under DIR are followed, and a link
//! whose target lies outside DIR fails the import, naming the link and its
//! target (an import takes only what the download holds). All checks run
//! before anything is written: missing files fail the import, naming each,
//! unless `--allow-missing` (which leaves incomplete recordings out of the
//! lists). Files are hard-linked into ROOT, or copied when a hard link is
//! impossible (another file system) or `--copy` is given, so the root never
//! depends on DIR staying where it is. The file that makes a root a root (its
//! recording list) is written last: an interrupted import leaves no root that
//! opens, and running it again completes it (files already in place and
//! identical are kept).

pub mod by_kind;
pub mod place;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::dataset::error::DataError;

/// What `coordinator data import` was asked.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The downloaded data set.
    pub dir: PathBuf,
    /// The root to write (created if missing; must not lie inside DIR).
    pub out: PathBuf,
    /// Copy the files instead of hard-linking them.
    pub copy: bool,
    /// Import the complete recordings and leave the others out instead of failing.
    pub allow_missing: bool,
}

/// Why an import failed (nothing is written unless the error is an I/O error
/// while writing).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// DIR is not a folder.
    #[error("{dir}: no such folder (give the folder holding the download)")]
    NotAFolder {
        /// What was given.
        dir: PathBuf,
    },
    /// `--out` lies inside DIR.
    #[error("--out {out} lies inside {dir}, the folder being imported; choose a folder outside it")]
    OutInsideSource {
        /// The resolved `--out`.
        out: PathBuf,
        /// The resolved DIR.
        dir: PathBuf,
    },
    /// A symbolic link under DIR leads out of it.
    #[error(
        "{link} is a link to {target}, outside {dir}, the folder being imported; \
         copy what it points to into the download (or remove the link)"
    )]
    LinkOutside {
        /// The link, as found under DIR.
        link: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
        /// The resolved DIR.
        dir: PathBuf,
    },
    /// `--out` exists and is not a folder.
    #[error("--out {out}: exists and is not a folder")]
    OutNotAFolder {
        /// The resolved `--out`.
        out: PathBuf,
    },
    /// `--out` already holds files that differ from what the import would put there.
    #[error("--out {out} already holds a different data set root ({}); choose a new or empty folder", list_paths(.differing))]
    OutHoldsOtherRoot {
        /// The resolved `--out`.
        out: PathBuf,
        /// The files there that differ.
        differing: Vec<PathBuf>,
    },
    /// Names of the file list missing or found more than once.
    #[error("{}", mismatch_message(.dir, .missing, .doubled, .unexpected, *.allow_missing))]
    Mismatch {
        /// The resolved DIR.
        dir: PathBuf,
        /// Files not found, as `<name>.aedat` / `<name>.csv`.
        missing: Vec<String>,
        /// Files found more than once, with where.
        doubled: Vec<(String, Vec<PathBuf>)>,
        /// `.aedat`/`.csv` files whose name is not in the file list.
        unexpected: Vec<PathBuf>,
        /// Whether `--allow-missing` was given (then only doubles fail).
        allow_missing: bool,
    },
    /// More than one class definitions file, and they disagree.
    #[error("class definitions disagree: {}; keep one", list_paths(.paths))]
    ClassDefsDisagree {
        /// The files found.
        paths: Vec<PathBuf>,
    },
    /// With `--allow-missing`, not one recording is complete.
    #[error("{dir}: no recording of the file list has both its .aedat and its .csv")]
    NothingToImport {
        /// The resolved DIR.
        dir: PathBuf,
    },
    /// The class definitions found are unusable.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Paths joined by commas, for messages.
pub fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn mismatch_message(
    dir: &Path,
    missing: &[String],
    doubled: &[(String, Vec<PathBuf>)],
    unexpected: &[PathBuf],
    allow_missing: bool,
) -> String {
    let mut s = format!(
        "{} does not hold every file of the file list exactly once; nothing written",
        dir.display()
    );
    if !missing.is_empty() {
        let _ = write!(s, "\n  missing ({}): {}", missing.len(), missing.join(", "));
    }
    for (name, paths) in doubled {
        let _ = write!(s, "\n  doubled: {name} at {}", list_paths(paths));
    }
    if !unexpected.is_empty() {
        let _ = write!(
            s,
            "\n  unexpected (not in the file list, ignored): {}",
            list_paths(unexpected)
        );
    }
    if !allow_missing && doubled.is_empty() {
        s.push_str("\n  (--allow-missing imports the complete recordings only)");
    }
    s
}

/// Maps an I/O error to [`ImportError::Io`] naming `path`.
pub fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the class definitions of the root came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassDefsSource {
    /// The file found under DIR.
    Found(PathBuf),
    /// spikecv's built-in copy (none was found).
    BuiltIn,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The root written (resolved).
    pub out: PathBuf,
    /// The recordings of its `filelist.txt`, in file-list order.
    pub recordings: Vec<String>,
    /// Names of the file list left out (`--allow-missing`), in file-list order.
    pub left_out: Vec<String>,
    /// The files missing that made them so, as `<name>.aedat` / `<name>.csv`.
    pub missing: Vec<String>,
    /// `.aedat`/`.csv` files under DIR whose name is not in the file list.
    pub unexpected: Vec<PathBuf>,
    /// Where the class definitions came from.
    pub class_defs: ClassDefsSource,
    /// Files of DIR hard-linked.
    pub linked: usize,
    /// Files of DIR copied.
    pub copied: usize,
    /// Files already in place and identical, left alone (`filelist.txt` is
    /// always written).
    pub kept: usize,
}

/// An absolute path with every existing part resolved (links, `..`), for
/// comparing a `--out` that may not exist yet with DIR.
pub(crate) fn resolve(path: &Path) -> Result<PathBuf, ImportError> {
    let abs = std::path::absolute(path).map_err(io_at(path))?;
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        match base.canonicalize() {
            Ok(mut p) => {
                p.extend(rest.iter().rev());
                return Ok(p);
            }
            Err(e) => match (base.file_name(), base.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    base = parent;
                }
                _ => {
                    return Err(ImportError::Io {
                        path: abs,
                        source: e,
                    });
                }
            },
        }
    }
}

/// A file of the download, resolved; a link leading out of `dir` fails.
pub fn resolved(dir: &Path, path: PathBuf) -> Result<PathBuf, ImportError> {
    let real = path.canonicalize().map_err(io_at(&path))?;
    if !real.starts_with(dir) {
        return Err(ImportError::LinkOutside {
            link: path,
            target: real,
            dir: dir.to_path_buf(),
        });
    }
    Ok(real)
}

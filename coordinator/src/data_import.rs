//! `coordinator data import DIR --out ROOT`: from the SL-Animals-DVS download,
//! laid out however the publisher packs it, to a data set root
//! (`recordings/<name>.aedat`, `tags/<name>.csv`, `filelist.txt`, the class
//! definitions).
//!
//! Every file under DIR is looked at (symbolic links followed, each folder
//! visited once, so link loops end; names starting with `.` and `__MACOSX`
//! skipped). A link whose target lies outside DIR fails the import, naming
//! the link and its target: an import takes only what the download holds. A file counts as the recording of `<name>` when it is called
//! `<name>.aedat` and as its tags when it is called `<name>.csv`, where `<name>`
//! is one of the 59 names of the file list, spelt exactly; the extension may be
//! in any case. Other `.aedat`/`.csv` files are reported as unexpected and left
//! out; other files are ignored. `SL-Animals-DVS_gestures_definitions.csv` is
//! used when found, else the built-in definitions are written.
//!
//! All checks run before anything is written: a name whose recording or tags
//! are missing or found twice fails the import, naming each, unless
//! `--allow-missing` (which leaves incomplete names out of `filelist.txt`; a
//! doubled name always fails). Files are hard-linked into ROOT, or copied when
//! a hard link is impossible (another file system) or `--copy` is given, so the
//! root never depends on DIR staying where it is. `filelist.txt` is written
//! last: an interrupted import leaves no root that opens, and running it again
//! completes it (files already in place and identical are kept).
//!
//! A DIR holding `DvsGesture/` (DVS128 Gesture as IBM ships it) is imported
//! by [`gesture`] into `ROOT/DvsGesture/` instead.

mod gesture;
mod place;
mod scan;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::sl_animals::{CLASS_DEFS, CLASS_NAMES, FILE_LIST, read_class_names};
use spikecv_common::dataset::synth::{class_definitions_csv, recording_names};

use place::{Placed, Source, check_out, place};
use scan::{Found, scan};

/// Flags of `coordinator data import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The downloaded data set: a folder holding the `.aedat` recordings and tag
    /// `.csv` files anywhere below it.
    pub dir: PathBuf,
    /// The root to write (created if missing; must not lie inside DIR).
    #[arg(long)]
    pub out: PathBuf,
    /// Copy the files instead of hard-linking them.
    #[arg(long)]
    pub copy: bool,
    /// Import the recordings that are complete and leave the others out of
    /// `filelist.txt` instead of failing (doubled names still fail).
    #[arg(long)]
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

fn list_paths(paths: &[PathBuf]) -> String {
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

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
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
fn resolve(path: &Path) -> Result<PathBuf, ImportError> {
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

/// Imports `args.dir` into `args.out` (see the module docs).
pub fn import(args: &ImportArgs) -> Result<ImportReport, ImportError> {
    if !args.dir.is_dir() {
        return Err(ImportError::NotAFolder {
            dir: args.dir.clone(),
        });
    }
    let dir = args.dir.canonicalize().map_err(io_at(&args.dir))?;
    let out = resolve(&args.out)?;
    if out.starts_with(&dir) {
        return Err(ImportError::OutInsideSource { out, dir });
    }
    if let Some(src) = gesture::source_dir(&dir) {
        return gesture::import(args, dir.clone(), &src, out);
    }
    let names = recording_names();
    let found = scan(&dir, &out, &names.iter().cloned().collect())?;
    let mut unexpected = found.unexpected.clone();
    unexpected.sort();
    let Picked {
        complete,
        missing,
        doubled,
    } = pick(&names, &found);
    if !doubled.is_empty() || (!missing.is_empty() && !args.allow_missing) {
        return Err(ImportError::Mismatch {
            dir,
            missing,
            doubled,
            unexpected,
            allow_missing: args.allow_missing,
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
    let write = check_out(&out, &plan, &recordings, &class_names)?;

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
    report.place_all(&plan, &write, &out, args.copy)?;
    tracing::info!(out = %out.display(), recordings = report.recordings.len(), "imported");
    Ok(report)
}

impl ImportReport {
    /// Puts each planned file under `out` (linked, copied or written; those
    /// `write` marks as already in place are kept) and counts what it did.
    fn place_all(
        &mut self,
        plan: &[(String, Source)],
        write: &[bool],
        out: &Path,
        copy: bool,
    ) -> Result<(), ImportError> {
        for ((rel, source), &write) in plan.iter().zip(write) {
            if !write {
                self.kept += 1;
                continue;
            }
            match place(source, &out.join(rel), copy)? {
                Placed::Linked => self.linked += 1,
                Placed::Copied => self.copied += 1,
                Placed::Written => {}
            }
        }
        Ok(())
    }
}

/// Writes what an import did, for people.
pub fn print_report(r: &ImportReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "imported {} recordings into {} ({} files hard-linked, {} copied, {} already there)",
        r.recordings.len(),
        r.out.display(),
        r.linked,
        r.copied,
        r.kept
    )?;
    match &r.class_defs {
        ClassDefsSource::Found(p) => writeln!(out, "class definitions: {}", p.display())?,
        ClassDefsSource::BuiltIn => writeln!(out, "class definitions: built-in (none found)")?,
    }
    if !r.left_out.is_empty() {
        writeln!(
            out,
            "left out (--allow-missing): {}; missing: {}",
            r.left_out.join(", "),
            r.missing.join(", ")
        )?;
    }
    if !r.unexpected.is_empty() {
        writeln!(
            out,
            "unexpected (not in the file list, ignored): {}",
            list_paths(&r.unexpected)
        )?;
    }
    writeln!(out)
}

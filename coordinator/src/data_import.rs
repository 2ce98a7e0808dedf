//! `coordinator data import DIR --out ROOT`: from the SL-Animals-DVS download,
//! laid out however the publisher packs it, to a data set root
//! (`recordings/<name>.aedat`, `tags/<name>.csv`, `filelist.txt`, the class
//! definitions).
//!
//! Every file under DIR is looked at (symbolic links followed, each folder
//! visited once, so link loops end; names starting with `.` and `__MACOSX`
//! skipped). A file counts as the recording of `<name>` when it is called
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

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use spikecv_common::dataset::{
    CLASS_DEFS, CLASS_NAMES, DataError, FILE_LIST, read_class_names, read_file_list,
};
use spikecv_common::synth::{class_definitions_csv, recording_names};

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

/// The candidate files found under DIR: (path as found under DIR, resolved path).
#[derive(Debug, Default)]
struct Found {
    recordings: BTreeMap<String, Vec<(PathBuf, PathBuf)>>,
    tags: BTreeMap<String, Vec<(PathBuf, PathBuf)>>,
    class_defs: Vec<(PathBuf, PathBuf)>,
    unexpected: Vec<PathBuf>,
}

/// Walks `dir` (canonical), following links, visiting each folder and file once
/// and never entering `out` (unless through `dir` itself, when `dir` lies in it).
fn scan(dir: &Path, out: &Path, names: &HashSet<String>) -> Result<Found, ImportError> {
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

/// What goes into one file of the root.
enum Source {
    /// A file under DIR, linked or copied.
    File(PathBuf),
    /// Text spikecv writes.
    Text(String),
}

/// Whether `target` (which exists) already holds what `source` would put there.
fn same_as(source: &Source, target: &Path, rel: &str) -> Result<bool, ImportError> {
    match (source, rel) {
        (_, FILE_LIST) | (_, CLASS_DEFS) => Ok(true), // compared by meaning in check_out
        (Source::File(src), _) => same_file(src, target),
        (Source::Text(text), _) => {
            Ok(std::fs::read(target).map_err(io_at(target))? == text.as_bytes())
        }
    }
}

/// The same file (one inode) or the same bytes.
fn same_file(a: &Path, b: &Path) -> Result<bool, ImportError> {
    let ma = std::fs::metadata(a).map_err(io_at(a))?;
    let mb = std::fs::metadata(b).map_err(io_at(b))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (ma.dev(), ma.ino()) == (mb.dev(), mb.ino()) {
            return Ok(true);
        }
    }
    if ma.len() != mb.len() || !mb.is_file() {
        return Ok(false);
    }
    let mut ra = BufReader::with_capacity(1 << 20, File::open(a).map_err(io_at(a))?);
    let mut rb = BufReader::with_capacity(1 << 20, File::open(b).map_err(io_at(b))?);
    loop {
        let ba = ra.fill_buf().map_err(io_at(a))?;
        let bb = rb.fill_buf().map_err(io_at(b))?;
        let n = ba.len().min(bb.len());
        if n == 0 {
            return Ok(ba.is_empty() && bb.is_empty());
        }
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        ra.consume(n);
        rb.consume(n);
    }
}

/// Which planned files must be written (`true`) or are already in place
/// (`false`); an error when `out` holds a different root.
fn check_out(
    out: &Path,
    plan: &[(String, Source)],
    recordings: &[String],
    class_names: &[String],
) -> Result<Vec<bool>, ImportError> {
    if out.exists() && !out.is_dir() {
        return Err(ImportError::OutNotAFolder {
            out: out.to_path_buf(),
        });
    }
    let mut differing = Vec::new();
    let mut write = Vec::with_capacity(plan.len());
    for (rel, source) in plan {
        let target = out.join(rel);
        let present = target.exists() || target.symlink_metadata().is_ok();
        write.push(!present || rel == FILE_LIST);
        if present && !same_as(source, &target, rel)? {
            differing.push(target);
        }
    }
    // The file list may name fewer recordings (an import with --allow-missing
    // being completed), never others.
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
    if !differing.is_empty() {
        return Err(ImportError::OutHoldsOtherRoot {
            out: out.to_path_buf(),
            differing,
        });
    }
    Ok(write)
}

/// How a file got into the root.
enum Placed {
    Linked,
    Copied,
    /// Text spikecv wrote (the file list, built-in class definitions).
    Written,
}

/// Copies through a temporary name, so a half-copied file never carries the
/// final name.
fn copy(src: &Path, target: &Path) -> Result<(), ImportError> {
    let tmp = target.with_extension("importing");
    std::fs::copy(src, &tmp).map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, target).map_err(io_at(target))
}

fn place(source: &Source, target: &Path, force_copy: bool) -> Result<Placed, ImportError> {
    match source {
        Source::Text(text) => {
            let tmp = target.with_extension("importing");
            std::fs::write(&tmp, text).map_err(io_at(&tmp))?;
            std::fs::rename(&tmp, target).map_err(io_at(target))?;
            Ok(Placed::Written)
        }
        Source::File(src) if force_copy => copy(src, target).map(|()| Placed::Copied),
        Source::File(src) => match std::fs::hard_link(src, target) {
            Ok(()) => Ok(Placed::Linked),
            Err(e) => {
                tracing::debug!(src = %src.display(), error = %e, "hard link impossible, copying");
                copy(src, target).map(|()| Placed::Copied)
            }
        },
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
    for ((rel, source), write) in plan.iter().zip(write) {
        if !write {
            report.kept += 1;
            continue;
        }
        match place(source, &out.join(rel), args.copy)? {
            Placed::Linked => report.linked += 1,
            Placed::Copied => report.copied += 1,
            Placed::Written => {}
        }
    }
    tracing::info!(out = %out.display(), recordings = report.recordings.len(), "imported");
    Ok(report)
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

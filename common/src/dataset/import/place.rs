//! Putting the files of an import into the root, for every kind: checking
//! what is already there, then hard-linking, copying or writing.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::dataset::import::{ImportError, ImportReport, io_at};

/// What goes into one file of the root.
pub enum Source {
    /// A file under DIR, linked or copied.
    File(PathBuf),
    /// Text spikecv writes.
    Text(String),
}

/// Whether `target` (which exists) already holds what `source` would put there.
fn same_as(source: &Source, target: &Path) -> Result<bool, ImportError> {
    match source {
        Source::File(src) => same_file(src, target),
        Source::Text(text) => Ok(std::fs::read(target).map_err(io_at(target))? == text.as_bytes()),
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
/// (`false`); an error when `out` holds a different root. The files of
/// `by_meaning` (relative paths) are not compared byte for byte: the kind's
/// importer compared them and gives those that differ in
/// `differing_by_meaning`; those
/// of `always` are written even when present.
pub fn check_out(
    out: &Path,
    plan: &[(String, Source)],
    by_meaning: &[&str],
    always: &[&str],
    differing_by_meaning: Vec<PathBuf>,
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
        write.push(!present || always.contains(&rel.as_str()));
        if present && !by_meaning.contains(&rel.as_str()) && !same_as(source, &target)? {
            differing.push(target);
        }
    }
    differing.extend(differing_by_meaning);
    if !differing.is_empty() {
        return Err(ImportError::OutHoldsOtherRoot {
            out: out.to_path_buf(),
            differing,
        });
    }
    Ok(write)
}

/// How a file got into the root.
pub enum Placed {
    /// Hard-linked from DIR.
    Linked,
    /// Copied from DIR.
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

/// Puts `source` at `target`: hard-linked (copied when `force_copy` or
/// when a link is impossible) or written.
pub fn place(source: &Source, target: &Path, force_copy: bool) -> Result<Placed, ImportError> {
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

impl ImportReport {
    /// Puts each planned file under `out` (linked, copied or written; those
    /// `write` marks as already in place are kept) and counts what it did.
    pub fn place_all(
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

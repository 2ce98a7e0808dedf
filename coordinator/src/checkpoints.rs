//! Checkpoint files beside the state database, in a folder named from the
//! database's whole file name (`run.db` → `run.db.checkpoints/`, `run.sqlite` →
//! `run.sqlite.checkpoints/`: two states never share one), beside the file a
//! symbolic link to the database points to (so the link and its target share
//! it too).
//!
//! Earlier versions used the name without its extension (`run.checkpoints/`),
//! which `run.db` and `run.sqlite` shared. An existing state keeps its files:
//! when the coordinator opens it, each checkpoint its records name that is
//! missing from the new folder is moved there from the old one
//! ([`CheckpointDir::sweep`]); the old folder is never swept, since another
//! state may still own files in it, and is removed once empty.
//!
//! A checkpoint of the reference model is ~150 MB; the database keeps only its
//! record (job, epoch, attempt, SHA-256, size) and the bytes live in
//! `<job>.<sha256>.ckpt`, so uploads and downloads stream through files off the
//! scheduler thread and never stall it. An upload is written to a `.part` file,
//! synced, and renamed to its final name in the transaction that records it;
//! files no record names (a crash between the two) are swept when the
//! coordinator opens the store.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use spikecv_common::experiment::plan::JobId;
use tokio::io::AsyncReadExt;

/// Extension of a committed checkpoint file.
const FINAL_EXT: &str = "ckpt";
/// Extension of an upload in progress.
const PART_EXT: &str = "part";

/// The directory of checkpoint files (cheap to clone).
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
    /// The folder earlier versions used for this database, when it exists.
    legacy: Option<PathBuf>,
    /// Keeps the directory of an in-memory store alive (removed on drop).
    _temp: Option<Arc<tempfile::TempDir>>,
    next_part: Arc<AtomicU64>,
}

impl CheckpointDir {
    /// The directory beside the database file `db` (created when missing).
    pub fn beside(db: &Path) -> std::io::Result<Self> {
        let dir = Self::path_beside(db);
        std::fs::create_dir_all(&dir)?;
        let real = db.canonicalize().unwrap_or_else(|_| db.to_owned());
        let legacy = Some(real.with_extension("checkpoints")).filter(|l| *l != dir && l.is_dir());
        Ok(Self {
            dir,
            legacy,
            _temp: None,
            next_part: Arc::default(),
        })
    }

    /// The directory [`CheckpointDir::beside`] uses for the database `db`:
    /// `<db file name>.checkpoints` beside the file `db` resolves to.
    pub fn path_beside(db: &Path) -> PathBuf {
        let real = db.canonicalize().unwrap_or_else(|_| db.to_owned());
        let mut name = real.as_os_str().to_owned();
        name.push(".checkpoints");
        PathBuf::from(name)
    }

    /// A temporary directory, for a store that lives in memory.
    pub fn temporary() -> std::io::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("spikecv-checkpoints-")
            .tempdir()?;
        Ok(Self {
            dir: temp.path().to_owned(),
            legacy: None,
            _temp: Some(Arc::new(temp)),
            next_part: Arc::default(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the checkpoint of `job` with content hash `sha256` lives.
    pub fn file(&self, job: &JobId, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{}.{FINAL_EXT}", job.as_str(), sha256))
    }

    /// Bytes an unprivileged process may still write to the directory's file
    /// system (`statvfs`: available blocks × fragment size).
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        let st = rustix::fs::statvfs(&self.dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Starts an upload: a new `.part` file to write chunks into.
    pub fn stage(&self) -> std::io::Result<StagingFile> {
        let n = self.next_part.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("upload-{}-{n}.{PART_EXT}", std::process::id()));
        let file = File::create(&path)?;
        Ok(StagingFile {
            path,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Removes `.part` files and checkpoint files not in `keep` (call only when
    /// no upload is in flight: when the coordinator opens its store). Returns how
    /// many files were removed. First moves the files of `keep` still in the
    /// folder of earlier versions here (see the module's documentation).
    pub fn sweep(&self, keep: &HashSet<PathBuf>) -> std::io::Result<usize> {
        self.adopt_legacy(keep)?;
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let ext = path.extension().and_then(|e| e.to_str());
            let stale = match ext {
                Some(PART_EXT) => true,
                Some(FINAL_EXT) => !keep.contains(&path),
                _ => false,
            };
            if stale {
                remove_quietly(&path);
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl CheckpointDir {
    /// Moves each file of `keep` missing here from the legacy folder, then
    /// removes that folder if it is left empty.
    fn adopt_legacy(&self, keep: &HashSet<PathBuf>) -> std::io::Result<()> {
        let Some(legacy) = &self.legacy else {
            return Ok(());
        };
        for path in keep.iter().filter(|p| !p.exists()) {
            let Some(name) = path.file_name() else {
                continue;
            };
            let old = legacy.join(name);
            if old.is_file() {
                std::fs::rename(&old, path)?;
                tracing::info!(from = %old.display(), to = %path.display(), "checkpoint moved to the state's own folder");
            }
        }
        // Fails (and is left alone) while another state's files are in it.
        if std::fs::remove_dir(legacy).is_ok() {
            tracing::info!(folder = %legacy.display(), "empty checkpoint folder of an earlier version removed");
        }
        Ok(())
    }
}

/// Removes a file, logging (not failing) when that is impossible; a missing file
/// is already what was wanted.
pub fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove checkpoint file")
        }
    }
}

/// An upload being written; removed from disk if dropped before [`finish`].
///
/// [`finish`]: StagingFile::finish
#[derive(Debug)]
pub struct StagingFile {
    path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
}

impl StagingFile {
    /// Appends a chunk.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("staging file already finished"))?;
        file.write_all(data)?;
        self.hasher.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the file to disk; returns it with its SHA-256 (hex) and size.
    pub fn finish(mut self) -> std::io::Result<StagedCheckpoint> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        let hasher = std::mem::take(&mut self.hasher);
        let staged = StagedCheckpoint {
            path: std::mem::take(&mut self.path),
            sha256: hex::encode(hasher.finalize()),
            size: self.size,
        };
        Ok(staged)
    }
}

impl Drop for StagingFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            remove_quietly(&self.path);
        }
    }
}

/// A fully written and synced upload, waiting to be recorded (which renames it
/// to its final name) or discarded.
#[derive(Debug, PartialEq, Eq)]
pub struct StagedCheckpoint {
    /// The `.part` file.
    pub path: PathBuf,
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// Reads a checkpoint file in chunks of `chunk` bytes with async reads (no
/// blocking thread is held between chunks, however slowly they are taken),
/// checking its size and SHA-256 against the record at the end. Each item is
/// one chunk; the last is followed by `None`.
#[derive(Debug)]
pub struct ChunkReader {
    file: tokio::fs::File,
    path: PathBuf,
    hasher: Sha256,
    read: u64,
    expected_size: u64,
    expected_sha: String,
    chunk: usize,
    done: bool,
}

impl ChunkReader {
    /// Opens `path`, expected to hold `size` bytes hashing to `sha256`.
    pub async fn open(path: &Path, size: u64, sha256: &str, chunk: usize) -> std::io::Result<Self> {
        Ok(Self {
            file: tokio::fs::File::open(path).await?,
            path: path.to_owned(),
            hasher: Sha256::new(),
            read: 0,
            expected_size: size,
            expected_sha: sha256.to_owned(),
            chunk: chunk.max(1),
            done: false,
        })
    }

    /// The next chunk (at least one, possibly empty, for an empty file), `None`
    /// after the last; an error if the file is shorter, longer or different
    /// from its record.
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let want = (self.expected_size - self.read).min(self.chunk as u64) as usize;
        let mut buf = vec![0u8; want];
        self.file.read_exact(&mut buf).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "{}: shorter than its recorded {} bytes ({e})",
                    self.path.display(),
                    self.expected_size
                ),
            )
        })?;
        self.hasher.update(&buf);
        self.read += want as u64;
        if self.read == self.expected_size {
            self.done = true;
            let mut probe = [0u8; 1];
            if self.file.read(&mut probe).await? != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: longer than its recorded {} bytes",
                        self.path.display(),
                        self.expected_size
                    ),
                ));
            }
            let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
            if actual != self.expected_sha {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: sha256 {actual} differs from the recorded {}",
                        self.path.display(),
                        self.expected_sha
                    ),
                ));
            }
        }
        Ok(Some(buf))
    }
}

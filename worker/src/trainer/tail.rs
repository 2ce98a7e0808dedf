//! Following the events file as the script appends to it: each read returns
//! the lines completed since the last; a last line still without its newline
//! waits for it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The longest line accepted (an epoch with its confusion matrix is
/// kilobytes).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Why the events file could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Reading failed.
    #[error("events file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("events file {}: a line longer than {MAX_LINE_BYTES} bytes", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
    },
}

/// The read end of an events file.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
}

impl Tail {
    /// Follows the file at `path` from its start.
    pub fn open(path: &Path) -> Result<Tail, TailError> {
        let file = File::open(path).map_err(|source| TailError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Tail {
            path: path.to_owned(),
            file,
            pending: Vec::new(),
        })
    }

    /// The lines completed since the last call (without their newlines;
    /// blank lines skipped).
    pub fn lines(&mut self) -> Result<Vec<String>, TailError> {
        let start = self.pending.len();
        self.file
            .read_to_end(&mut self.pending)
            .map_err(|source| TailError::Io {
                path: self.path.clone(),
                source,
            })?;
        let mut out = Vec::new();
        let mut from = 0;
        let mut search = start;
        while let Some(at) = self.pending[search..].iter().position(|&b| b == b'\n') {
            let end = search + at;
            let line = String::from_utf8_lossy(&self.pending[from..end]);
            let line = line.trim_end_matches('\r');
            if !line.trim().is_empty() {
                out.push(line.to_owned());
            }
            from = end + 1;
            search = from;
        }
        self.pending.drain(..from);
        if self.pending.len() > MAX_LINE_BYTES {
            return Err(TailError::TooLong {
                path: self.path.clone(),
            });
        }
        Ok(out)
    }

    /// What follows the last newline (a line never finished), if anything.
    pub fn unfinished(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.pending);
        (!text.trim().is_empty()).then(|| text.into_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut w = File::create(&path).unwrap();
        let mut tail = Tail::open(&path).unwrap();
        assert!(tail.lines().unwrap().is_empty());
        w.write_all(b"{\"a\":1}\n\n{\"b\":").unwrap();
        assert_eq!(tail.lines().unwrap(), vec!["{\"a\":1}"]);
        assert_eq!(tail.unfinished().as_deref(), Some("{\"b\":"));
        w.write_all(b"2}\r\n{\"c\":3}\n").unwrap();
        assert_eq!(tail.lines().unwrap(), vec!["{\"b\":2}", "{\"c\":3}"]);
        assert!(tail.unfinished().is_none());
        assert!(tail.lines().unwrap().is_empty());
    }
}

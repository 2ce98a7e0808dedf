//! Event-file readers: jAER AEDAT 2.0 (DVS128), AEDAT 3.1 (polarity packets) and
//! AEDAT 4 (with the `aedat` crate's flatbuffer code). The format is detected from the file's
//! first line, never from its name.
//!
//! Every reader returns the events in file order with unwrapped, non-decreasing
//! microsecond time stamps, the sensor size and what the header says. Bad input
//! (empty files, missing or unknown version lines, truncated bodies, time stamps
//! that go backwards, coordinates off the sensor) is a [`ReadError`] naming the
//! file and the byte offset; no input makes a reader panic.

pub mod v2;
pub mod v3;
pub mod v4;
mod v4_streams;

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::events::{Event, SensorSize};

/// Which container a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// jAER AEDAT 2.0: `#` header lines, then 8-byte big-endian records.
    Aedat2,
    /// AEDAT 3.1: `#` header lines up to `#!END-HEADER`, then typed packets.
    Aedat3,
    /// AEDAT 4.0: flatbuffer header and (often compressed) packets.
    Aedat4,
}

impl Format {
    /// The version as the file's first line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Aedat2 => "AEDAT 2.0",
            Format::Aedat3 => "AEDAT 3.1",
            Format::Aedat4 => "AEDAT 4.0",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a file's header says (as far as this project cares).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderFacts {
    /// The version from the first line, e.g. `"2.0"`.
    pub version: String,
    /// The chip or source named by the header (`AEChip:` in jAER files,
    /// `Source N:` in AEDAT 3.1), if any.
    pub chip: Option<String>,
    /// `System.currentTimeMillis()` at creation, when the header gives it.
    pub creation_time_ms: Option<i64>,
    /// Bytes before the first event record or packet.
    pub header_bytes: u64,
    /// Number of header lines (text formats).
    pub header_lines: usize,
}

/// The content of one event file.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFile {
    /// The detected container.
    pub format: Format,
    /// What the header says.
    pub header: HeaderFacts,
    /// The sensor size the events lie on.
    pub sensor: SensorSize,
    /// Events in file order, time stamps unwrapped (never decreasing).
    pub events: Vec<Event>,
    /// How many 32-bit time stamp wraps were unwrapped (AEDAT 2.0).
    pub timestamp_wraps: u32,
}

/// Why a file could not be read. Every variant names the file; those about the
/// content also give the byte offset where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{path}: empty file (byte offset 0)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The file does not start with a `#` header (not an event file, or garbage).
    #[error("{path}: no AEDAT header at byte offset 0 (found {found:?})")]
    MissingHeader {
        /// The file.
        path: PathBuf,
        /// The first bytes, for the message.
        found: String,
    },
    /// A `#` header without the `#!AER-DAT<version>` first line.
    #[error("{path}: missing version line `#!AER-DAT<version>` at byte offset 0 (found {found:?})")]
    MissingVersion {
        /// The file.
        path: PathBuf,
        /// The first line.
        found: String,
    },
    /// A version this project does not read.
    #[error(
        "{path}: unsupported AEDAT version {version:?} at byte offset 0 (supported: 2.0, 3.1, 4.0)"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version string after `#!AER-DAT`.
        version: String,
    },
    /// A chip whose address layout this reader does not decode.
    #[error("{path}: unsupported sensor {chip:?} named in the header at byte offset {offset}")]
    UnsupportedChip {
        /// The file.
        path: PathBuf,
        /// Where the header line naming the chip starts.
        offset: u64,
        /// The chip as named.
        chip: String,
    },
    /// A header that is not well formed (AEDAT 3.1 without its end line, an
    /// AEDAT 4 header that does not verify, ...).
    #[error("{path}: bad header at byte offset {offset}: {what}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Where the problem is.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A header but no events after it.
    #[error("{path}: no events after the header (body starts and ends at byte offset {offset})")]
    EmptyBody {
        /// The file.
        path: PathBuf,
        /// Where the body would start.
        offset: u64,
    },
    /// The body ends in the middle of a record or packet.
    #[error(
        "{path}: truncated {unit} at byte offset {offset}: {needed} bytes needed, {available} present"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the incomplete record or packet starts.
        offset: u64,
        /// `"record"`, `"packet header"` or `"packet"`.
        unit: &'static str,
        /// Its full size.
        needed: u64,
        /// The bytes left in the file.
        available: u64,
    },
    /// A packet whose header makes no sense (negative sizes, ...).
    #[error("{path}: bad packet at byte offset {offset}: {what}")]
    BadPacket {
        /// The file.
        path: PathBuf,
        /// Where the packet starts.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A time stamp smaller than the previous one that is not a 32-bit wrap.
    #[error(
        "{path}: time stamp goes backwards at byte offset {offset} (event {index}): {current} us after {previous} us"
    )]
    TimestampBackwards {
        /// The file.
        path: PathBuf,
        /// Where the event's record starts.
        offset: u64,
        /// The event's index in the file.
        index: u64,
        /// The previous (unwrapped) time stamp.
        previous: i64,
        /// This event's time stamp.
        current: i64,
    },
    /// An event whose coordinates are not on the sensor.
    #[error(
        "{path}: event at byte offset {offset} lies outside the {width}x{height} sensor: x={x}, y={y}"
    )]
    OutsideSensor {
        /// The file.
        path: PathBuf,
        /// Where the event's record (or packet, AEDAT 4) starts.
        offset: u64,
        /// Its x.
        x: i64,
        /// Its y.
        y: i64,
        /// Sensor width.
        width: u16,
        /// Sensor height.
        height: u16,
    },
    /// An AEDAT 4 packet that does not decompress or parse.
    #[error("{path}: AEDAT 4 packet {packet} at byte offset {offset}: {source}")]
    Aedat4 {
        /// The file.
        path: PathBuf,
        /// Index of the packet (0 = the file header).
        packet: u64,
        /// Where that packet starts.
        offset: u64,
        /// What the crate said.
        #[source]
        source: ::aedat::base::ParseError,
    },
    /// Data that would decompress (AEDAT 4) or grow (a header) beyond a limit.
    #[error("{path}: the {unit} at byte offset {offset} takes more than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Where the packet or line starts.
        offset: u64,
        /// What is too large, e.g. `"packet"` or `"header line"`.
        unit: &'static str,
        /// The limit, bytes.
        limit: u64,
    },
}

impl ReadError {
    /// Wraps an I/O error with the file.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ReadError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// [`ReadError::Truncated`]: the `unit` at `offset` needs `needed` bytes,
    /// `available` are left.
    pub(crate) fn truncated(
        path: &Path,
        offset: u64,
        unit: &'static str,
        needed: u64,
        available: u64,
    ) -> Self {
        ReadError::Truncated {
            path: path.to_path_buf(),
            offset,
            unit,
            needed,
            available,
        }
    }

    /// [`ReadError::BadPacket`]: the packet at `offset` is `what`.
    pub(crate) fn bad_packet(path: &Path, offset: u64, what: &'static str) -> Self {
        ReadError::BadPacket {
            path: path.to_path_buf(),
            offset,
            what,
        }
    }

    /// [`ReadError::BadHeader`]: the header at `offset` is `what`.
    pub(crate) fn bad_header(path: &Path, offset: u64, what: &'static str) -> Self {
        ReadError::BadHeader {
            path: path.to_path_buf(),
            offset,
            what,
        }
    }

    /// [`ReadError::EmptyBody`]: no events after the header ending at `offset`.
    pub(crate) fn empty_body(path: &Path, offset: u64) -> Self {
        ReadError::EmptyBody {
            path: path.to_path_buf(),
            offset,
        }
    }
}

/// The first line of a file and the format it announces.
fn detect(first: &[u8], path: &Path) -> Result<Format, ReadError> {
    if first.is_empty() {
        return Err(ReadError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let shown = || String::from_utf8_lossy(&first[..first.len().min(40)]).into_owned();
    if first[0] != b'#' {
        return Err(ReadError::MissingHeader {
            path: path.to_path_buf(),
            found: shown(),
        });
    }
    let line_end = first
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(first.len());
    let line = &first[..line_end];
    let Some(version) = line.strip_prefix(b"#!AER-DAT") else {
        return Err(ReadError::MissingVersion {
            path: path.to_path_buf(),
            found: shown(),
        });
    };
    match version {
        b"2.0" => Ok(Format::Aedat2),
        b"3.1" => Ok(Format::Aedat3),
        b"4.0" => Ok(Format::Aedat4),
        other => Err(ReadError::UnsupportedVersion {
            path: path.to_path_buf(),
            version: String::from_utf8_lossy(&other[..other.len().min(20)]).into_owned(),
        }),
    }
}

/// Opens `path` through a buffer and detects its format from the first line;
/// returns the reader (at the file's start), the format and the file's size.
fn open(path: &Path) -> Result<(BufReader<File>, Format, u64), ReadError> {
    let file = File::open(path).map_err(|e| ReadError::io(path, e))?;
    let size = file.metadata().map_err(|e| ReadError::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader.fill_buf().map_err(|e| ReadError::io(path, e))?;
    let format = detect(&head[..head.len().min(64)], path)?;
    Ok((reader, format, size))
}

/// Reads a whole event file, detecting its format from the first line. The file
/// is read through a buffer once; raw bytes are never held whole in memory
/// (AEDAT 2.0 and 3.1).
pub fn read_file(path: &Path) -> Result<EventFile, ReadError> {
    read_file_reusing(path, Vec::new())
}

/// [`read_file`], reusing `spare`'s allocation for the events where the format
/// allows (AEDAT 2.0); pass the previous file's events back to avoid touching
/// fresh memory for every recording.
pub fn read_file_reusing(path: &Path, spare: Vec<Event>) -> Result<EventFile, ReadError> {
    let (reader, format, size) = open(path)?;
    match format {
        Format::Aedat2 => v2::read_reusing(reader, path, Some(size), spare),
        Format::Aedat3 => v3::read(reader, path, Some(size)),
        Format::Aedat4 => {
            drop(reader);
            v4::read_path(path)
        }
    }
}

/// Reads an event file from memory. `path` is only used in error messages.
pub fn read_bytes(bytes: &[u8], path: &Path) -> Result<EventFile, ReadError> {
    match detect(&bytes[..bytes.len().min(64)], path)? {
        Format::Aedat2 => v2::read(Cursor::new(bytes), path, Some(bytes.len() as u64)),
        Format::Aedat3 => v3::read(Cursor::new(bytes), path, Some(bytes.len() as u64)),
        Format::Aedat4 => v4::read_bytes(bytes, path),
    }
}

/// Reads only the header of an event file (works on header-only files).
pub fn read_header(path: &Path) -> Result<(Format, HeaderFacts), ReadError> {
    let (mut reader, format, _) = open(path)?;
    let facts = match format {
        Format::Aedat2 => v2::read_header(&mut reader, path)?.0,
        Format::Aedat3 => v3::read_header(&mut reader, path)?.0,
        Format::Aedat4 => {
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| ReadError::io(path, e))?;
            v4::header_facts(&bytes, path)?
        }
    };
    Ok((format, facts))
}

/// The longest `#` header line read, bytes (jAER writes lines of a few
/// hundred bytes, its preferences XML included).
pub const MAX_HEADER_LINE_BYTES: u64 = 1 << 20;

/// The most `#` header bytes read before the events.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Header lines with their byte offsets, the bytes they take, and whether the
/// `stop` line was found.
pub(crate) type HashLines = (Vec<(u64, String)>, u64, bool);

/// Reads `#` lines from `reader` while the next byte is `#`; returns the lines
/// (without line ends) with their byte offsets, and the bytes consumed. Stops after a line for which
/// `stop` returns true. A line longer than [`MAX_HEADER_LINE_BYTES`], or a
/// header past [`MAX_HEADER_BYTES`], is [`ReadError::TooLarge`]: no more than
/// that is ever buffered.
pub(crate) fn read_hash_lines<R: BufRead>(
    reader: &mut R,
    path: &Path,
    stop: impl Fn(&str) -> bool,
) -> Result<HashLines, ReadError> {
    let mut lines = Vec::new();
    let mut consumed = 0u64;
    let mut line = Vec::new();
    loop {
        let next = reader.fill_buf().map_err(|e| ReadError::io(path, e))?;
        if next.first() != Some(&b'#') {
            return Ok((lines, consumed, false));
        }
        line.clear();
        let start = consumed;
        let too_large = |unit, limit| ReadError::TooLarge {
            path: path.to_path_buf(),
            offset: start,
            unit,
            limit,
        };
        if start >= MAX_HEADER_BYTES {
            return Err(too_large(
                "header (its lines up to the one)",
                MAX_HEADER_BYTES,
            ));
        }
        let n = reader
            .by_ref()
            .take(MAX_HEADER_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| ReadError::io(path, e))?;
        if n as u64 > MAX_HEADER_LINE_BYTES {
            return Err(too_large("header line", MAX_HEADER_LINE_BYTES));
        }
        consumed += n as u64;
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let done = stop(&text);
        lines.push((start, text));
        if done {
            return Ok((lines, consumed, true));
        }
    }
}

/// Fills `buf` from `reader` as far as the data goes; returns the bytes read.
pub(crate) fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Where an event sits in its file, for the errors of [`push_checked`].
pub(crate) struct EventAt<'a> {
    /// The file.
    pub path: &'a Path,
    /// The event's byte offset (or its packet's).
    pub offset: u64,
}

/// Appends an event after checking that its time stamp does not go back from
/// `*prev_t` (`backwards` forces that error, e.g. for a negative raw stamp) and
/// that it lies on the sensor; updates `*prev_t`. Shared by the packet readers.
pub(crate) fn push_checked(
    events: &mut Vec<Event>,
    at: EventAt<'_>,
    prev_t: &mut i64,
    backwards: bool,
    (t, x, y, p): (i64, i64, i64, bool),
    sensor: SensorSize,
) -> Result<(), ReadError> {
    if backwards || t < *prev_t {
        return Err(ReadError::TimestampBackwards {
            path: at.path.to_path_buf(),
            offset: at.offset,
            index: events.len() as u64,
            previous: *prev_t,
            current: t,
        });
    }
    let on_sensor =
        (0..i64::from(sensor.width)).contains(&x) && (0..i64::from(sensor.height)).contains(&y);
    if !on_sensor {
        return Err(ReadError::OutsideSensor {
            path: at.path.to_path_buf(),
            offset: at.offset,
            x,
            y,
            width: sensor.width,
            height: sensor.height,
        });
    }
    *prev_t = t;
    events.push(Event {
        t,
        x: x as u16,
        y: y as u16,
        p,
    });
    Ok(())
}

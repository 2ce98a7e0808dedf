//! AEDAT 4.0, decoded from the bytes this module has checked. The `aedat`
//! crate trusts its input (it reads the file header without verifying it,
//! allocates what a packet header claims and decompresses a packet without a
//! bound), so only its generated flatbuffer code is used here: this module
//! checks the framing itself (the magic line, a header table whose offsets
//! stay in bounds, packets that fit in the file), reads the stream
//! description (`roxmltree`), decompresses each packet (`lz4`, `zstd`, the
//! crates `aedat` itself uses) through a reader that stops past
//! [`MAX_PACKET_BYTES`] and in total past [`MAX_DECOMPRESSED_BYTES`], and
//! parses event packets with the verifying flatbuffer reader. The file is read
//! once; nothing is decoded from a second read. Only the event stream's
//! packets count.

use std::io::Read;
use std::path::Path;

use ::aedat::base::ioheader_generated::Compression;

use super::{EventAt, EventFile, Format, HeaderFacts, ReadError, push_checked};

/// The first line of an AEDAT 4 file.
pub const MAGIC: &[u8] = b"#!AER-DAT4.0\r\n";

/// The largest decompressed packet accepted, bytes (a camera writes packets
/// of a few hundred kB; one of 64 MiB holds 4 M events).
pub const MAX_PACKET_BYTES: u64 = 64 << 20;

/// The largest total of decompressed packets in one file, bytes (about the
/// memory its events take).
pub const MAX_DECOMPRESSED_BYTES: u64 = 2 << 30;

/// The fields of the file header.
struct IoHeader<'a> {
    compression: i32,
    file_data_position: i64,
    description: &'a str,
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// Reads the header table by hand, checking every offset against the buffer.
/// (The flatbuffers verifier insists on 8-byte alignment of the `i64` field,
/// which real files do not have; the crate then reads the table unchecked, so
/// the bounds are what matters.) Fields absent from the vtable take the
/// schema's defaults (compression none, data table position -1).
fn parse_io_header(buf: &[u8]) -> Option<IoHeader<'_>> {
    let table = u32_at(buf, 0)?;
    let soffset = i64::from(i32::from_le_bytes(
        buf.get(table..table + 4)?.try_into().ok()?,
    ));
    let vtable = usize::try_from(table as i64 - soffset).ok()?;
    let vt_len = u16_at(buf, vtable)?;
    let table_len = u16_at(buf, vtable + 2)?;
    if vt_len < 4 || vtable + vt_len > buf.len() || table + table_len > buf.len() {
        return None;
    }
    // Field i's position in the table, checked to hold `size` bytes.
    let field = |i: usize, size: usize| -> Option<Option<usize>> {
        let slot = 4 + 2 * i;
        if slot + 2 > vt_len {
            return Some(None);
        }
        let off = u16_at(buf, vtable + slot)?;
        if off == 0 {
            return Some(None);
        }
        (off + size <= table_len).then_some(Some(table + off))
    };
    let compression = match field(0, 4)? {
        Some(at) => i32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?),
        None => 0,
    };
    let file_data_position = match field(1, 8)? {
        Some(at) => i64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?),
        None => -1,
    };
    let at = field(2, 4)??;
    let text = at.checked_add(u32_at(buf, at)?)?;
    let len = u32_at(buf, text)?;
    let bytes = buf.get(text + 4..(text + 4).checked_add(len)?)?;
    let description = std::str::from_utf8(bytes).ok()?;
    Some(IoHeader {
        compression,
        file_data_position,
        description,
    })
}

/// What the checked file header says.
struct Checked<'a> {
    facts: HeaderFacts,
    compression: Compression,
    /// Where the data table starts (-1: no table).
    data_table: i64,
    /// The stream description (XML).
    description: &'a str,
}

/// Checks the file header.
fn check_header<'a>(bytes: &'a [u8], path: &Path) -> Result<Checked<'a>, ReadError> {
    let bad = |offset: u64, what| ReadError::bad_header(path, offset, what);
    if !bytes.starts_with(MAGIC) {
        return Err(bad(0, "the first line is not `#!AER-DAT4.0` with CRLF"));
    }
    let at = MAGIC.len();
    let truncated = |unit, needed| {
        ReadError::truncated(path, at as u64, unit, needed, (bytes.len() - at) as u64)
    };
    let Some(len) = u32_at(bytes, at) else {
        return Err(truncated("header length", 4));
    };
    let start = at + 4;
    let Some(header) = bytes.get(start..start.saturating_add(len)) else {
        return Err(truncated("file header", 4 + len as u64));
    };
    let io = parse_io_header(header).ok_or_else(|| {
        bad(
            start as u64,
            "the file header is not a well-formed flatbuffer",
        )
    })?;
    if !io.description.contains("outInfo") {
        return Err(bad(start as u64, "the description names no output streams"));
    }
    let compression = match io.compression {
        0 => Compression::None,
        1 => Compression::Lz4,
        2 => Compression::Lz4High,
        3 => Compression::Zstd,
        4 => Compression::ZstdHigh,
        _ => return Err(bad(start as u64, "unknown compression")),
    };
    let facts = HeaderFacts {
        version: "4.0".into(),
        chip: None,
        creation_time_ms: None,
        header_bytes: (start + len) as u64,
        header_lines: 1,
    };
    Ok(Checked {
        facts,
        compression,
        data_table: io.file_data_position,
        description: io.description,
    })
}

/// The packets' offsets (stopping at the data table when the header gives
/// its position); checks each fits in the file.
fn check_packets(bytes: &[u8], path: &Path, checked: &Checked<'_>) -> Result<Vec<u64>, ReadError> {
    let mut spans = Vec::new();
    let mut pos = checked.facts.header_bytes;
    let total = bytes.len() as u64;
    loop {
        if checked.data_table > -1 && pos as i64 == checked.data_table {
            break;
        }
        if pos + 4 > total {
            break; // the crate stops when the stream id cannot be read
        }
        let truncated = |unit, needed| ReadError::truncated(path, pos, unit, needed, total - pos);
        if pos + 8 > total {
            return Err(truncated("packet header", 8));
        }
        let len = u32_at(bytes, pos as usize + 4).unwrap_or(0) as u64;
        if pos + 8 + len > total {
            return Err(truncated("packet", 8 + len));
        }
        if checked.compression == Compression::None && len < 8 {
            let what = "packet shorter than its flatbuffer prefix";
            return Err(ReadError::bad_packet(path, pos, what));
        }
        spans.push(pos);
        pos += 8 + len;
    }
    Ok(spans)
}

/// The header facts of an AEDAT 4 file held in memory.
pub fn header_facts(bytes: &[u8], path: &Path) -> Result<HeaderFacts, ReadError> {
    Ok(check_header(bytes, path)?.facts)
}

/// Reads an AEDAT 4 file: read once, checked and decoded from those bytes.
pub fn read_path(path: &Path) -> Result<EventFile, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError::io(path, e))?;
    read_bytes(&bytes, path)
}

/// Reads an AEDAT 4 file held in memory; `path` is only used in error messages.
pub fn read_bytes(bytes: &[u8], path: &Path) -> Result<EventFile, ReadError> {
    if bytes.is_empty() {
        return Err(ReadError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let checked = check_header(bytes, path)?;
    let spans = check_packets(bytes, path, &checked)?;
    let (events_id, sensor) =
        super::v4_streams::event_stream(checked.description, MAGIC.len() as u64, path)?;
    let mut events = Vec::new();
    let mut prev_t = i64::MIN;
    let mut budget = MAX_DECOMPRESSED_BYTES;
    for (index, &offset) in spans.iter().enumerate() {
        let at = offset as usize;
        let packet = index as u64 + 1;
        // `check_packets` made sure the 8-byte head and the body are there.
        let (stream, len) = (u32_at(bytes, at), u32_at(bytes, at + 4).unwrap_or(0));
        if stream != Some(events_id as usize) {
            continue;
        }
        let raw = bytes.get(at + 8..at + 8 + len).unwrap_or_default();
        let buffer = decompress(raw, checked.compression, &mut budget).map_err(|e| match e {
            Inflate::TooLarge { limit, whole_file } => ReadError::TooLarge {
                path: path.to_path_buf(),
                offset,
                unit: if whole_file {
                    "packets up to the one"
                } else {
                    "packet"
                },
                limit,
            },
            Inflate::Corrupt(source) => ReadError::Aedat4 {
                path: path.to_path_buf(),
                packet,
                offset,
                source: source.into(),
            },
        })?;
        if !::aedat::events_generated::event_packet_size_prefixed_buffer_has_identifier(&buffer) {
            let what = "an event-stream packet without the EVTS identifier";
            return Err(ReadError::bad_packet(path, offset, what));
        }
        let parsed = ::aedat::events_generated::size_prefixed_root_as_event_packet(&buffer)
            .map_err(|e| ReadError::Aedat4 {
                path: path.to_path_buf(),
                packet,
                offset,
                source: e.into(),
            })?;
        let Some(elements) = parsed.elements() else {
            continue;
        };
        events.reserve(elements.len());
        for e in elements.iter() {
            let at = EventAt { path, offset };
            let event = (e.t(), i64::from(e.x()), i64::from(e.y()), e.on());
            push_checked(&mut events, at, &mut prev_t, false, event, sensor)?;
        }
    }
    if events.is_empty() {
        return Err(ReadError::empty_body(path, checked.facts.header_bytes));
    }
    Ok(EventFile {
        format: Format::Aedat4,
        header: checked.facts,
        sensor,
        events,
        timestamp_wraps: 0,
    })
}

/// Why a packet could not be decompressed.
enum Inflate {
    /// It decompresses to more than `limit` bytes (the file's budget when
    /// `whole_file`, else the packet's limit).
    TooLarge { limit: u64, whole_file: bool },
    /// The decompressor refused it.
    Corrupt(std::io::Error),
}

/// The packet body `raw` decompressed, within [`MAX_PACKET_BYTES`] and what
/// is left of the file's `budget` (reduced by what this packet took).
fn decompress(raw: &[u8], compression: Compression, budget: &mut u64) -> Result<Vec<u8>, Inflate> {
    let whole_file = *budget < MAX_PACKET_BYTES;
    let limit = MAX_PACKET_BYTES.min(*budget);
    let mut out = Vec::new();
    let read = match compression {
        Compression::Lz4 | Compression::Lz4High => {
            lz4::Decoder::new(raw).and_then(|d| d.take(limit + 1).read_to_end(&mut out))
        }
        Compression::Zstd | Compression::ZstdHigh => {
            zstd::stream::Decoder::new(raw).and_then(|d| d.take(limit + 1).read_to_end(&mut out))
        }
        _ => {
            out.extend_from_slice(raw);
            Ok(raw.len())
        }
    };
    read.map_err(Inflate::Corrupt)?;
    let n = out.len() as u64;
    if n > limit {
        return Err(Inflate::TooLarge {
            limit: if whole_file {
                MAX_DECOMPRESSED_BYTES
            } else {
                limit
            },
            whole_file,
        });
    }
    *budget -= n;
    Ok(out)
}

//! AEDAT 4.0 through the `aedat` crate. The crate trusts its input (it reads the
//! file header without verifying it and allocates what a packet header claims),
//! so this module first checks the file's framing itself: the magic line, a
//! header that verifies as a flatbuffer, and packets that fit in the file. Only
//! then does the crate decode; a panic inside it on a malformed compressed packet
//! is caught and reported as an error. Only the event stream's packets count.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ::aedat::base::ioheader_generated::Compression;
use ::aedat::base::{Decoder, StreamContent};

use super::{EventAt, EventFile, Format, HeaderFacts, ReadError, push_checked};
use crate::events::SensorSize;

/// The first line of an AEDAT 4 file.
pub const MAGIC: &[u8] = b"#!AER-DAT4.0\r\n";

/// One packet's place in the file.
#[derive(Debug, Clone, Copy)]
struct PacketSpan {
    offset: u64,
}

/// The fields of the file header the crate reads.
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

/// Checks the file header; returns the facts, the compression and the offset of
/// the first packet.
fn check_header(
    bytes: &[u8],
    path: &Path,
) -> Result<(HeaderFacts, Compression, i64, u64), ReadError> {
    let bad = |offset: u64, what| ReadError::BadHeader {
        path: path.to_path_buf(),
        offset,
        what,
    };
    if !bytes.starts_with(MAGIC) {
        return Err(bad(0, "the first line is not `#!AER-DAT4.0` with CRLF"));
    }
    let at = MAGIC.len();
    let Some(len_bytes) = bytes.get(at..at + 4) else {
        return Err(ReadError::Truncated {
            path: path.to_path_buf(),
            offset: at as u64,
            unit: "header length",
            needed: 4,
            available: (bytes.len() - at) as u64,
        });
    };
    let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
    let start = at + 4;
    let Some(header) = bytes.get(start..start.saturating_add(len)) else {
        return Err(ReadError::Truncated {
            path: path.to_path_buf(),
            offset: at as u64,
            unit: "file header",
            needed: 4 + len as u64,
            available: (bytes.len() - at) as u64,
        });
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
    Ok((
        facts,
        compression,
        io.file_data_position,
        (start + len) as u64,
    ))
}

/// Walks the packets as the crate will (stopping at the data table when the
/// header gives its position); checks each fits in the file.
fn check_packets(
    bytes: &[u8],
    path: &Path,
    first: u64,
    data_table: i64,
    compression: Compression,
) -> Result<Vec<PacketSpan>, ReadError> {
    let mut spans = Vec::new();
    let mut pos = first;
    let total = bytes.len() as u64;
    loop {
        if data_table > -1 && pos as i64 == data_table {
            break;
        }
        if pos + 4 > total {
            break; // the crate stops when the stream id cannot be read
        }
        if pos + 8 > total {
            return Err(ReadError::Truncated {
                path: path.to_path_buf(),
                offset: pos,
                unit: "packet header",
                needed: 8,
                available: total - pos,
            });
        }
        let p = pos as usize;
        let len = u64::from(u32::from_le_bytes([
            bytes[p + 4],
            bytes[p + 5],
            bytes[p + 6],
            bytes[p + 7],
        ]));
        if pos + 8 + len > total {
            return Err(ReadError::Truncated {
                path: path.to_path_buf(),
                offset: pos,
                unit: "packet",
                needed: 8 + len,
                available: total - pos,
            });
        }
        if compression == Compression::None && len < 8 {
            return Err(ReadError::BadPacket {
                path: path.to_path_buf(),
                offset: pos,
                what: "packet shorter than its flatbuffer prefix",
            });
        }
        spans.push(PacketSpan { offset: pos });
        pos += 8 + len;
    }
    Ok(spans)
}

/// The header facts of an AEDAT 4 file held in memory.
pub fn header_facts(bytes: &[u8], path: &Path) -> Result<HeaderFacts, ReadError> {
    Ok(check_header(bytes, path)?.0)
}

/// Reads an AEDAT 4 file: the framing is checked from the bytes, then the
/// `aedat` crate decodes the file.
pub fn read_path(path: &Path) -> Result<EventFile, ReadError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| ReadError::io(path, e))?;
    if bytes.is_empty() {
        return Err(ReadError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let (header, compression, data_table, first) = check_header(&bytes, path)?;
    let spans = check_packets(&bytes, path, first, data_table, compression)?;
    drop(bytes);
    decode(path, header, &spans, first)
}

fn decode(
    path: &Path,
    header: HeaderFacts,
    spans: &[PacketSpan],
    first: u64,
) -> Result<EventFile, ReadError> {
    let decoder = Decoder::new_from_file(path).map_err(|source| ReadError::Aedat4 {
        path: path.to_path_buf(),
        packet: 0,
        offset: 0,
        source,
    })?;
    let mut events_stream: Option<(u32, SensorSize)> = None;
    let mut ids: Vec<_> = decoder.id_to_stream.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        if let Some(stream) = decoder.id_to_stream.get(&id)
            && matches!(stream.content, StreamContent::Events)
            && events_stream.is_none()
        {
            {
                events_stream = Some((
                    id,
                    SensorSize {
                        width: stream.width,
                        height: stream.height,
                    },
                ));
            }
        }
    }
    let Some((events_id, sensor)) = events_stream else {
        return Err(ReadError::BadHeader {
            path: path.to_path_buf(),
            offset: MAGIC.len() as u64,
            what: "the file has no event stream",
        });
    };
    let mut events = Vec::new();
    let mut prev_t = i64::MIN;
    let mut decoder = decoder;
    for (index, span) in spans.iter().enumerate() {
        let offset = span.offset;
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.next()));
        let packet = match next {
            Ok(Some(Ok(packet))) => packet,
            Ok(Some(Err(source))) => {
                return Err(ReadError::Aedat4 {
                    path: path.to_path_buf(),
                    packet: index as u64 + 1,
                    offset,
                    source,
                });
            }
            Ok(None) => break,
            Err(_) => {
                return Err(ReadError::Aedat4Malformed {
                    path: path.to_path_buf(),
                    packet: index as u64 + 1,
                    offset,
                });
            }
        };
        if packet.stream_id != events_id {
            continue;
        }
        let parsed = ::aedat::events_generated::size_prefixed_root_as_event_packet(&packet.buffer)
            .map_err(|e| ReadError::Aedat4 {
                path: path.to_path_buf(),
                packet: index as u64 + 1,
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
        return Err(ReadError::EmptyBody {
            path: path.to_path_buf(),
            offset: first,
        });
    }
    Ok(EventFile {
        format: Format::Aedat4,
        header,
        sensor,
        events,
        timestamp_wraps: 0,
    })
}

/// Reads an AEDAT 4 file held in memory. The `aedat` crate only reads files, so
/// after the framing checks the bytes go to a temporary file.
pub fn read_bytes(bytes: &[u8], path: &Path) -> Result<EventFile, ReadError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if bytes.is_empty() {
        return Err(ReadError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let (header, compression, data_table, first) = check_header(bytes, path)?;
    let spans = check_packets(bytes, path, first, data_table, compression)?;
    let tmp: PathBuf = std::env::temp_dir().join(format!(
        "spikecv-aedat4-{}-{}.aedat4",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes).map_err(|e| ReadError::io(&tmp, e))?;
    let result = decode(&tmp, header, &spans, first).map_err(|e| rename(e, path));
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Puts the caller's name into an error raised on the temporary file.
fn rename(err: ReadError, path: &Path) -> ReadError {
    let p = path.to_path_buf();
    match err {
        ReadError::Io { source, .. } => ReadError::Io { path: p, source },
        ReadError::EmptyBody { offset, .. } => ReadError::EmptyBody { path: p, offset },
        ReadError::BadHeader { offset, what, .. } => ReadError::BadHeader {
            path: p,
            offset,
            what,
        },
        ReadError::Aedat4 {
            packet,
            offset,
            source,
            ..
        } => ReadError::Aedat4 {
            path: p,
            packet,
            offset,
            source,
        },
        ReadError::Aedat4Malformed { packet, offset, .. } => ReadError::Aedat4Malformed {
            path: p,
            packet,
            offset,
        },
        ReadError::TimestampBackwards {
            offset,
            index,
            previous,
            current,
            ..
        } => ReadError::TimestampBackwards {
            path: p,
            offset,
            index,
            previous,
            current,
        },
        ReadError::OutsideSensor {
            offset,
            x,
            y,
            width,
            height,
            ..
        } => ReadError::OutsideSensor {
            path: p,
            offset,
            x,
            y,
            width,
            height,
        },
        other => other,
    }
}

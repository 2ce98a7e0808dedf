//! jAER AEDAT 2.0 from a DVS128: `#` header lines (the first `#!AER-DAT2.0`, CRLF or
//! LF line ends), then 8-byte records of big-endian `u32 address`, `u32 time stamp`
//! (µs). Addresses decode as `x = (a >> 8) & 0x7f`, `y = (a >> 1) & 0x7f`,
//! `p = a & 1` (the reference pipeline's convention). jAER time stamps wrap at
//! 2^32 µs; a wrap is unwrapped, any other step backwards is an error.

use std::io::BufRead;
use std::path::Path;

use super::{EventFile, Format, HeaderFacts, ReadError, read_full, read_hash_lines};
use crate::events::{Event, SensorSize};

/// Bytes per record.
pub const RECORD_BYTES: usize = 8;

/// Decodes a DVS128 address into `(x, y, p)`.
#[inline]
pub fn decode_address(addr: u32) -> (u16, u16, bool) {
    (
        ((addr >> 8) & 0x7f) as u16,
        ((addr >> 1) & 0x7f) as u16,
        addr & 1 == 1,
    )
}

/// Encodes `(x, y, p)` as a DVS128 address (the inverse of [`decode_address`]).
#[inline]
pub fn encode_address(x: u16, y: u16, p: bool) -> u32 {
    (u32::from(x & 0x7f) << 8) | (u32::from(y & 0x7f) << 1) | u32::from(p)
}

/// Reads the header; returns its facts and the offset of the first line of the
/// chip name (for error messages).
pub fn read_header<R: BufRead>(
    reader: &mut R,
    path: &Path,
) -> Result<(HeaderFacts, Option<u64>), ReadError> {
    let (lines, consumed, _) = read_hash_lines(reader, path, |_| false)?;
    let mut facts = HeaderFacts {
        version: "2.0".into(),
        header_bytes: consumed,
        header_lines: lines.len(),
        ..HeaderFacts::default()
    };
    let mut chip_offset = None;
    for &(offset, ref line) in &lines {
        let body = line.trim_start_matches('#').trim();
        if let Some(chip) = body.strip_prefix("AEChip:") {
            if facts.chip.is_none() {
                facts.chip = Some(chip.trim().to_string());
                chip_offset = Some(offset);
            }
        } else if let Some(rest) = body.strip_prefix("Creation time:") {
            let digits = rest.trim().rsplit(' ').next().unwrap_or("");
            facts.creation_time_ms = digits.parse().ok();
        }
    }
    Ok((facts, chip_offset))
}

/// Reads a whole AEDAT 2.0 file from `reader` (positioned at the file's start).
/// `size` (the file size, if known) only sizes the event vector.
pub fn read<R: BufRead>(reader: R, path: &Path, size: Option<u64>) -> Result<EventFile, ReadError> {
    read_reusing(reader, path, size, Vec::new())
}

/// [`read`] into `spare`, a vector whose allocation is reused (its content is
/// dropped): a loader that reads recording after recording hands back the last
/// one's events and so touches no fresh memory.
pub fn read_reusing<R: BufRead>(
    mut reader: R,
    path: &Path,
    size: Option<u64>,
    mut spare: Vec<Event>,
) -> Result<EventFile, ReadError> {
    let (header, chip_offset) = read_header(&mut reader, path)?;
    spare.clear();
    if let Some(size) = size {
        let body = size.saturating_sub(header.header_bytes);
        spare.reserve_exact((body / RECORD_BYTES as u64) as usize);
    }
    read_body(reader, path, header, chip_offset, spare)
}

fn read_body<R: BufRead>(
    mut reader: R,
    path: &Path,
    header: HeaderFacts,
    chip_offset: Option<u64>,
    mut events: Vec<Event>,
) -> Result<EventFile, ReadError> {
    let body_start = header.header_bytes;
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = body_start;
    // Raw time stamp of the previous record (0 before the first: nothing is
    // smaller) and the unwrapped base added to raw stamps.
    let mut prev_raw = 0u32;
    let mut wrap_base: i64 = 0;
    let mut wraps = 0u32;
    let mut saw_any = false;
    loop {
        let n = read_full(&mut reader, &mut chunk).map_err(|e| super::ReadError::io(path, e))?;
        if n == 0 {
            break;
        }
        saw_any = true;
        let whole = n - n % RECORD_BYTES;
        let records = &chunk[..whole];
        // One pass: decode every record; a step backwards (rare: a wrap, or an
        // error) takes the slow branch.
        for (i, rec) in records.chunks_exact(RECORD_BYTES).enumerate() {
            let word = u64::from_be_bytes([
                rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec[7],
            ]);
            let raw = word as u32;
            if raw < prev_raw {
                if prev_raw - raw > (1u32 << 31) {
                    wrap_base += 1i64 << 32;
                    wraps += 1;
                } else {
                    return Err(ReadError::TimestampBackwards {
                        path: path.to_path_buf(),
                        offset: offset + (i * RECORD_BYTES) as u64,
                        index: events.len() as u64,
                        previous: wrap_base + i64::from(prev_raw),
                        current: wrap_base + i64::from(raw),
                    });
                }
            }
            prev_raw = raw;
            let (x, y, p) = decode_address((word >> 32) as u32);
            events.push(Event {
                t: wrap_base + i64::from(raw),
                x,
                y,
                p,
            });
        }
        offset += whole as u64;
        if whole < n {
            // read_full only returns a short count at the end of the data.
            let (needed, available) = (RECORD_BYTES as u64, (n - whole) as u64);
            return Err(ReadError::truncated(
                path, offset, "record", needed, available,
            ));
        }
        if n < chunk.len() {
            break;
        }
    }
    if !saw_any {
        return Err(ReadError::empty_body(path, body_start));
    }
    if let Some(chip) = &header.chip
        && !is_dvs128_compatible(chip)
    {
        return Err(ReadError::UnsupportedChip {
            path: path.to_path_buf(),
            offset: chip_offset.unwrap_or(0),
            chip: chip.clone(),
        });
    }
    Ok(EventFile {
        format: Format::Aedat2,
        header,
        sensor: SensorSize::DVS128,
        events,
        timestamp_wraps: wraps,
    })
}

/// Whether a jAER `AEChip` name is decoded with the DVS128 address layout. Only
/// chips known to use another layout (DAVIS, cochleas, ...) are refused, so
/// DVS128 files under any class name (`DVS128`, `Tmpdiff128`, ...) read.
pub fn is_dvs128_compatible(chip: &str) -> bool {
    let lower = chip.to_ascii_lowercase();
    !["davis", "cochlea", "dvs240", "dvs346", "atis"]
        .iter()
        .any(|other| lower.contains(other))
}

/// Writes a jAER-style AEDAT 2.0 file (header lines, then records) into `out`.
/// Time stamps are written modulo 2^32, as jAER does.
pub fn write<W: std::io::Write>(
    out: &mut W,
    header_lines: &[String],
    events: &[Event],
) -> std::io::Result<()> {
    out.write_all(b"#!AER-DAT2.0\r\n")?;
    for line in header_lines {
        out.write_all(b"# ")?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    let mut buf = Vec::with_capacity(events.len().min(1 << 16) * RECORD_BYTES);
    for chunk in events.chunks(1 << 16) {
        buf.clear();
        for e in chunk {
            buf.extend_from_slice(&encode_address(e.x, e.y, e.p).to_be_bytes());
            buf.extend_from_slice(&(e.t as u32).to_be_bytes());
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

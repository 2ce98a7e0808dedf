//! AEDAT 3.1 (cAER / jAER 3, DVS Gesture style): `#` header lines from
//! `#!AER-DAT3.1` to `#!END-HEADER`, then packets. Each packet is a 28-byte
//! little-endian header (`i16 type, i16 source, i32 event size, i32 time stamp
//! offset, i32 time stamp overflow, i32 capacity, i32 number, i32 valid`)
//! followed by `capacity × size` bytes of events. Only polarity packets (type 1)
//! are decoded: `u32 data` (bit 0 valid, bit 1 polarity, bits 2..17 y,
//! bits 17..32 x) and `i32` time stamp; the full time stamp is
//! `overflow << 31 | ts`. Invalid events (bit 0 clear) are skipped.

use std::io::{BufRead, Read};
use std::path::Path;

use super::{
    EventAt, EventFile, Format, HeaderFacts, ReadError, push_checked, read_full, read_hash_lines,
};
use crate::events::{Event, SensorSize};

/// Bytes in a packet header.
pub const PACKET_HEADER_BYTES: usize = 28;
/// The packet type of polarity events.
pub const POLARITY_EVENT: i16 = 1;

/// The sensor a `#Source N: NAME` header line names, if known.
pub fn sensor_of(name: &str) -> Option<SensorSize> {
    const SENSORS: [(&str, u16, u16); 5] = [
        ("DVS128", 128, 128),
        ("DAVIS240", 240, 180),
        ("DAVIS346", 346, 260),
        ("DAVIS640", 640, 480),
        ("DVXPLORER", 640, 480),
    ];
    let upper = name.to_ascii_uppercase();
    let (_, width, height) = SENSORS.into_iter().find(|(tag, ..)| upper.contains(tag))?;
    Some(SensorSize { width, height })
}

/// Reads the header up to and including `#!END-HEADER`; returns its facts and
/// the sensor it names.
pub fn read_header<R: BufRead>(
    reader: &mut R,
    path: &Path,
) -> Result<(HeaderFacts, SensorSize), ReadError> {
    let (lines, consumed, ended) =
        read_hash_lines(reader, path, |l| l.trim_end() == "#!END-HEADER")?;
    if !ended {
        let what = "the header has no `#!END-HEADER` line";
        return Err(ReadError::bad_header(path, consumed, what));
    }
    let mut facts = HeaderFacts {
        version: "3.1".into(),
        header_bytes: consumed,
        header_lines: lines.len(),
        ..HeaderFacts::default()
    };
    let mut sensor = SensorSize::DVS128;
    for &(offset, ref line) in &lines {
        let body = line.trim_start_matches('#').trim();
        if let Some(rest) = body.strip_prefix("Source ") {
            let name = rest.split_once(':').map(|(_, n)| n.trim()).unwrap_or("");
            if facts.chip.is_none() {
                facts.chip = Some(name.to_string());
                sensor = sensor_of(name).ok_or_else(|| ReadError::UnsupportedChip {
                    path: path.to_path_buf(),
                    offset,
                    chip: name.to_string(),
                })?;
            }
        }
    }
    Ok((facts, sensor))
}

/// One polarity packet's body with what its header says of it.
struct PolarityPacket<'a> {
    body: &'a [u8],
    event_size: usize,
    ts_offset: usize,
    overflow: i32,
    number: usize,
    /// The packet's offset in the file.
    offset: u64,
}

impl PolarityPacket<'_> {
    /// Decodes the packet's valid events onto `events`, checking each.
    fn push_events(
        &self,
        path: &Path,
        sensor: SensorSize,
        events: &mut Vec<Event>,
        prev_t: &mut i64,
    ) -> Result<(), ReadError> {
        let (size, tso) = (self.event_size, self.ts_offset);
        let base = i64::from(self.overflow) << 31;
        for (i, ev) in self.body.chunks_exact(size).take(self.number).enumerate() {
            let data = u32::from_le_bytes([ev[0], ev[1], ev[2], ev[3]]);
            if data & 1 == 0 {
                continue;
            }
            let ts = i32::from_le_bytes([ev[tso], ev[tso + 1], ev[tso + 2], ev[tso + 3]]);
            let at = EventAt {
                path,
                offset: self.offset + (PACKET_HEADER_BYTES + i * size) as u64,
            };
            let x = i64::from((data >> 17) & 0x7fff);
            let y = i64::from((data >> 2) & 0x7fff);
            let event = (base + i64::from(ts), x, y, (data >> 1) & 1 == 1);
            push_checked(events, at, prev_t, ts < 0, event, sensor)?;
        }
        Ok(())
    }
}

/// Reads a whole AEDAT 3.1 file from `reader` (positioned at the file's start).
pub fn read<R: BufRead>(
    mut reader: R,
    path: &Path,
    size: Option<u64>,
) -> Result<EventFile, ReadError> {
    let (header, sensor) = read_header(&mut reader, path)?;
    let mut offset = header.header_bytes;
    let mut events =
        Vec::with_capacity((size.unwrap_or(0).saturating_sub(offset) / 8).min(1 << 28) as usize);
    let mut prev_t = i64::MIN;
    let mut packets = 0u64;
    let mut body = Vec::new();
    loop {
        let mut head = [0u8; PACKET_HEADER_BYTES];
        let n = read_full(&mut reader, &mut head).map_err(|e| ReadError::io(path, e))?;
        if n == 0 {
            break;
        }
        if n < PACKET_HEADER_BYTES {
            let needed = PACKET_HEADER_BYTES as u64;
            return Err(ReadError::truncated(
                path,
                offset,
                "packet header",
                needed,
                n as u64,
            ));
        }
        packets += 1;
        let i16_at = |i: usize| i16::from_le_bytes([head[i], head[i + 1]]);
        let i32_at =
            |i: usize| i32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (kind, event_size, ts_offset) = (i16_at(0), i32_at(4), i32_at(8));
        let (overflow, capacity, number) = (i32_at(12), i32_at(16), i32_at(20));
        let bad = |what| ReadError::bad_packet(path, offset, what);
        if event_size <= 0 || capacity < 0 || number < 0 || overflow < 0 {
            return Err(bad("negative or zero size, count or overflow"));
        }
        if number > capacity {
            return Err(bad("more events than the packet's capacity"));
        }
        let body_len = i64::from(capacity) * i64::from(event_size);
        body.clear();
        let got = (&mut reader)
            .take(body_len as u64)
            .read_to_end(&mut body)
            .map_err(|e| ReadError::io(path, e))?;
        if (got as i64) < body_len {
            let needed = PACKET_HEADER_BYTES as u64 + body_len as u64;
            let available = (PACKET_HEADER_BYTES + got) as u64;
            return Err(ReadError::truncated(
                path, offset, "packet", needed, available,
            ));
        }
        if kind == POLARITY_EVENT {
            if event_size < 8 || ts_offset < 0 || ts_offset > event_size - 4 {
                return Err(bad(
                    "polarity packet with a bad event size or time stamp offset",
                ));
            }
            let packet = PolarityPacket {
                body: &body,
                event_size: event_size as usize,
                ts_offset: ts_offset as usize,
                overflow,
                number: number as usize,
                offset,
            };
            packet.push_events(path, sensor, &mut events, &mut prev_t)?;
        }
        offset += PACKET_HEADER_BYTES as u64 + body_len as u64;
    }
    if packets == 0 || events.is_empty() {
        return Err(ReadError::empty_body(path, header.header_bytes));
    }
    Ok(EventFile {
        format: Format::Aedat3,
        header,
        sensor,
        events,
        timestamp_wraps: 0,
    })
}

/// Writes an AEDAT 3.1 file with one polarity packet per `per_packet` events
/// (for tests and fixtures). Time stamps must be non-negative.
pub fn write<W: std::io::Write>(
    out: &mut W,
    source: &str,
    events: &[Event],
    per_packet: usize,
) -> std::io::Result<()> {
    out.write_all(b"#!AER-DAT3.1\r\n#Format: RAW\r\n")?;
    out.write_all(format!("#Source 1: {source}\r\n").as_bytes())?;
    out.write_all(b"#!END-HEADER\r\n")?;
    for chunk in events.chunks(per_packet.max(1)) {
        let overflow = chunk.first().map_or(0, |e| e.t >> 31) as i32;
        let n = chunk.len() as i32;
        let mut buf = Vec::with_capacity(PACKET_HEADER_BYTES + chunk.len() * 8);
        buf.extend_from_slice(&POLARITY_EVENT.to_le_bytes());
        buf.extend_from_slice(&1i16.to_le_bytes());
        for v in [8i32, 4, overflow, n, n, n] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        for e in chunk {
            let data = (u32::from(e.x) << 17) | (u32::from(e.y) << 2) | (u32::from(e.p) << 1) | 1;
            buf.extend_from_slice(&data.to_le_bytes());
            buf.extend_from_slice(&((e.t & 0x7fff_ffff) as i32).to_le_bytes());
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

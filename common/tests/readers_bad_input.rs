//! Bad input gives a clear error naming the file and byte offset, never a panic;
//! time stamp wraps are unwrapped; CRLF and LF headers both read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use spikecv_common::events::Event;
use spikecv_common::events::aedat::{self, Format, ReadError, v2, v3};

const NAME: &str = "test.aedat";

fn v2_file(header: &[u8], records: &[(u32, u32)]) -> Vec<u8> {
    let mut b = header.to_vec();
    for (a, t) in records {
        b.extend_from_slice(&a.to_be_bytes());
        b.extend_from_slice(&t.to_be_bytes());
    }
    b
}

const HEADER_CRLF: &[u8] = b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n";
const HEADER_LF: &[u8] = b"#!AER-DAT2.0\n# comment\n";

fn read(bytes: &[u8]) -> Result<aedat::EventFile, ReadError> {
    aedat::read_bytes(bytes, Path::new(NAME))
}

#[test]
fn decodes_addresses_as_the_reference_does() {
    let addr = (5 << 8) | (9 << 1) | 1;
    let f = read(&v2_file(
        HEADER_CRLF,
        &[(addr, 10), (v2::encode_address(127, 0, false), 11)],
    ))
    .unwrap();
    assert_eq!(f.events[0], Event::new(10, 5, 9, true));
    assert_eq!(f.events[1], Event::new(11, 127, 0, false));
    assert_eq!(f.header.header_bytes, HEADER_CRLF.len() as u64);
    assert_eq!(f.header.header_lines, 2);
    // LF-only headers read the same.
    let g = read(&v2_file(HEADER_LF, &[(addr, 10)])).unwrap();
    assert_eq!(g.events[0], f.events[0]);
    assert_eq!(g.header.header_bytes, HEADER_LF.len() as u64);
}

#[test]
fn empty_file_is_an_error() {
    assert!(matches!(read(b""), Err(ReadError::EmptyFile { .. })));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.aedat");
    std::fs::write(&p, b"").unwrap();
    let err = aedat::read_file(&p).unwrap_err();
    assert!(err.to_string().contains("empty.aedat"), "{err}");
}

#[test]
fn garbage_or_missing_headers_are_errors() {
    assert!(matches!(
        read(&[0u8, 1, 2, 3, 4, 5, 6, 7]),
        Err(ReadError::MissingHeader { .. })
    ));
    assert!(matches!(
        read(b"hello world\n"),
        Err(ReadError::MissingHeader { .. })
    ));
    assert!(matches!(
        read(b"# just a comment\n\0\0\0\0\0\0\0\0"),
        Err(ReadError::MissingVersion { .. })
    ));
    let e = read(b"#!AER-DAT9.9\r\n").unwrap_err();
    assert!(
        matches!(&e, ReadError::UnsupportedVersion { version, .. } if version == "9.9"),
        "{e}"
    );
    assert!(
        e.to_string().contains(NAME) && e.to_string().contains("byte offset 0"),
        "{e}"
    );
    assert!(matches!(
        read(b"#!AER-DAT1.0\r\n"),
        Err(ReadError::UnsupportedVersion { .. })
    ));
}

#[test]
fn header_without_body_is_an_error_at_the_body_offset() {
    match read(HEADER_CRLF) {
        Err(ReadError::EmptyBody { offset, .. }) => assert_eq!(offset, HEADER_CRLF.len() as u64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_body_names_the_offset_of_the_partial_record() {
    let mut b = v2_file(HEADER_CRLF, &[(1, 1), (2, 2), (3, 3)]);
    b.extend_from_slice(&[0, 0, 1]);
    match read(&b) {
        Err(e @ ReadError::Truncated { .. }) => {
            let ReadError::Truncated {
                offset, available, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*offset, HEADER_CRLF.len() as u64 + 24);
            assert_eq!(*available, 3);
            assert!(
                e.to_string()
                    .contains(&format!("byte offset {}", HEADER_CRLF.len() + 24))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncation_is_found_across_read_chunks() {
    // More than one 64 KiB chunk of records, then 5 stray bytes.
    let records: Vec<(u32, u32)> = (0..20_000u32).map(|i| (i & 0x7fff, i)).collect();
    let mut b = v2_file(HEADER_LF, &records);
    b.extend_from_slice(&[1, 2, 3, 4, 5]);
    match read(&b) {
        Err(ReadError::Truncated { offset, .. }) => {
            assert_eq!(offset, (HEADER_LF.len() + 8 * records.len()) as u64)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn backwards_time_stamps_are_rejected_with_offset() {
    let b = v2_file(HEADER_CRLF, &[(1, 100), (1, 200), (1, 150)]);
    match read(&b) {
        Err(ReadError::TimestampBackwards {
            offset,
            index,
            previous,
            current,
            ..
        }) => {
            assert_eq!(offset, HEADER_CRLF.len() as u64 + 16);
            assert_eq!((index, previous, current), (2, 200, 150));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_32_bit_wrap_is_unwrapped() {
    let b = v2_file(
        HEADER_CRLF,
        &[(1, u32::MAX - 10), (1, u32::MAX), (1, 5), (1, 7)],
    );
    let f = read(&b).unwrap();
    let t: Vec<i64> = f.events.iter().map(|e| e.t).collect();
    let base = 1i64 << 32;
    assert_eq!(t, vec![base - 11, base - 1, base + 5, base + 7]);
    assert_eq!(f.timestamp_wraps, 1);
}

#[test]
fn davis_chips_are_refused_by_the_dvs128_reader() {
    let header = b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.Davis346red\r\n";
    let e = read(&v2_file(header, &[(1, 1)])).unwrap_err();
    assert!(
        matches!(e, ReadError::UnsupportedChip { offset: 14, .. }),
        "{e}"
    );
}

#[test]
fn writer_and_reader_round_trip() {
    let events: Vec<Event> = (0..1000)
        .map(|i| {
            Event::new(
                5_000 + 3 * i,
                (i % 128) as u16,
                ((i * 7) % 128) as u16,
                i % 3 == 0,
            )
        })
        .collect();
    let mut b = Vec::new();
    v2::write(
        &mut b,
        &["AEChip: ch.unizh.ini.jaer.chip.retina.DVS128".into()],
        &events,
    )
    .unwrap();
    let f = read(&b).unwrap();
    assert_eq!(f.format, Format::Aedat2);
    assert_eq!(f.events, events);
}

fn v3_events() -> Vec<Event> {
    (0..500)
        .map(|i| {
            Event::new(
                1_000 + 2 * i,
                (i % 128) as u16,
                ((i * 5) % 128) as u16,
                i % 2 == 0,
            )
        })
        .collect()
}

#[test]
fn aedat31_polarity_packets_read() {
    let events = v3_events();
    let mut b = Vec::new();
    v3::write(&mut b, "DVS128", &events, 64).unwrap();
    let f = read(&b).unwrap();
    assert_eq!(f.format, Format::Aedat3);
    assert_eq!((f.sensor.width, f.sensor.height), (128, 128));
    assert_eq!(f.events, events);
}

#[test]
fn aedat31_skips_invalid_events_and_other_packets() {
    let events = v3_events();
    let mut b = Vec::new();
    v3::write(&mut b, "DVS128", &events[..10], 64).unwrap();
    // A special-event packet (type 0, 8-byte events) that must be skipped.
    let mut pkt = Vec::new();
    pkt.extend_from_slice(&0i16.to_le_bytes());
    pkt.extend_from_slice(&1i16.to_le_bytes());
    for v in [8i32, 4, 0, 2, 2, 2] {
        pkt.extend_from_slice(&v.to_le_bytes());
    }
    pkt.extend_from_slice(&[0xff; 16]);
    b.extend_from_slice(&pkt);
    // An invalid polarity event (valid bit clear) after the special packet.
    let mut tail = Vec::new();
    v3::write(&mut tail, "DVS128", &events[10..12], 64).unwrap();
    let hdr_len = tail
        .windows(14)
        .position(|w| w == b"#!END-HEADER\r\n")
        .unwrap()
        + 14;
    let mut packet = tail[hdr_len..].to_vec();
    packet[28] &= !1; // first event's valid bit
    b.extend_from_slice(&packet);
    let f = read(&b).unwrap();
    assert_eq!(f.events.len(), 11);
    assert_eq!(f.events[10], events[11]);
}

#[test]
fn aedat31_bad_input_is_an_error_with_offset() {
    let events = v3_events();
    let mut good = Vec::new();
    v3::write(&mut good, "DVS128", &events, 100).unwrap();
    let hdr = good
        .windows(14)
        .position(|w| w == b"#!END-HEADER\r\n")
        .unwrap()
        + 14;
    // Truncated packet.
    let cut = &good[..good.len() - 3];
    match read(cut) {
        Err(ReadError::Truncated { offset, unit, .. }) => {
            assert_eq!(unit, "packet");
            assert_eq!(offset, (hdr + 4 * (28 + 800)) as u64);
        }
        other => panic!("{other:?}"),
    }
    // Truncated packet header.
    assert!(matches!(
        read(&good[..hdr + 10]),
        Err(ReadError::Truncated {
            unit: "packet header",
            ..
        })
    ));
    // No end of header.
    assert!(matches!(
        read(b"#!AER-DAT3.1\r\n#Format: RAW\r\n"),
        Err(ReadError::BadHeader { .. })
    ));
    // Header only.
    assert!(matches!(
        read(&good[..hdr]),
        Err(ReadError::EmptyBody { .. })
    ));
    // Coordinates outside the DVS128 sensor.
    let mut off = good.clone();
    let data = (200u32 << 17) | 1;
    off[hdr + 28..hdr + 32].copy_from_slice(&data.to_le_bytes());
    match read(&off) {
        Err(ReadError::OutsideSensor { offset, x, .. }) => {
            assert_eq!(offset, (hdr + 28) as u64);
            assert_eq!(x, 200);
        }
        other => panic!("{other:?}"),
    }
    // Time going backwards.
    let mut back = good.clone();
    back[hdr + 28 + 8 + 4..hdr + 28 + 8 + 8].copy_from_slice(&0i32.to_le_bytes());
    assert!(matches!(
        read(&back),
        Err(ReadError::TimestampBackwards { index: 1, .. })
    ));
    // Negative sizes.
    let mut neg = good.clone();
    neg[hdr + 4..hdr + 8].copy_from_slice(&(-8i32).to_le_bytes());
    assert!(matches!(read(&neg), Err(ReadError::BadPacket { .. })));
    // A huge claimed capacity in a small file: an error, not an allocation.
    let mut huge = good.clone();
    huge[hdr + 16..hdr + 20].copy_from_slice(&i32::MAX.to_le_bytes());
    huge[hdr + 20..hdr + 24].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(matches!(read(&huge), Err(ReadError::Truncated { .. })));
}

#[test]
fn aedat4_bad_input_is_an_error() {
    let real = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/aedat4/sample.aedat4"
    ))
    .unwrap();
    // Magic only.
    assert!(matches!(
        read(b"#!AER-DAT4.0\r\n"),
        Err(ReadError::Truncated { .. })
    ));
    // Wrong line end.
    assert!(matches!(
        read(b"#!AER-DAT4.0\n\0\0\0\0"),
        Err(ReadError::BadHeader { .. })
    ));
    // Header length beyond the file.
    let mut long = real[..40].to_vec();
    long[14..18].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(read(&long), Err(ReadError::Truncated { .. })));
    // Garbage header content.
    let mut garbage = real.clone();
    for b in &mut garbage[18..60] {
        *b = 0xff;
    }
    assert!(read(&garbage).is_err());
    // Cut in the middle of a packet.
    let cut = &real[..real.len() / 2];
    match read(cut) {
        Err(e @ ReadError::Truncated { .. }) => assert!(e.to_string().contains("byte offset")),
        other => panic!("{other:?}"),
    }
    // Flipped bytes inside compressed packets: an error or events, never a panic.
    for step in [997usize, 4099, 65_537] {
        let mut flipped = real.clone();
        let mut i = 3000;
        while i < flipped.len() {
            flipped[i] ^= 0x5a;
            i += step;
        }
        let _ = read(&flipped);
    }
}

#[test]
fn fuzz_regressions_are_errors_not_panics() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions"));
    let mut seen = 0;
    for target in ["aedat2", "aedat3", "aedat4", "npy", "tags"] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            seen += 1;
            match target {
                "npy" => {
                    assert!(spikecv_common::events::npy::events_from_bytes(&bytes, &path).is_err())
                }
                "aedat4" => {
                    let mut b = aedat::v4::MAGIC.to_vec();
                    b.extend_from_slice(&bytes);
                    let _ = aedat::read_bytes(&b, &path);
                }
                _ => {
                    let _ = aedat::read_bytes(&bytes, &path);
                }
            }
        }
    }
    assert!(seen >= 1);
}

#[test]
fn an_aedat4_packet_that_inflates_past_the_limit_is_refused_before_it_is_held() {
    use std::io::Write;
    let real = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/aedat4/sample.aedat4"
    ))
    .unwrap();
    let facts = aedat::v4::header_facts(&real, Path::new(NAME)).unwrap();
    let first = facts.header_bytes as usize;
    // The fixture's header: LZ4 packets, the event stream has id 0.
    let bomb = |inflated: u64| {
        let mut enc = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut left = inflated;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            enc.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
        let (packed, done) = enc.finish();
        done.unwrap();
        let mut file = real[..first].to_vec();
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        file.extend_from_slice(&packed);
        (file, packed.len())
    };
    let (file, packed) = bomb(aedat::v4::MAX_PACKET_BYTES + 1);
    assert!(packed < 1 << 20, "{packed} bytes on disk");
    match read(&file) {
        Err(e @ ReadError::TooLarge { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("byte offset {first}"))
                    && text.contains(&aedat::v4::MAX_PACKET_BYTES.to_string()),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // At the limit it inflates, and the zeros are then no event packet.
    let (file, _) = bomb(aedat::v4::MAX_PACKET_BYTES);
    assert!(matches!(read(&file), Err(ReadError::BadPacket { .. })));
}

#[test]
fn header_lines_past_their_limits_are_refused() {
    // One line longer than the limit, without a line end.
    let mut long = b"#!AER-DAT2.0\r\n# ".to_vec();
    long.resize(
        long.len() + aedat::MAX_HEADER_LINE_BYTES as usize + 10,
        b'x',
    );
    match read(&long) {
        Err(e @ ReadError::TooLarge { .. }) => {
            assert!(
                e.to_string().contains("header line at byte offset 14"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Short lines adding up past the header limit.
    let mut many = b"#!AER-DAT3.1\r\n".to_vec();
    let line = format!("# {}\r\n", "y".repeat(1000));
    while (many.len() as u64) < aedat::MAX_HEADER_BYTES + 2000 {
        many.extend_from_slice(line.as_bytes());
    }
    match read(&many) {
        Err(e @ ReadError::TooLarge { .. }) => assert!(e.to_string().contains("header"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A header just under the line limit still reads (then has no events).
    let mut fine = b"#!AER-DAT2.0\r\n# ".to_vec();
    fine.resize(fine.len() + 1000, b'x');
    fine.extend_from_slice(b"\r\n");
    assert!(matches!(read(&fine), Err(ReadError::EmptyBody { .. })));
}

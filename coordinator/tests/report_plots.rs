//! Every plot file is a valid image of the expected size: PNG signature and
//! IHDR decoded by hand, SVG root's width and height parsed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod report_fixture;

use std::path::Path;

use report_fixture as fx;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_coordinator::report::render::plots::{BARS_SIZE, CONFUSION_SIZE, LEARNING_SIZE};
use spikecv_coordinator::report::{build_report, write_plots};

/// (width, height) from a PNG's IHDR chunk, after checking the signature, the
/// chunk's name, its CRC and the colour type.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
    assert_eq!(
        u32::from_be_bytes(bytes[8..12].try_into().unwrap()),
        13,
        "IHDR length"
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((bytes[24], bytes[25]), (8, 2), "8-bit RGB");
    let crc = u32::from_be_bytes(bytes[29..33].try_into().unwrap());
    assert_eq!(crc, crc32(&bytes[12..29]), "IHDR CRC");
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
    (width, height)
}

/// CRC-32 (ISO 3309, as PNG uses), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// (width, height) of the SVG root element.
fn svg_size(text: &str) -> (u32, u32) {
    let start = text.find("<svg").expect("no <svg root");
    let tag = &text[start..start + text[start..].find('>').unwrap()];
    let attr = |name: &str| -> u32 {
        let key = format!(" {name}=\"");
        let at = tag
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            + key.len();
        tag[at..at + tag[at..].find('"').unwrap()].parse().unwrap()
    };
    assert!(text.trim_end().ends_with("</svg>"));
    (attr("width"), attr("height"))
}

/// The contents of every `<text>` element, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            body.trim().to_owned()
        })
        .collect()
}

fn expected_size(name: &str) -> (u32, u32) {
    if name.starts_with("learning-") {
        LEARNING_SIZE
    } else if name.starts_with("test-accuracy-") {
        BARS_SIZE
    } else if name.starts_with("confusion-") {
        CONFUSION_SIZE
    } else {
        panic!("unexpected plot {name}")
    }
}

fn check_dir(dir: &Path, expected_files: usize) {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let want = expected_size(&name);
        let got = match path.extension().and_then(|e| e.to_str()) {
            Some("png") => png_size(&std::fs::read(&path).unwrap()),
            Some("svg") => svg_size(&std::fs::read_to_string(&path).unwrap()),
            other => panic!("unexpected file {name} ({other:?})"),
        };
        assert_eq!(got, want, "{name}");
        seen += 1;
    }
    assert_eq!(seen, expected_files);
}

#[test]
fn plots_are_valid_images_of_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let report = build_report(
        &fx::experiment("train-val-test"),
        &fx::jobs(ProtocolKind::TrainValTest),
        fx::NOW,
    );
    let files = write_plots(&report, dir.path()).unwrap();
    // SPIKECV_KEEP_PLOTS=DIR keeps a copy to look at.
    if let Ok(keep) = std::env::var("SPIKECV_KEEP_PLOTS") {
        for f in &files {
            std::fs::copy(&f.path, Path::new(&keep).join(f.path.file_name().unwrap())).unwrap();
        }
    }
    // Per group (whole, reduced): learning curves and confusion; one bar chart;
    // each as SVG and PNG.
    assert_eq!(files.len(), (2 * 2 + 1) * 2);
    for f in &files {
        assert!(f.path.starts_with(dir.path()));
        assert_eq!(
            (f.width, f.height),
            expected_size(f.path.file_name().unwrap().to_str().unwrap())
        );
    }
    check_dir(dir.path(), files.len());
    // The class names are on the confusion matrix.
    let svg =
        std::fs::read_to_string(dir.path().join("confusion-whole-train-val-test.svg")).unwrap();
    let texts = svg_texts(&svg);
    for name in fx::CLASS_NAMES {
        // Once beside the rows (true class), once below the columns (predicted).
        assert_eq!(texts.iter().filter(|t| *t == name).count(), 2, "{name}");
    }
}

#[test]
fn plots_of_a_run_without_results_still_draw() {
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<_> = fx::jobs(ProtocolKind::TrainTest)
        .into_iter()
        .map(|mut j| {
            j.status = spikecv_common::experiment::job::JobStatus::Pending;
            j.epochs.clear();
            j.confusion = None;
            j.test_accuracy = None;
            j
        })
        .collect();
    let report = build_report(&fx::experiment("train-test"), &jobs, fx::NOW);
    let files = write_plots(&report, dir.path()).unwrap();
    assert_eq!(files.len(), 10);
    check_dir(dir.path(), files.len());
}

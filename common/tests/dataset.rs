//! The data set API on small synthetic roots: layout, variants, samples from raw
//! and sliced layouts, validation errors, fingerprint, determinism.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::dataset::sl_animals::REDUCED;
use std::path::Path;

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::sl_animals::{CLASS_DEFS, FILE_LIST};
use spikecv_common::dataset::synth::{self, SynthOptions, SynthSize};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::npy;
use spikecv_common::events::slicing::{parse_sample_name, sample_name};
use spikecv_common::events::tags::TagsError;

fn make(dir: &Path, n: usize, seed: u64) {
    synth::generate(
        dir,
        &SynthOptions {
            seed,
            size: SynthSize::Tiny,
            recordings: Some(n),
        },
    )
    .unwrap();
}

#[test]
fn synthetic_root_opens_with_its_recordings_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), 19, 3);
    let ds = Dataset::open(dir.path()).unwrap();
    let whole = ds.recordings(Variant::WHOLE);
    // 19 of 59, evenly spaced: positions 0, 3, 6, 9, ... (i * 59 / 19).
    assert_eq!(whole.len(), 19);
    assert_eq!(whole[0], "user00_indoor");
    assert_eq!(whole[2], "user07_indoor", "there is no user04");
    assert_eq!(whole[6], "user19_sunlight");
    assert_eq!(whole[18], "user56_dc");
    // Every recording set is there, so the reduced variant is not empty.
    let reduced = ds.recordings(REDUCED);
    assert_eq!(reduced.len(), 13);
    assert!(reduced.iter().all(|r| !r.ends_with("_indoor")));
    for set in ["_sunlight", "_imse", "_dc"] {
        assert!(reduced.iter().any(|r| r.ends_with(set)), "{set}");
    }
    assert_eq!(ds.class_names().len(), 19);
    assert_eq!(ds.class_names()[0], "cat");
    assert_eq!(ds.class_names()[18], "zebra");
    let seed_list =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/filelist.txt"))
            .unwrap();
    let seed_names: Vec<&str> = seed_list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(synth::recording_names(), seed_names);
    let seed_defs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/SL-Animals-DVS_gestures_definitions.csv"
    ))
    .unwrap();
    let ours = std::fs::read_to_string(dir.path().join(CLASS_DEFS)).unwrap();
    assert_eq!(
        ours.trim_end().lines().collect::<Vec<_>>(),
        seed_defs.trim_end().lines().collect::<Vec<_>>()
    );
}

#[test]
fn samples_come_from_tags_and_agree_between_apis_and_layouts() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), 2, 7);
    let ds = Dataset::open(dir.path()).unwrap();
    let rec = "user30_imse";
    let samples = ds.recording_samples(rec).unwrap();
    assert_eq!(samples.len(), 19);
    for (c, s) in samples.iter().enumerate() {
        assert!(!s.is_empty());
        assert!(s.windows(2).all(|w| w[0].t <= w[1].t));
        assert_eq!(&ds.sample_events(rec, c).unwrap(), s);
    }
    // Tags are event indices into the whole recording.
    let (events, tags) = ds.read_raw(rec).unwrap();
    assert_eq!(samples[5], events[tags[5].start..tags[5].end].to_vec());

    // A sliced-only root gives the same samples.
    let sliced = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sliced.path().join("sliced")).unwrap();
    for name in [FILE_LIST, CLASS_DEFS] {
        std::fs::copy(dir.path().join(name), sliced.path().join(name)).unwrap();
    }
    for r in ds.recordings(Variant::WHOLE) {
        for (c, s) in ds.recording_samples(&r).unwrap().iter().enumerate() {
            npy::write_events(
                &sliced
                    .path()
                    .join("sliced")
                    .join(format!("{}.npy", sample_name(&r, c))),
                s,
            )
            .unwrap();
        }
    }
    let ds2 = Dataset::open(sliced.path()).unwrap();
    assert!(ds2.is_sliced(rec));
    assert_eq!(ds2.recording_samples(rec).unwrap(), samples);
    assert_eq!(ds2.sample_events(rec, 18).unwrap(), samples[18]);
    assert_ne!(ds.fingerprint().unwrap(), ds2.fingerprint().unwrap());
}

#[test]
fn bad_requests_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), 2, 1);
    let ds = Dataset::open(dir.path()).unwrap();
    assert!(matches!(
        ds.sample_events("user99_dc", 0),
        Err(DataError::UnknownRecording { .. })
    ));
    assert!(matches!(
        ds.sample_events("user00_indoor", 19),
        Err(DataError::BadClass { class: 19 })
    ));
    assert_eq!(
        parse_sample_name("user00_indoor_07"),
        Some(("user00_indoor", 7))
    );
    assert_eq!(parse_sample_name("user00_indoor"), None);

    // A listed recording without its file.
    std::fs::remove_file(dir.path().join("recordings/user30_imse.aedat")).unwrap();
    let e = Dataset::open(dir.path()).unwrap_err();
    assert!(
        matches!(&e, DataError::Missing { path, .. } if path.ends_with("user30_imse.aedat")),
        "{e}"
    );
}

#[test]
fn tag_validation_catches_bad_rows_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), 1, 1);
    let ds = Dataset::open(dir.path()).unwrap();
    let tags_path = dir.path().join("tags/user00_indoor.csv");
    let good = std::fs::read_to_string(&tags_path).unwrap();
    let lines: Vec<&str> = good.lines().collect();

    // 18 rows.
    std::fs::write(&tags_path, lines[..19].join("\n")).unwrap();
    assert!(matches!(
        ds.recording_samples("user00_indoor"),
        Err(DataError::Tags(TagsError::RowCount { found: 18, .. }))
    ));
    // End index beyond the events.
    let mut big = lines.clone();
    big[19] = "19,999999990,999999999";
    std::fs::write(&tags_path, big.join("\n")).unwrap();
    assert!(matches!(
        ds.recording_samples("user00_indoor"),
        Err(DataError::Tags(TagsError::OutOfRange { line: 20, .. }))
    ));
    // Start not increasing.
    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    std::fs::write(&tags_path, swapped.join("\n")).unwrap();
    assert!(matches!(
        ds.recording_samples("user00_indoor"),
        Err(DataError::Tags(TagsError::NotIncreasing { line: 5, .. }))
    ));
    // Garbage.
    std::fs::write(&tags_path, "class,startTime_ev,endTime_ev\n1,abc,3\n").unwrap();
    assert!(matches!(
        ds.recording_samples("user00_indoor"),
        Err(DataError::Tags(TagsError::BadRow { line: 2, .. }))
    ));
    std::fs::write(&tags_path, "a,b,c\n").unwrap();
    assert!(matches!(
        ds.recording_samples("user00_indoor"),
        Err(DataError::Tags(TagsError::BadHeader { .. }))
    ));
}

#[test]
fn fingerprint_is_stable_and_sees_content_changes() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), 2, 5);
    let ds = Dataset::open(dir.path()).unwrap();
    let a = ds.fingerprint().unwrap();
    assert_eq!(a, ds.fingerprint().unwrap());
    assert_eq!(a.len(), 64);
    // Same size, different content.
    let p = dir.path().join("tags/user30_imse.csv");
    let mut t = std::fs::read(&p).unwrap();
    let i = t.iter().rposition(|&b| b == b'1').unwrap();
    t[i] = b'2';
    std::fs::write(&p, &t).unwrap();
    assert_ne!(a, ds.fingerprint().unwrap());
}

#[test]
fn synthesis_is_deterministic_for_a_seed() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    make(a.path(), 2, 11);
    make(b.path(), 2, 11);
    make(c.path(), 2, 12);
    let fp = |d: &Path| Dataset::open(d).unwrap().fingerprint().unwrap();
    assert_eq!(fp(a.path()), fp(b.path()));
    assert_ne!(fp(a.path()), fp(c.path()));
    // A recording does not depend on how many are written: 2 and 4 of 59
    // both pick position 29.
    let d = tempfile::tempdir().unwrap();
    make(d.path(), 4, 11);
    assert_eq!(
        std::fs::read(a.path().join("recordings/user30_imse.aedat")).unwrap(),
        std::fs::read(d.path().join("recordings/user30_imse.aedat")).unwrap()
    );
}

#[test]
fn a_sample_spanning_more_than_the_limit_is_refused_naming_it() {
    use spikecv_common::dataset::error::MAX_SAMPLE_SPAN_US;
    use spikecv_common::events::Event;
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), 1, 5);
    let ds = Dataset::open(dir.path()).unwrap();
    let name = ds.recordings(Variant::WHOLE)[0].clone();
    // A sliced sample whose last time stamp jumps past the limit: its `dt`
    // windows would size buffers past any memory.
    let path = ds.sliced_path(&name, 3);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let at_limit = [
        Event::new(5, 1, 1, true),
        Event::new(5 + MAX_SAMPLE_SPAN_US, 2, 2, false),
    ];
    npy::write_events(&path, &at_limit).unwrap();
    assert_eq!(ds.sample_events(&name, 3).unwrap(), at_limit.to_vec());
    let beyond = [
        Event::new(5, 1, 1, true),
        Event::new(6 + MAX_SAMPLE_SPAN_US, 2, 2, false),
    ];
    npy::write_events(&path, &beyond).unwrap();
    let err = ds.sample_events(&name, 3).unwrap_err();
    assert!(
        matches!(err, DataError::SampleTooLong { class: 3, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&name) && text.contains("the limit is 600 s"),
        "{text}"
    );
}

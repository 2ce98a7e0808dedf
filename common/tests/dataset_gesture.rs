//! DVS128 Gesture roots: the synthetic download opens, its samples are the
//! events its labels' time windows cut, and folds keep each person in one set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::dataset::dvs_gesture::{FLUORESCENT, FLUORESCENT_LED, LAB, LED, NATURAL};
use spikecv_common::dataset::sl_animals::REDUCED;
use std::collections::BTreeSet;

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::dvs_gesture::kind::DVS_GESTURE;
use spikecv_common::dataset::dvs_gesture::synth as gesture_synth;
use spikecv_common::dataset::dvs_gesture::{self, CLASS_NAMES};
use spikecv_common::dataset::kind::SampleCut;
use spikecv_common::dataset::sl_animals::kind::SL_ANIMALS;
use spikecv_common::dataset::synth::{SynthOptions, SynthSize};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::aedat;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::plan;

fn synth(dir: &std::path::Path) {
    let opts = SynthOptions {
        seed: 3,
        size: SynthSize::Tiny,
        recordings: None,
    };
    let summary = gesture_synth::generate(dir, &opts).unwrap();
    assert_eq!(summary.recordings.len(), 12);
    assert_eq!(summary.samples, 12 * 11);
}

#[test]
fn synthetic_download_opens_with_11_classes_and_6_people() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let ds = Dataset::open(dir.path()).unwrap();
    assert_eq!(ds.kind(), DVS_GESTURE);
    let d = ds.description();
    assert_eq!(d.classes(), 11);
    assert_eq!(d.class_names, CLASS_NAMES.to_vec());
    assert_eq!(d.cut, SampleCut::TimeWindows);
    assert_eq!(
        d.variants,
        [
            Variant::WHOLE,
            FLUORESCENT,
            FLUORESCENT_LED,
            LAB,
            LED,
            NATURAL
        ]
    );
    assert_eq!(
        d.people,
        ["user01", "user02", "user03", "user04", "user24", "user25"]
    );
    let recs = ds.recordings(Variant::WHOLE);
    assert_eq!(recs.len(), 12);
    // Training list first: users 1-4, then 24-25.
    assert!(recs[..8].iter().all(|r| r < &"user05".to_string()));
    // Opening the DvsGesture folder itself works too, as the same data set.
    let inner = Dataset::open(&dir.path().join(dvs_gesture::FOLDER)).unwrap();
    assert_eq!(inner.recordings(Variant::WHOLE), recs);
    assert_eq!(inner.fingerprint().unwrap(), ds.fingerprint().unwrap());
    // Same seed, same bytes.
    let again = tempfile::tempdir().unwrap();
    synth(again.path());
    let fp = Dataset::open(again.path()).unwrap().fingerprint().unwrap();
    assert_eq!(fp, ds.fingerprint().unwrap());
}

#[test]
fn samples_are_the_events_inside_each_label_window() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let ds = Dataset::open(dir.path()).unwrap();
    for rec in ds.recordings(Variant::WHOLE) {
        let folder = dir.path().join(dvs_gesture::FOLDER);
        // Recompute from the files: the CSV by hand, the events by the reader.
        let text = std::fs::read_to_string(folder.join(format!("{rec}_labels.csv"))).unwrap();
        let rows: Vec<(usize, i64, i64)> = text
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (
                    f[0].parse::<usize>().unwrap() - 1,
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        let events = aedat::read_file(&folder.join(format!("{rec}.aedat")))
            .unwrap()
            .events;
        let got = ds.labelled_samples(&rec).unwrap();
        assert_eq!(got.len(), rows.len());
        for ((class, sample), (c, lo, hi)) in got.iter().zip(&rows) {
            let expected: Vec<_> = events
                .iter()
                .filter(|e| *lo <= e.t && e.t < *hi)
                .copied()
                .collect();
            assert_eq!(class, c);
            assert!(!expected.is_empty());
            assert_eq!(sample, &expected, "{rec} class {c}");
        }
        assert_eq!(ds.sample_events(&rec, 4).unwrap(), got[4].1);
        let index = ds
            .recordings(Variant::WHOLE)
            .iter()
            .position(|r| *r == rec)
            .unwrap();
        let classes = ds.sample_classes(&rec).unwrap();
        assert_eq!(classes, gesture_synth::gesture_order(index));
        let mut sorted = classes.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..11).collect::<Vec<_>>(), "every class once");
    }
}

#[test]
fn folds_keep_every_person_in_one_set() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    for kind in ["train-val-test", "train-test"] {
        let text = format!(
            "[data]\nroot = \"{}\"\nkind = \"dvs-gesture\"\n[protocol]\nkind = \"{kind}\"\nfolds = 3\nseeds = [0, 7]\n",
            dir.path().display()
        );
        let config = ExperimentConfig::from_toml_str(&text).unwrap();
        assert_eq!(config.protocol.variants, [Variant::WHOLE]);
        let plan = plan::plan_from_root(&config, None).unwrap();
        assert_eq!(plan.jobs.len(), 2 * 3);
        let mut tested = BTreeSet::new();
        for job in plan.jobs.iter().filter(|j| j.seed == 0) {
            let people = |side: &[String]| -> BTreeSet<String> {
                side.iter()
                    .map(|r| dvs_gesture::person_of(r).to_owned())
                    .collect()
            };
            let (tr, va, te) = (
                people(&job.split.train),
                people(&job.split.val),
                people(&job.split.test),
            );
            assert!(tr.is_disjoint(&te) && tr.is_disjoint(&va) && va.is_disjoint(&te));
            let n = job.split.train.len() + job.split.val.len() + job.split.test.len();
            assert_eq!(n, 12, "every recording in one set");
            tested.extend(te);
        }
        assert_eq!(tested.len(), 6, "each person tested once over the folds");
    }
}

#[test]
fn config_kind_defaults_and_is_left_out_for_sl_animals() {
    let c = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n").unwrap();
    assert_eq!(c.data.kind, SL_ANIMALS);
    assert!(!c.to_toml_string().contains("kind = \"sl-animals\""));
    assert_eq!(c.protocol.variants, [Variant::WHOLE, REDUCED]);
    let g =
        ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\nkind = \"dvs-gesture\"\n").unwrap();
    assert!(g.to_toml_string().contains("kind = \"dvs-gesture\""));
    let err = ExperimentConfig::from_toml_str(
        "[data]\nroot = \"d\"\nkind = \"dvs-gesture\"\n[protocol]\nvariants = [\"reduced\"]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("protocol.variants"), "{err}");
}

#[test]
fn a_listed_trial_without_labels_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let labels = dir
        .path()
        .join(dvs_gesture::FOLDER)
        .join("user02_led_labels.csv");
    std::fs::remove_file(&labels).unwrap();
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("user02_led_labels.csv"), "{err}");
}

//! DVS128 Gesture samples in the worker: one per label row, labelled with the
//! row's class from the labels file (not its position: the synthetic
//! download plays its gestures in a rotated order), batches carry those
//! labels with the events of their own row, and a class past the network's
//! outputs is refused naming the sample.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::dvs_gesture::synth as gesture_synth;
use spikecv_common::dataset::synth::{SynthOptions, SynthSize};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, FrameSpec, bin};
use spikecv_worker::loader::{
    HostBatch, HostForm, LoadError, SampleSource, for_each_batch, source_samples,
};
use tch::Device;

fn gesture_root(dir: &std::path::Path) -> Dataset {
    let opts = SynthOptions {
        seed: 11,
        size: SynthSize::Tiny,
        recordings: Some(4),
    };
    gesture_synth::generate(dir, &opts).unwrap();
    Dataset::open(dir).unwrap()
}

/// Each row's class, read from the labels file by hand.
fn classes_by_hand(ds: &Dataset, recording: &str) -> Vec<usize> {
    let text = std::fs::read_to_string(ds.tags_path(recording)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .next()
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap()
                - 1
        })
        .collect()
}

#[test]
fn samples_take_their_class_from_the_labels_file() {
    let dir = tempfile::tempdir().unwrap();
    let ds = gesture_root(dir.path());
    let recordings = ds.recordings(Variant::WHOLE);
    let samples = source_samples(&ds, &recordings, 11).unwrap();
    let mut expected = Vec::new();
    for r in &recordings {
        for (row, class) in classes_by_hand(&ds, r).into_iter().enumerate() {
            expected.push((r.clone(), row, class));
        }
    }
    let got: Vec<(String, usize, usize)> = samples
        .iter()
        .map(|s| (s.recording.clone(), s.index, s.class))
        .collect();
    assert_eq!(got, expected);
    assert!(
        samples.iter().any(|s| s.index != s.class),
        "rows and classes differ somewhere, or this proves nothing"
    );

    // Batches: the labels are the classes, the inputs the rows' own events.
    let spec = FrameSpec::dvs128(30, 4, BinMode::Sum);
    let mut labels = Vec::new();
    let mut inputs: Vec<f32> = Vec::new();
    for_each_batch(
        &ds,
        &samples,
        &spec,
        7,
        2,
        HostForm::Floats,
        |b: HostBatch| {
            labels.extend(b.labels.iter().map(|&l| l as usize));
            let t = b.to_device(&spec, Device::Cpu).inputs.flatten(0, -1);
            inputs.extend(Vec::<f32>::try_from(&t).unwrap());
            Ok::<(), LoadError>(())
        },
    )
    .unwrap();
    let want: Vec<usize> = expected.iter().map(|e| e.2).collect();
    assert_eq!(labels, want);
    let per = inputs.len() / samples.len();
    for (i, s) in samples.iter().enumerate() {
        let events = ds.sample_events(&s.recording, s.index).unwrap();
        let frames = bin(&events, &spec, Crop::First);
        assert_eq!(&inputs[i * per..(i + 1) * per], &frames[..], "{}", s.name());
    }
}

#[test]
fn a_class_past_the_network_outputs_is_refused_naming_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let ds = gesture_root(dir.path());
    let recordings = ds.recordings(Variant::WHOLE);
    assert!(ds.sample_classes(&recordings[0]).unwrap().contains(&10));
    let err = source_samples(&ds, &recordings[..1], 10).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            LoadError::BadClass {
                class: 10,
                classes: 10,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(&recordings[0]) && text.contains("10 classes"),
        "{text}"
    );
    assert!(
        SampleSource::sample_classes(&ds, &recordings[0])
            .unwrap()
            .is_some()
    );
}

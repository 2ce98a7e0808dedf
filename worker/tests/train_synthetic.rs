//! Trains on a tiny synthetic data set for a few epochs on the CPU and checks
//! that the network learns (accuracy well above chance, 1/19), and that the
//! job writes the files DESIGN.md lists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_worker::loader::samples_of;
use spikecv_worker::model::Net;
use spikecv_worker::train::step::{PassSpec, evaluate};
use spikecv_worker::train::{NoObserver, run_job_on};
use spikecv_worker::weights;
use support::{Coarse, job, synthetic};
use tch::Device;

#[test]
fn learns_the_synthetic_gestures() {
    let data_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = synthetic(data_dir.path(), 5);
    let recs = data.recordings(spikecv_common::dataset::variant::Variant::WHOLE);
    let split = FoldSplit {
        train: recs[..4].to_vec(),
        val: Vec::new(),
        test: recs[4..].to_vec(),
    };
    let (spec, shape) = job(
        out.path().to_path_buf(),
        ProtocolKind::TrainTest,
        split.clone(),
        12,
        8,
    );
    let source = Coarse(&data);
    let result = run_job_on(&spec, &source, &shape, &mut NoObserver).unwrap();

    let chance = 1.0 / 19.0;
    let last = result.epochs.last().unwrap();
    assert_eq!(result.epochs.len(), 12);
    assert!(result.optimistic, "train-test must be flagged optimistic");
    assert!(
        last.train_loss < result.epochs[0].train_loss,
        "loss did not fall"
    );
    // Evaluate the final weights on the training people.
    let (_vs, net) = Net::seeded(shape.net, 0, Device::Cpu);
    weights::load(&net, &out.path().join("final.safetensors")).unwrap();
    let pass = PassSpec {
        frames: shape.test,
        batch: 16,
        workers: 2,
        device: Device::Cpu,
        classes: 19,
    };
    let train_eval = evaluate(&source, &samples_of(&split.train, 19), &pass, &net, false).unwrap();
    assert!(
        train_eval.accuracy > 6.0 * chance,
        "training accuracy {} is not well above chance",
        train_eval.accuracy
    );
    assert!(
        result.test_accuracy > 2.0 * chance,
        "test accuracy {} of unseen people is not above chance",
        result.test_accuracy
    );
    let confusion_total: u32 = result.confusion.iter().flatten().sum();
    assert_eq!(confusion_total, 19);
    for file in [
        "final.safetensors",
        "best.safetensors",
        "metrics.json",
        "config.toml",
        "checkpoint.safetensors",
        "final.json",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    let events = std::fs::read_dir(out.path().join("tensorboard"))
        .unwrap()
        .count();
    assert_eq!(events, 1);
    eprintln!(
        "train accuracy {:.3}, best test accuracy {:.3} (epoch {}), losses {:?}",
        train_eval.accuracy,
        result.test_accuracy,
        result.best_epoch,
        result
            .epochs
            .iter()
            .map(|e| e.train_loss)
            .collect::<Vec<_>>()
    );
}

//! A job stopped after any epoch and resumed from its checkpoint ends
//! bit-identical (weights, optimiser trajectory, metrics) to an uninterrupted
//! run, with shuffling and random crops on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_worker::train::{Control, Observer, TrainError, checkpoint_path, run_job_on};
use spikecv_worker::weights::read_tensors;
use support::{Coarse, job_with, synthetic};

/// Stops the job after `stop_after` epochs.
struct StopAt {
    stop_after: u32,
    checkpoints: u32,
}

impl Observer for StopAt {
    fn on_epoch(&mut self, m: &EpochMetrics) -> Control {
        if m.epoch == self.stop_after {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn on_checkpoint(&mut self, _path: &Path) {
        self.checkpoints += 1;
    }
}

fn same_metrics(a: &EpochMetrics, b: &EpochMetrics) -> bool {
    (
        a.epoch,
        a.train_loss,
        a.train_accuracy,
        a.val_loss,
        a.val_accuracy,
        a.test_loss,
        a.test_accuracy,
    ) == (
        b.epoch,
        b.train_loss,
        b.train_accuracy,
        b.val_loss,
        b.val_accuracy,
        b.test_loss,
        b.test_accuracy,
    )
}

fn assert_same_tensors(a: &Path, b: &Path) {
    let (ta, _) = read_tensors(a).unwrap();
    let (tb, _) = read_tensors(b).unwrap();
    assert_eq!(ta.len(), tb.len());
    for (name, t) in &ta {
        assert!(
            t.equal(&tb[name]),
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn resumed_job_is_bit_identical_to_an_uninterrupted_one() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = synthetic(data_dir.path(), 4);
    let recs = data.recordings(Variant::WHOLE);
    let split = FoldSplit {
        train: recs[..2].to_vec(),
        val: recs[2..3].to_vec(),
        test: recs[3..].to_vec(),
    };
    let source = Coarse(&data);
    let extra = "shuffle = true\nrandom_crop = true\ncheckpoint_every = 1\nlr_decay_every = 2\nlr_decay = 0.5";
    let make = |dir: &Path| {
        job_with(
            dir.to_path_buf(),
            ProtocolKind::TrainValTest,
            split.clone(),
            4,
            4,
            8,
            extra,
        )
    };

    let whole = tempfile::tempdir().unwrap();
    let (spec, shape) = make(whole.path());
    let expected = run_job_on(
        &spec,
        &source,
        &shape,
        &mut StopAt {
            stop_after: 0,
            checkpoints: 0,
        },
    )
    .unwrap();

    let parts = tempfile::tempdir().unwrap();
    let (spec, shape) = make(parts.path());
    for stop in [1, 3] {
        let mut observer = StopAt {
            stop_after: stop,
            checkpoints: 0,
        };
        match run_job_on(&spec, &source, &shape, &mut observer) {
            Err(TrainError::Stopped { epoch }) => assert_eq!(epoch, stop),
            other => panic!("expected a stop after epoch {stop}, got {other:?}"),
        }
        assert!(checkpoint_path(parts.path()).is_file());
        assert!(observer.checkpoints >= 1);
    }
    let resumed = run_job_on(
        &spec,
        &source,
        &shape,
        &mut StopAt {
            stop_after: 0,
            checkpoints: 0,
        },
    )
    .unwrap();

    assert_eq!(resumed.epochs.len(), expected.epochs.len());
    for (a, b) in resumed.epochs.iter().zip(&expected.epochs) {
        assert!(same_metrics(a, b), "epoch metrics differ:\n{a:?}\n{b:?}");
    }
    assert_eq!(
        (
            resumed.best_epoch,
            resumed.test_accuracy,
            resumed.test_loss,
            resumed.val_loss
        ),
        (
            expected.best_epoch,
            expected.test_accuracy,
            expected.test_loss,
            expected.val_loss
        )
    );
    assert_eq!(resumed.confusion, expected.confusion);
    for file in [
        "final.safetensors",
        "best.safetensors",
        "checkpoint.safetensors",
    ] {
        assert_same_tensors(&whole.path().join(file), &parts.path().join(file));
    }
}

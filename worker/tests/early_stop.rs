//! Early stopping (`training.patience`) on a tiny synthetic set on the CPU: a
//! job stops exactly `patience` epochs after its first best validation
//! accuracy, not before and not later, with its result and files written as
//! for a full run; run again on the same folder (resumed from the checkpoint
//! written at the stop), it trains nothing more and reports the same epochs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_worker::train::{NoObserver, run_job_on};
use support::{Coarse, job_with, synthetic};

const EPOCHS: u32 = 40;
const PATIENCE: u32 = 2;

/// The first epoch that has seen `PATIENCE` epochs without a strictly better
/// validation accuracy, computed here independently of the worker.
fn expected_stop(epochs: &[EpochMetrics]) -> Option<u32> {
    let mut best = f64::NEG_INFINITY;
    let mut best_at = 0;
    for m in epochs {
        let a = m.val_accuracy.unwrap();
        if a > best {
            best = a;
            best_at = m.epoch;
        }
        if m.epoch - best_at >= PATIENCE {
            return Some(m.epoch);
        }
    }
    None
}

#[test]
fn a_job_stops_patience_epochs_after_its_best_validation_accuracy() {
    let data_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = synthetic(data_dir.path(), 5);
    let recs = data.recordings(spikecv_common::dataset::variant::Variant::WHOLE);
    let split = FoldSplit {
        train: recs[..3].to_vec(),
        val: recs[3..4].to_vec(),
        test: recs[4..].to_vec(),
    };
    let (spec, shape) = job_with(
        out.path().to_path_buf(),
        ProtocolKind::TrainValTest,
        split,
        EPOCHS,
        4,
        4,
        &format!("patience = {PATIENCE}"),
    );
    let source = Coarse(&data);
    let result = run_job_on(&spec, &source, &shape, &mut NoObserver).unwrap();
    let trained = result.epochs.len() as u32;
    assert!(
        trained < EPOCHS,
        "patience {PATIENCE} never ran out in {EPOCHS} epochs"
    );
    let numbers: Vec<u32> = result.epochs.iter().map(|m| m.epoch).collect();
    assert_eq!(numbers, (1..=trained).collect::<Vec<_>>());
    assert_eq!(expected_stop(&result.epochs), Some(trained));
    assert!(result.best_epoch <= trained);
    assert!(out.path().join("final.safetensors").is_file());
    assert!(out.path().join("metrics.json").is_file());

    // Resumed from the checkpoint written at the stop: nothing more trains.
    let again = run_job_on(&spec, &source, &shape, &mut NoObserver).unwrap();
    assert_eq!(again.epochs, result.epochs);
    assert_eq!(again.best_epoch, result.best_epoch);
    assert_eq!(again.test_accuracy, result.test_accuracy);
}

//! A job whose experiment has `[network]`: it trains the block list's
//! network (weights named `blocks.<i>.*`, the block list in the weights
//! file), and stopped after an epoch and resumed from its checkpoint it ends
//! bit-identical to an uninterrupted run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_worker::train::{Control, FINAL_WEIGHTS, Observer, TrainError, run_job_on};
use spikecv_worker::weights::{read_tensors, stored_network};
use support::{Coarse, job_with, synthetic};

/// Stops the job after `stop_after` epochs (0: never).
struct StopAt(u32);

impl Observer for StopAt {
    fn on_epoch(&mut self, m: &EpochMetrics) -> Control {
        if self.0 != 0 && m.epoch >= self.0 {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn on_checkpoint(&mut self, _path: &Path) {}
}

/// `[training]` lines, then the network: valid on DVS128 (checked when the
/// experiment loads) and on the tests' 16×16 grid.
const EXTRA: &str = "shuffle = true\ncheckpoint_every = 1\n\
[network]\nblocks = [\n\
  { conv = 4, kernel = 3, padding = 1 },\n\
  { pool = \"max\", size = 2 },\n\
  { conv = 6, kernel = 3, stride = 2, lif = false },\n\
  { pool = \"avg\", size = 2 },\n\
  { flatten = true },\n\
  { linear = 24, tau = 0.5 },\n\
  { linear = 19 },\n\
]\n";

#[test]
fn a_network_job_trains_and_resumes_bit_identically() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = synthetic(data_dir.path(), 4);
    let recs = data.recordings(Variant::WHOLE);
    let split = FoldSplit {
        train: recs[..2].to_vec(),
        val: recs[2..3].to_vec(),
        test: recs[3..].to_vec(),
    };
    let source = Coarse(&data);
    let make = |dir: &Path| {
        job_with(
            dir.to_path_buf(),
            ProtocolKind::TrainValTest,
            split.clone(),
            3,
            4,
            4,
            EXTRA,
        )
    };
    let whole = tempfile::tempdir().unwrap();
    let (spec, shape) = make(whole.path());
    assert!(spec.config.network.is_some());
    let expected = run_job_on(&spec, &source, &shape, &mut StopAt(0)).unwrap();

    let parts = tempfile::tempdir().unwrap();
    let (spec, shape) = make(parts.path());
    match run_job_on(&spec, &source, &shape, &mut StopAt(1)) {
        Err(TrainError::Stopped { epoch }) => assert_eq!(epoch, 1),
        other => panic!("expected a stop after epoch 1, got {other:?}"),
    }
    let resumed = run_job_on(&spec, &source, &shape, &mut StopAt(0)).unwrap();
    assert_eq!(resumed.epochs.len(), expected.epochs.len());
    assert_eq!(resumed.test_accuracy, expected.test_accuracy);
    assert_eq!(resumed.test_loss, expected.test_loss);

    let (a, _) = read_tensors(&whole.path().join(FINAL_WEIGHTS)).unwrap();
    let (b, _) = read_tensors(&parts.path().join(FINAL_WEIGHTS)).unwrap();
    let mut names: Vec<&String> = a.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "blocks.0.bias",
            "blocks.0.weight",
            "blocks.2.bias",
            "blocks.2.weight",
            "blocks.5.bias",
            "blocks.5.weight",
            "blocks.6.bias",
            "blocks.6.weight"
        ]
    );
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resuming");
    }
    let stored = stored_network(&whole.path().join(FINAL_WEIGHTS)).unwrap();
    assert_eq!(stored.as_ref(), spec.config.network.as_ref());
}

//! Shared pieces of the training tests: a tiny synthetic data set from
//! `common::synth`, seen through a coarse 16×16 grid so the network is small
//! enough to train on two CPU cores in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use spikecv_common::config::{BinMode, ExperimentConfig, ProtocolKind, Variant};
use spikecv_common::cv::FoldSplit;
use spikecv_common::dataset::{DataError, Dataset};
use spikecv_common::events::Event;
use spikecv_common::frames::FrameSpec;
use spikecv_common::synth::{SynthOptions, SynthSize, generate};
use spikecv_worker::devices::DeviceSpec;
use spikecv_worker::loader::SampleSource;
use spikecv_worker::model::NetConfig;
use spikecv_worker::train::{JobShape, JobSpec, net_config};

/// Side of the coarse grid.
pub const GRID: usize = 16;

/// A data set whose events are mapped onto a `GRID × GRID` sensor.
pub struct Coarse<'a>(pub &'a Dataset);

impl SampleSource for Coarse<'_> {
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        let factor = (128 / GRID) as u16;
        let samples = self.0.recording_samples(recording)?;
        Ok(samples
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .map(|e| Event::new(e.t, e.x / factor, e.y / factor, e.p))
                    .collect()
            })
            .collect())
    }
}

/// Generates `recordings` tiny synthetic recordings under `dir`.
pub fn synthetic(dir: &Path, recordings: usize) -> Dataset {
    generate(
        dir,
        &SynthOptions {
            seed: 11,
            size: SynthSize::Tiny,
            recordings: Some(recordings),
        },
    )
    .unwrap();
    Dataset::open(dir).unwrap()
}

/// A job on the coarse data: `steps` windows of 30 ms.
pub fn job(
    out: PathBuf,
    kind: ProtocolKind,
    split: FoldSplit,
    epochs: u32,
    steps: u32,
) -> (JobSpec, JobShape) {
    job_with(out, kind, split, epochs, steps, steps, "")
}

/// Like [`job`], with test steps and extra `[training]` lines.
pub fn job_with(
    out: PathBuf,
    kind: ProtocolKind,
    split: FoldSplit,
    epochs: u32,
    steps: u32,
    test_steps: u32,
    extra_training: &str,
) -> (JobSpec, JobShape) {
    let text = format!(
        "[data]\nroot = \"unused\"\n[protocol]\nkind = \"{}\"\n[simulation]\nsteps = {steps}\n\
         [training]\nbatch = 8\ntest_batch = 16\nepochs = {epochs}\ntest_steps = {test_steps}\n{extra_training}\n",
        kind.as_str()
    );
    let config = ExperimentConfig::from_toml_str(&text).unwrap();
    let frames = FrameSpec {
        dt_ms: 30,
        steps: steps as usize,
        mode: BinMode::Or,
        width: GRID,
        height: GRID,
        downscale: 1,
    };
    let net = NetConfig {
        width: GRID as i64,
        height: GRID as i64,
        ..net_config(&config, 19)
    };
    let spec = JobSpec {
        config,
        variant: Variant::Whole,
        seed: 3,
        fold: 0,
        split,
        device: DeviceSpec::Cpu,
        out_dir: out,
        init: None,
    };
    let test = FrameSpec {
        steps: test_steps as usize,
        ..frames
    };
    (
        spec,
        JobShape {
            net,
            train: frames,
            test,
        },
    )
}

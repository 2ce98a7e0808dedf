//! Shared pieces of the training tests: a tiny synthetic data set from
//! `common::synth`, seen through a coarse 16×16 grid so the network is small
//! enough to train on two CPU cores in seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::synth::{SynthOptions, SynthSize, generate};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::Event;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::FrameSpec;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_worker::devices::DeviceSpec;
use spikecv_worker::lif::fused::LifKernels;
use spikecv_worker::loader::{SampleRef, SampleSource};
use spikecv_worker::model::NetConfig;
use spikecv_worker::train::{JobShape, JobSpec, net_config};
use tch::Tensor;

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

/// A spec of 30 ms windows on a `grid × grid` sensor.
pub fn frame_spec(mode: BinMode, steps: usize, grid: usize) -> FrameSpec {
    FrameSpec {
        dt_ms: 30,
        steps,
        mode,
        width: grid,
        height: grid,
        downscale: 1,
    }
}

/// `samples`, each with a random crop drawn from a generator seeded by `seed`.
pub fn with_draws(samples: &[SampleRef], seed: u64) -> Vec<SampleRef> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    samples
        .iter()
        .map(|s| SampleRef {
            crop_draw: Some(rng.next_u64()),
            ..s.clone()
        })
        .collect()
}

/// A float tensor's values as bit patterns (signed zeros and NaNs count).
pub fn f32_bits(t: &Tensor) -> Vec<u32> {
    let t = t.contiguous();
    let n = t.numel();
    let mut values = vec![0f32; n];
    t.copy_data(&mut values, n);
    values.iter().map(|v| v.to_bits()).collect()
}

/// Samples given directly: one recording of them.
pub struct Fixed(pub Vec<Vec<Event>>);

impl SampleSource for Fixed {
    fn recording_samples(&self, _recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        Ok(self.0.clone())
    }
}

/// `n` events on one pixel in the first millisecond, then a tail so the
/// sample has several windows, and some spread events.
pub fn busy_sample(n: usize) -> Vec<Event> {
    let mut ev: Vec<Event> = (0..n)
        .map(|i| Event::new(i as i64 / 1000, 3, 4, true))
        .collect();
    ev.extend((0..200).map(|i| {
        Event::new(
            1_000 + i * 1_000,
            (i % 8) as u16,
            (i % 5) as u16,
            i % 3 == 0,
        )
    }));
    ev
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
        variant: Variant::WHOLE,
        seed: 3,
        fold: 0,
        split,
        device: DeviceSpec::Cpu,
        out_dir: out,
        init: None,
        lif_kernels: LifKernels::Auto,
        data_fingerprint: String::new(),
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

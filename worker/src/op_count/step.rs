//! The operations one training step issues on the device code path, counted on
//! the CPU: [`train_batch`] as `train_epoch` runs it on a batch gathered from
//! a frame cache whose rows are a tensor (as on CUDA), with the fused LIF
//! kernels' C++ form standing in for the CUDA one. Counted: the batch's
//! gather from the cache and its input made from the compact rows, the labels'
//! upload, the one-hot target, the forward and backward passes, the spike
//! tally, the optimiser, and the epoch's sums. The host-to-device copies a GPU
//! run issues (the batch indices, the bit masks, the labels) are no operation
//! on the CPU; they are counted apart ([`StepOps::uploads`]) and added to the
//! total. The second step is counted (the first fills Adam's state).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikecv_common::dataset::error::DataError;
use spikecv_common::events::Event;
use spikecv_common::events::frames::{BinMode, FrameSpec};
use spikecv_common::experiment::sections::OptimizerKind;
use tch::{Device, Tensor};

use super::{AlreadyCounting, count_ops};
use crate::cache::{self, CacheError, CacheNeed, FrameCache, FrameSettings, Placement};
use crate::lif::fused::LifKernels;
use crate::loader::{BatchData, HostBatch, LoadError, SampleRef, SampleSource};
use crate::model::{Net, NetConfig};
use crate::optim::Optimizer;
use crate::train::TrainError;
use crate::train::step::{EpochSums, PassSpec, train_batch};
use crate::upload::uploads_asked;

/// The training step to count: the reference network on `size × size`
/// DVS128 frames (bin mode `OR`, dt 30 ms), batch `batch`, `steps` time steps,
/// Adam at 1e-3.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    /// Samples per batch.
    pub batch: usize,
    /// Time steps `T`.
    pub steps: usize,
    /// Frame size (128 for DVS128; a divisor of 128).
    pub size: usize,
    /// Which kernels run the LIF layers.
    pub kernels: LifKernels,
}

impl Default for StepSettings {
    /// The reference settings (batch 8, T = 50, 128 × 128) with the fused
    /// kernels.
    fn default() -> Self {
        Self {
            batch: 8,
            steps: 50,
            size: 128,
            kernels: LifKernels::Fused,
        }
    }
}

/// What one counted training step issued.
#[derive(Debug, Clone)]
pub struct StepOps {
    /// Operations as counted on the CPU, `(name, count)` by name.
    pub ops: Vec<(String, u64)>,
    /// Host-to-device copies the step asked for (operations on a GPU only).
    pub uploads: u64,
}

impl StepOps {
    /// Device operations per step: the counted operations and the uploads.
    pub fn total(&self) -> u64 {
        self.ops.iter().map(|(_, n)| n).sum::<u64>() + self.uploads
    }

    /// Fused LIF kernel calls among the operations.
    pub fn fused_kernel_calls(&self) -> u64 {
        self.ops
            .iter()
            .filter(|(name, _)| name.starts_with("spikecv::"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Why a step could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum StepCountError {
    /// Another count was running.
    #[error(transparent)]
    AlreadyCounting(#[from] AlreadyCounting),
    /// The frame cache could not be built.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A batch could not be gathered.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The step failed.
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// `samples` random samples of one recording, each with events over a little
/// more than `steps` windows of 30 ms on a `size × size` sensor.
struct RandomSamples {
    samples: Vec<Vec<Event>>,
}

impl RandomSamples {
    fn new(samples: usize, steps: usize, size: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let span_us = (steps as i64 + 1) * 30_000;
        let side = u16::try_from(size.clamp(1, 128)).unwrap_or(128);
        let samples = (0..samples)
            .map(|_| {
                let mut times: Vec<i64> =
                    (0..4_000).map(|_| rng.random_range(0..span_us)).collect();
                times.sort_unstable();
                times
                    .into_iter()
                    .map(|t| Event {
                        t,
                        x: rng.random_range(0..side),
                        y: rng.random_range(0..side),
                        p: rng.random_bool(0.5),
                    })
                    .collect()
            })
            .collect();
        Self { samples }
    }
}

impl SampleSource for RandomSamples {
    fn recording_samples(&self, _recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        Ok(self.samples.clone())
    }
}

/// Counts the operations of one training step (see the module docs).
pub fn training_step_ops(settings: &StepSettings) -> Result<StepOps, StepCountError> {
    let downscale = (128 / settings.size.clamp(1, 128)).max(1);
    let frames = FrameSpec::dvs128_downscaled(30, settings.steps, BinMode::Or, downscale);
    let source = RandomSamples::new(settings.batch, settings.steps, 128);
    let need = CacheNeed {
        settings: FrameSettings::of(&frames),
        recordings: vec!["r".to_owned()],
        horizon: Some(settings.steps),
    };
    let cache = cache::build_with(&source, &need, Device::Cpu, u64::MAX, Placement::Tensor)?;
    let samples: Vec<SampleRef> = (0..settings.batch)
        .map(|i| SampleRef {
            recording: "r".to_owned(),
            index: i,
            class: i % 19,
            crop_draw: None,
        })
        .collect();
    let config = NetConfig {
        width: frames.width as i64,
        height: frames.height as i64,
        ..NetConfig::default()
    };
    let (_vs, mut net) = Net::seeded(config, 0, Device::Cpu);
    net.set_lif_kernels(settings.kernels);
    let pass = PassSpec {
        frames,
        batch: settings.batch,
        workers: 0,
        device: Device::Cpu,
        classes: config.classes as usize,
    };
    let handles = net.parameters();
    let params: Vec<&Tensor> = handles.iter().collect();
    let mut optimizer = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, &params);
    let mut sums = EpochSums::new(&net);
    let mut step = || -> Result<(), StepCountError> {
        let host = gathered(&cache, &samples, &frames)?;
        train_batch(&host, &pass, &net, &mut optimizer, &params, &mut sums)?;
        Ok(())
    };
    step()?;
    let before = uploads_asked();
    let (result, ops) = count_ops(&mut step)?;
    result?;
    Ok(StepOps {
        ops,
        uploads: uploads_asked().saturating_sub(before),
    })
}

/// A batch of `samples` out of `cache`, as the loader hands it over.
fn gathered(
    cache: &FrameCache,
    samples: &[SampleRef],
    frames: &FrameSpec,
) -> Result<HostBatch, LoadError> {
    let batch = cache.gather(samples, frames)?;
    Ok(HostBatch {
        data: BatchData::Cached(batch),
        labels: samples.iter().map(|s| s.class as i64).collect(),
        first: 0,
        len: samples.len(),
    })
}

//! One training epoch and one evaluation pass over a list of samples.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use spikecv_common::events::frames::FrameSpec;
use tch::{Device, Kind, Reduction, Tensor};

use crate::loader::{HostBatch, HostForm, SampleRef, SampleSource, for_each_batch};
use crate::model::{Net, SpikeTally};
use crate::optim::Optimizer;
use crate::train::metrics::{Confusion, predict};
use crate::train::{Observer, TrainError};

/// What one pass needs besides the samples.
#[derive(Debug, Clone, Copy)]
pub struct PassSpec {
    /// How to bin events.
    pub frames: FrameSpec,
    /// Samples per batch.
    pub batch: usize,
    /// Prefetch threads.
    pub workers: usize,
    /// Where the network lives.
    pub device: Device,
    /// Output classes.
    pub classes: usize,
}

/// Training statistics of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainStats {
    /// Mean of the batches' MSE losses.
    pub loss: f64,
    /// Fraction of training samples classified right (during training).
    pub accuracy: f64,
    /// Samples seen.
    pub samples: usize,
    /// Wall time of the pass.
    pub seconds: f64,
    /// Each LIF layer's mean spikes per neuron per time step over the
    /// epoch's batches, with its name, in network order (empty when no batch
    /// ran).
    pub firing_rates: Vec<(String, f64)>,
}

/// Result of an evaluation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Sum of squared errors per sample, averaged over samples (the
    /// reference's `mse_loss(reduction='sum') / len(dataset)`).
    pub loss: f64,
    /// Fraction classified right.
    pub accuracy: f64,
    /// `[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
    /// Each sample's firing rates, when asked for.
    pub rates: Option<Vec<Vec<f32>>>,
    /// Each LIF layer's mean spikes per neuron per time step over the pass,
    /// with its name, in network order (empty when no sample was evaluated).
    pub firing_rates: Vec<(String, f64)>,
}

/// Runs `f`, turning a libtorch panic (tch's infallible calls panic on errors)
/// into a typed error; allocation failures become [`TrainError::OutOfMemory`].
pub fn guarded<T>(
    device: Device,
    what: &'static str,
    f: impl FnOnce() -> T,
) -> Result<T, TrainError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "unknown libtorch failure".to_owned());
        torch_failure(device, what, &message)
    })
}

/// libtorch's `message` from a failure while `what` ran on `device`, as a
/// [`TrainError`]: an allocation failure is [`TrainError::OutOfMemory`].
pub fn torch_failure(device: Device, what: &'static str, message: &str) -> TrainError {
    let first_line = message.lines().next().unwrap_or_default().to_owned();
    if message.contains("out of memory") || message.contains("can't allocate memory") {
        TrainError::OutOfMemory {
            device: format!("{device:?}"),
            cuda: device.is_cuda(),
            message: first_line,
        }
    } else {
        TrainError::Torch {
            during: what,
            message: first_line,
        }
    }
}

fn one_hot(labels: &Tensor, classes: usize) -> Tensor {
    labels.onehot(classes as i64).to_kind(Kind::Float)
}

fn host_rates(rates: &Tensor) -> Vec<Vec<f32>> {
    let rates = rates
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let size = rates.size();
    let (n, c) = (size[0] as usize, size[1] as usize);
    let mut flat = vec![0f32; n * c];
    rates.copy_data(&mut flat, n * c);
    flat.chunks(c).map(<[f32]>::to_vec).collect()
}

/// Sums kept on the device over a pass, read back once at its end (reading
/// a value per batch would make the host wait for the device every batch).
#[derive(Debug)]
struct DeviceSum(Option<Tensor>);

impl DeviceSum {
    fn add(&mut self, value: Tensor) {
        match &mut self.0 {
            Some(sum) => {
                let _ = sum.g_add_(&value);
            }
            // A copy: the first value becomes the accumulator.
            None => self.0 = Some(value.copy()),
        }
    }

    fn read(&self) -> f64 {
        self.0.as_ref().map_or(0.0, |s| s.double_value(&[]))
    }
}

/// What a training epoch keeps on the device until its end: the batches'
/// loss sum, the count of right answers and every LIF layer's spike count
/// ([`SpikeTally`]).
#[derive(Debug)]
pub struct EpochSums {
    loss: DeviceSum,
    correct: DeviceSum,
    tally: SpikeTally,
}

impl EpochSums {
    /// Empty sums for `net`'s training epoch.
    pub fn new(net: &Net) -> Self {
        Self {
            loss: DeviceSum(None),
            correct: DeviceSum(None),
            tally: SpikeTally::new(net),
        }
    }
}

/// One training step on `host` as [`train_epoch`] runs it: the batch to the
/// device and its input made there, the one-hot target, the gradients set to
/// none, forward and backward ([`Net::forward_backward_tallied`], counting the
/// spikes), the optimiser's step, and the batch's loss and right answers added
/// to `sums`, all without waiting for the device.
pub fn train_batch(
    host: &HostBatch,
    pass: &PassSpec,
    net: &Net,
    optimizer: &mut Optimizer,
    params: &[&Tensor],
    sums: &mut EpochSums,
) -> Result<(), TrainError> {
    guarded(pass.device, "a training step", || {
        let batch = host.to_device(&pass.frames, pass.device);
        let target = one_hot(&batch.labels, pass.classes);
        Optimizer::zero_grad(params);
        let (loss, output) = net.forward_backward_tallied(
            &batch.inputs,
            &|rates| rates.mse_loss(&target, Reduction::Mean),
            Some(&mut sums.tally),
        );
        optimizer.step(params);
        sums.loss.add(loss.to_kind(Kind::Double));
        sums.correct.add(right_answers(&output, &batch.labels));
    })
}

/// Trains one epoch over `samples` in order: per batch, [`train_batch`]
/// (forward, MSE against the one-hot target, backward, optimiser step). The
/// loss, the count of right answers and every LIF layer's spike count stay on
/// the device until the end ([`EpochSums`]).
pub fn train_epoch<S: SampleSource + ?Sized>(
    source: &S,
    samples: &[SampleRef],
    pass: &PassSpec,
    net: &Net,
    optimizer: &mut Optimizer,
    observer: &mut dyn Observer,
) -> Result<TrainStats, TrainError> {
    let start = Instant::now();
    let params: Vec<Tensor> = net.parameters();
    let params: Vec<&Tensor> = params.iter().collect();
    let mut sums = EpochSums::new(net);
    let (mut batches, mut seen) = (0usize, 0usize);
    let total = samples.len();
    for_each_batch(
        source,
        samples,
        &pass.frames,
        pass.batch,
        pass.workers,
        HostForm::for_device(pass.device),
        |host: HostBatch| {
            train_batch(&host, pass, net, optimizer, &params, &mut sums)?;
            batches += 1;
            seen += host.len;
            observer.on_batch(seen, total);
            Ok::<(), TrainError>(())
        },
    )?;
    let (loss_sum, correct, firing_rates) =
        guarded(pass.device, "reading the epoch's sums", || {
            (sums.loss.read(), sums.correct.read(), sums.tally.rates())
        })?;
    Ok(TrainStats {
        loss: if batches == 0 {
            0.0
        } else {
            loss_sum / batches as f64
        },
        accuracy: if seen == 0 {
            0.0
        } else {
            correct / seen as f64
        },
        samples: seen,
        seconds: start.elapsed().as_secs_f64(),
        firing_rates: firing_rates.unwrap_or_default(),
    })
}

/// How many rows of `rates` predict their label, on the device (`argmax` takes
/// the first of tied maxima, as [`predict`] does).
fn right_answers(rates: &Tensor, labels: &Tensor) -> Tensor {
    rates
        .argmax(1, false)
        .eq_tensor(labels)
        .sum(Kind::Int64)
        .to_kind(Kind::Double)
}

/// Evaluates the network (no gradients, Heaviside spikes) on `samples`,
/// counting every LIF layer's spikes on the device.
pub fn evaluate<S: SampleSource + ?Sized>(
    source: &S,
    samples: &[SampleRef],
    pass: &PassSpec,
    net: &Net,
    keep_rates: bool,
) -> Result<Evaluation, TrainError> {
    let mut sse = DeviceSum(None);
    let mut tally = SpikeTally::new(net);
    let mut device_rates = Vec::new();
    let mut labels = Vec::with_capacity(samples.len());
    for_each_batch(
        source,
        samples,
        &pass.frames,
        pass.batch,
        pass.workers,
        HostForm::for_device(pass.device),
        |host: HostBatch| {
            let (batch_sse, rates) = guarded(pass.device, "an evaluation step", || {
                tch::no_grad(|| {
                    let batch = host.to_device(&pass.frames, pass.device);
                    let output = net.forward_fast_tallied(&batch.inputs, &mut tally);
                    let sse =
                        output.mse_loss(&one_hot(&batch.labels, pass.classes), Reduction::Sum);
                    (sse.to_kind(Kind::Double), output)
                })
            })?;
            sse.add(batch_sse);
            device_rates.push(rates);
            labels.extend_from_slice(&host.labels);
            Ok::<(), TrainError>(())
        },
    )?;
    let (sse, rates, firing_rates) =
        guarded(pass.device, "reading the evaluation's results", || {
            let rates = if device_rates.is_empty() {
                Vec::new()
            } else {
                host_rates(&Tensor::cat(&device_rates, 0))
            };
            (sse.read(), rates, tally.rates())
        })?;
    let mut confusion = Confusion::new(pass.classes);
    for (r, &l) in rates.iter().zip(&labels) {
        confusion.add(l as usize, predict(r));
    }
    let n = samples.len().max(1) as f64;
    Ok(Evaluation {
        loss: sse / n,
        accuracy: confusion.accuracy(),
        confusion: confusion.into_rows(),
        rates: keep_rates.then_some(rates),
        firing_rates: firing_rates.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_answers_break_ties_like_predict() {
        let rows = [[0.5f32, 0.5, 0.0], [0.0, 0.2, 0.2], [0.1, 0.0, 0.3]];
        let rates = Tensor::from_slice(rows.as_flattened()).view([3, 3]);
        let labels = Tensor::from_slice(&[0i64, 2, 2]);
        let on_device = right_answers(&rates, &labels).double_value(&[]);
        let on_host = rows
            .iter()
            .zip([0usize, 2, 2])
            .filter(|(r, l)| predict(&r[..]) == *l)
            .count();
        assert_eq!(on_host, 2);
        assert_eq!(on_device, on_host as f64);
    }

    /// libtorch's own messages: the CUDA caching allocator's and the CPU
    /// allocator's. Out of memory on a GPU gets another attempt, on the host
    /// it does not; other failures stay libtorch failures.
    #[test]
    fn out_of_memory_is_transient_on_a_gpu_only() {
        let cuda = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 139.80 GiB of which 1.25 GiB is free.\nmore";
        let e = torch_failure(Device::Cuda(0), "a training step", cuda);
        assert!(
            matches!(&e, TrainError::OutOfMemory { cuda: true, message, .. } if !message.contains('\n')),
            "{e:?}"
        );
        assert!(!e.is_deterministic());
        let host = "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 86973087744 bytes.";
        let e = torch_failure(Device::Cpu, "a training step", host);
        assert!(
            matches!(e, TrainError::OutOfMemory { cuda: false, .. }),
            "{e:?}"
        );
        assert!(e.is_deterministic());
        let other = torch_failure(
            Device::Cuda(0),
            "a training step",
            "CUDA error: an illegal memory access was encountered",
        );
        assert!(
            matches!(
                other,
                TrainError::Torch {
                    during: "a training step",
                    ..
                }
            ),
            "{other:?}"
        );
        let caught = guarded::<()>(Device::Cuda(1), "an evaluation step", || panic!("{cuda}"));
        assert!(matches!(
            caught,
            Err(TrainError::OutOfMemory { cuda: true, .. })
        ));
    }

    #[test]
    fn device_sums_add_in_order_and_read_once() {
        let mut sum = DeviceSum(None);
        assert_eq!(sum.read(), 0.0);
        for v in [0.25f64, 1.5, 3.0] {
            sum.add(Tensor::from(v));
        }
        assert_eq!(sum.read(), 4.75);
    }
}

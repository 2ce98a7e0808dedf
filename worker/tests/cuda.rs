//! GPU check (feature `cuda-tests`): a few Adam steps on cuda:0 from the same
//! initialisation and input as on the CPU agree within tolerance, in double
//! precision so that no spike flips on rounding differences; batches uploaded
//! as counts from pinned memory give the float batches' input.
#![cfg(feature = "cuda-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::config::OptimizerKind;
use spikecv_worker::model::{Net, NetConfig, with_seed};
use spikecv_worker::optim::Optimizer;
use tch::{Device, Kind, Reduction, Tensor, nn};

fn run(device: Device) -> (Vec<f64>, Vec<Tensor>) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let cfg = NetConfig {
        width: 10,
        height: 12,
        ..NetConfig::default()
    };
    let net = with_seed(0, || Net::new(&vs.root(), cfg));
    vs.double();
    vs.set_device(device);
    let x = with_seed(1, || {
        (Tensor::rand([4, 2, 10, 12, 6], (Kind::Double, Device::Cpu)) * 4.0).floor()
    })
    .to_device(device);
    let target = Tensor::from_slice(&[0i64, 5, 11, 18])
        .onehot(19)
        .to_kind(Kind::Double)
        .to_device(device);
    let params: Vec<Tensor> = net.parameters();
    let refs: Vec<&Tensor> = params.iter().collect();
    let mut opt = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.9, &refs);
    let mut losses = Vec::new();
    for _ in 0..4 {
        let loss = net.forward_t(&x, true).mse_loss(&target, Reduction::Mean);
        Optimizer::zero_grad(&refs);
        loss.backward();
        opt.step(&refs);
        losses.push(loss.double_value(&[]));
    }
    (
        losses,
        params.iter().map(|p| p.to_device(Device::Cpu)).collect(),
    )
}

#[test]
fn gpu_steps_match_cpu() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let (cpu_losses, cpu_params) = run(Device::Cpu);
    let (gpu_losses, gpu_params) = run(Device::Cuda(0));
    for (c, g) in cpu_losses.iter().zip(&gpu_losses) {
        assert!((c - g).abs() < 1e-9, "loss cpu {c} vs gpu {g}");
    }
    for (c, g) in cpu_params.iter().zip(&gpu_params) {
        let d = (c - g).abs().max().double_value(&[]);
        assert!(d < 1e-9, "parameters differ by {d}");
    }
}

/// A batch binned as counts and uploaded from pinned memory without blocking
/// gives on cuda:0 the input the float batch gives, bit for bit, SUM_NORM's
/// division included; the labels arrive too.
#[test]
fn counts_uploaded_without_blocking_give_the_float_input() {
    use spikecv_common::config::BinMode;
    use spikecv_worker::loader::{BatchData, CountBatch, HostBatch};

    assert!(tch::Cuda::is_available(), "no CUDA device");
    let cuda = Device::Cuda(0);
    let (n, per) = (3usize, 2 * 4 * 4 * 5);
    // Counts up to 299 (an i16 batch), one sample without events.
    let binned: Vec<f32> = (0..n * per)
        .map(|i| {
            if i >= 2 * per {
                0.0
            } else {
                ((i * 37) % 300) as f32
            }
        })
        .collect();
    let spec = spikecv_common::frames::FrameSpec {
        dt_ms: 30,
        steps: 5,
        mode: BinMode::SumNorm,
        width: 4,
        height: 4,
        downscale: 1,
    };
    let mut floats = binned.clone();
    for sample in floats.chunks_mut(per) {
        let max = sample.iter().copied().fold(0.0f32, f32::max);
        if max > 0.0 {
            sample.iter_mut().for_each(|v| *v /= max);
        }
    }
    let batch = |data| HostBatch {
        data,
        labels: vec![4, 0, 18],
        first: 0,
        len: n,
    };
    let counts = CountBatch::from_binned(&binned, per, BinMode::SumNorm).unwrap();
    let from_counts = batch(BatchData::Counts(counts)).to_device(&spec, cuda);
    let from_floats = batch(BatchData::Host(floats)).to_device(&spec, cuda);
    assert_eq!(from_counts.inputs.device(), cuda);
    assert!(from_counts.inputs.equal(&from_floats.inputs));
    assert!(from_counts.inputs.sum(Kind::Double).double_value(&[]) > 0.0);
    let labels = Vec::<i64>::try_from(from_counts.labels.to_device(Device::Cpu)).unwrap();
    assert_eq!(labels, vec![4, 0, 18]);
}

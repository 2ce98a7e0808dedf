//! GPU check (feature `cuda-tests`): a few Adam steps on cuda:0 from the same
//! initialisation and input as on the CPU agree within tolerance, in double
//! precision so that no spike flips on rounding differences.
#![cfg(feature = "cuda-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::config::OptimizerKind;
use spikecv_worker::model::{Net, NetConfig};
use spikecv_worker::optim::Optimizer;
use tch::{Device, Kind, Reduction, Tensor, nn};

fn run(device: Device) -> (Vec<f64>, Vec<Tensor>) {
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let cfg = NetConfig {
        width: 10,
        height: 12,
        ..NetConfig::default()
    };
    let net = Net::new(&vs.root(), cfg);
    vs.double();
    vs.set_device(device);
    tch::manual_seed(1);
    let x = (Tensor::rand([4, 2, 10, 12, 6], (Kind::Double, Device::Cpu)) * 4.0)
        .floor()
        .to_device(device);
    let target = Tensor::from_slice(&[0i64, 5, 11, 18])
        .onehot(19)
        .to_kind(Kind::Double)
        .to_device(device);
    let params: Vec<Tensor> = net
        .named_parameters()
        .into_iter()
        .map(|(_, p)| p.shallow_clone())
        .collect();
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

//! Operations one training step issues on the device code path, counted on the
//! CPU: the fused LIF kernels in their C++ form stand in for the CUDA ones
//! (the same source text), everything else runs as on a GPU. Then the same step
//! on the tensor path (what a CUDA device ran before the fused kernels), and
//! the CUDA form compiled by NVRTC for each architecture (no GPU needed).
//!
//! `bash scripts/count-ops.sh` (or `cargo bench -p spikecv-worker --bench device_ops`)
//! Environment: BENCH_BATCH (8), BENCH_STEPS (T, 50), BENCH_SIZE (128),
//! BENCH_ARCHS (80,90), BENCH_VERBOSE=1 (every operation's count).
//!
//! What is counted (`spikecv_worker::op_count`): every ATen operation that
//! does the work itself (calls no counted operation) and is more than a view
//! or an allocation, in the autograd backward too, plus each fused kernel
//! call; from zeroing the gradients to the optimiser's step and the epoch
//! sums, as `train::step::train_epoch` runs them, for a batch already on the
//! device. On CUDA one operation is mostly one kernel launch (a cuDNN
//! convolution may launch a few).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use spikecv_common::experiment::sections::OptimizerKind;
use spikecv_worker::lif::fused::{self, LifKernels};
use spikecv_worker::model::{Net, NetConfig, with_seed};
use spikecv_worker::op_count::count_ops;
use spikecv_worker::optim::Optimizer;
use tch::{Device, Kind, Reduction, Tensor};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One training step as `train_epoch` runs it; returns its (loss, right) sums.
fn step(
    net: &Net,
    optimizer: &mut Optimizer,
    params: &[&Tensor],
    inputs: &Tensor,
    labels: &Tensor,
    classes: i64,
    sums: &mut Option<(Tensor, Tensor)>,
) {
    let target = labels.onehot(classes).to_kind(Kind::Float);
    Optimizer::zero_grad(params);
    let (loss, rates) = net.forward_backward(inputs, &|r| r.mse_loss(&target, Reduction::Mean));
    optimizer.step(params);
    let loss = loss.to_kind(Kind::Double);
    let right = rates
        .argmax(1, false)
        .eq_tensor(labels)
        .sum(Kind::Int64)
        .to_kind(Kind::Double);
    match sums {
        Some((l, r)) => {
            let _ = l.g_add_(&loss);
            let _ = r.g_add_(&right);
        }
        None => *sums = Some((loss.copy(), right.copy())),
    }
}

/// Operations of the second step (the first fills the optimiser's state).
fn ops_per_step(kernels: LifKernels, batch: i64, steps: i64, size: i64) -> Vec<(String, u64)> {
    let config = NetConfig {
        width: size,
        height: size,
        ..NetConfig::default()
    };
    let (_vs, mut net) = Net::seeded(config, 0, Device::Cpu);
    net.set_lif_kernels(kernels);
    let handles = net.parameters();
    let params: Vec<&Tensor> = handles.iter().collect();
    let mut optimizer = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, &params);
    let (inputs, labels) = with_seed(1, || {
        (
            Tensor::rand([batch, 2, size, size, steps], (Kind::Float, Device::Cpu))
                .ge(0.97)
                .to_kind(Kind::Float),
            Tensor::randint(config.classes, [batch], (Kind::Int64, Device::Cpu)),
        )
    });
    let mut sums = None;
    let classes = config.classes;
    step(
        &net,
        &mut optimizer,
        &params,
        &inputs,
        &labels,
        classes,
        &mut sums,
    );
    let ((), counts) = count_ops(|| {
        step(
            &net,
            &mut optimizer,
            &params,
            &inputs,
            &labels,
            classes,
            &mut sums,
        );
    })
    .unwrap();
    counts
}

fn report(label: &str, counts: &[(String, u64)], verbose: bool) -> u64 {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    println!("{label}: {total}");
    if verbose {
        let mut sorted = counts.to_vec();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (name, n) in sorted {
            println!("    {n:6}  {name}");
        }
    }
    total
}

fn main() {
    let batch: i64 = env_or("BENCH_BATCH", 8);
    let steps: i64 = env_or("BENCH_STEPS", 50);
    let size: i64 = env_or("BENCH_SIZE", 128);
    let verbose = env_or("BENCH_VERBOSE", 0) == 1;
    let archs: String = env_or("BENCH_ARCHS", "80,90".to_owned());
    println!(
        "one training step at batch {batch}, T = {steps}, {size}x{size} (the second step, counted on the CPU)"
    );
    let fused_counts = ops_per_step(LifKernels::Fused, batch, steps, size);
    let fused_total = report("device ops per training step", &fused_counts, verbose);
    let tensor_counts = ops_per_step(LifKernels::Tensor, batch, steps, size);
    let tensor_total = report(
        "device ops per training step, tensor path",
        &tensor_counts,
        verbose,
    );
    let kernels: u64 = fused_counts
        .iter()
        .filter(|(name, _)| name.starts_with("spikecv::"))
        .map(|(_, n)| n)
        .sum();
    println!(
        "  (fused kernel calls among them: {kernels}; tensor path / fused: {:.1}x)",
        tensor_total as f64 / fused_total.max(1) as f64
    );
    for arch in archs
        .split(',')
        .filter_map(|a| a.trim().parse::<i32>().ok())
    {
        match fused::nvrtc_compile(arch) {
            Ok(bytes) => println!("nvrtc sm_{arch}: ok ({bytes} byte cubin)"),
            Err(e) => println!("nvrtc sm_{arch}: failed: {e}"),
        }
    }
}

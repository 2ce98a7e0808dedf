//! Operations one training step issues on the device code path, counted on the
//! CPU (`spikecv_worker::op_count::step`): `train_batch` as `train_epoch` runs
//! it, on a batch gathered from a frame cache held as a tensor (as on CUDA),
//! the fused LIF kernels in their C++ form standing in for the CUDA ones (the
//! same source text). Counted: the gather and the input made from the compact
//! rows, the host-to-device copies (counted apart: no operation on the CPU),
//! the one-hot target, forward and backward, the spike tally, Adam (libtorch's
//! foreach operations) and the epoch's sums. Then the same step on the tensor
//! path (what a CUDA device ran before the fused kernels), a hand-kept table of
//! the counted operations known to launch more than one device kernel, and the
//! CUDA form compiled by NVRTC for each architecture (no GPU needed).
//!
//! `bash scripts/count-ops.sh` (or `cargo bench -p spikecv-worker --bench device_ops`)
//! Environment: BENCH_BATCH (8), BENCH_STEPS (T, 50), BENCH_SIZE (128),
//! BENCH_ARCHS (80,90), BENCH_VERBOSE=1 (every operation's count).
//! `worker/tests/op_count.rs` asserts the counts at the defaults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use spikecv_worker::lif::fused::{self, LifKernels};
use spikecv_worker::op_count::step::{StepOps, StepSettings, training_step_ops};

/// Counted operations known to launch more than one device kernel on CUDA,
/// with how many where known. HAND-KEPT from reading ATen, cuDNN and cuBLAS
/// behaviour, not measured (no profile of a GPU run backs it yet): a cuDNN
/// algorithm or a cuBLAS heuristic may launch other kernels. Each `_foreach_`
/// operation is one launch per 320 chunks of 65,536 values (the reference
/// network's parameters fit one) and is not listed.
const MULTI_KERNEL: &[(&str, &str, &str)] = &[
    (
        "aten::convolution_backward",
        "2-4",
        "cuDNN data gradient (none for the first layer, whose input needs none) and weight gradient kernels, plus a reduction for the bias gradient; some algorithms add transform kernels",
    ),
    (
        "aten::conv2d",
        "2+",
        "convolution with bias: the cuDNN convolution, then the bias added by a separate kernel; some algorithms add transform kernels",
    ),
    (
        "aten::linear",
        "2",
        "linear with bias (addmm): the bias broadcast copied into the output, then the cuBLAS GEMM with beta = 1",
    ),
    (
        "aten::mm",
        "1-2",
        "cuBLAS GEMM; a split-K heuristic adds a reduction kernel",
    ),
    (
        "aten::mse_loss",
        "2",
        "the elementwise squared error, then the mean reduction",
    ),
    (
        "aten::max_pool2d_with_indices_backward",
        "2",
        "zero fill of the gradient, then the scatter (max-pooling networks)",
    ),
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(label: &str, counted: &StepOps, verbose: bool) -> u64 {
    let total = counted.total();
    println!(
        "{label}: {total} ({} counted operations, {} host-to-device copies)",
        total - counted.uploads,
        counted.uploads
    );
    if verbose {
        let mut sorted = counted.ops.clone();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (name, n) in sorted {
            println!("    {n:6}  {name}");
        }
    }
    total
}

fn multi_kernel_table(counted: &StepOps) {
    println!(
        "operations of the fused step known to launch more than one device kernel (hand-kept list, not measured):"
    );
    println!(
        "    {:>5}  {:<40} {:<16} note",
        "count", "operation", "kernels each"
    );
    for (name, kernels, note) in MULTI_KERNEL {
        let n: u64 = counted
            .ops
            .iter()
            .filter(|(op, _)| op == name)
            .map(|(_, n)| n)
            .sum();
        if n > 0 {
            println!("    {n:>5}  {name:<40} {kernels:<16} {note}");
        }
    }
}

fn main() {
    let settings = StepSettings {
        batch: env_or("BENCH_BATCH", 8),
        steps: env_or("BENCH_STEPS", 50),
        size: env_or("BENCH_SIZE", 128),
        kernels: LifKernels::Fused,
    };
    let verbose = env_or("BENCH_VERBOSE", 0) == 1;
    let archs: String = env_or("BENCH_ARCHS", "80,90".to_owned());
    println!(
        "one training step at batch {}, T = {}, {}x{} (the second step, counted on the CPU)",
        settings.batch, settings.steps, settings.size, settings.size
    );
    let fused_counts = training_step_ops(&settings).expect("counting the fused step");
    let fused_total = report("device ops per training step", &fused_counts, verbose);
    let tensor_counts = training_step_ops(&StepSettings {
        kernels: LifKernels::Tensor,
        ..settings
    })
    .expect("counting the tensor path's step");
    let tensor_total = report(
        "device ops per training step, tensor path",
        &tensor_counts,
        verbose,
    );
    println!(
        "  (fused kernel calls among them: {}; tensor path / fused: {:.1}x)",
        fused_counts.fused_kernel_calls(),
        tensor_total as f64 / fused_total.max(1) as f64
    );
    multi_kernel_table(&fused_counts);
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

//! GPU checks (feature `cuda-tests`), run by `scripts/gpu-check.sh` on a
//! machine with a GPU:
//!
//! - a few Adam steps on cuda:0 from the same initialisation and input as on
//!   the CPU agree within tolerance, in double precision so that no spike
//!   flips on rounding differences; batches uploaded as counts from pinned
//!   memory give the float batches' input; batches staged through the copy
//!   stream arrive whole and in order with the compute stream;
//! - the fused LIF kernels pass their first-use check on the device; one f32
//!   training pass with them there matches the CPU kernels' pass on the CPU
//!   from the same weights and input, and the tensor path's on the device;
//! - (ignored unless asked) the training step's speed with each LIF path.
//!
//! The fused-kernel checks run where `GPU_CHECK_DEVICE` says (`cuda:0` unless
//! set). `GPU_CHECK_DEVICE=cpu` runs them on the CPU, the fused kernels in
//! their C++ form, so that the script's whole flow can be tried on a machine
//! without a GPU; the other tests need CUDA.
#![cfg(feature = "cuda-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use spikecv_common::experiment::sections::{OptimizerKind, Precision};
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
    use spikecv_common::events::frames::BinMode;
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
    let spec = spikecv_common::events::frames::FrameSpec {
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

/// Batches staged through the copy stream arrive whole, in their memory
/// order, and in order with the compute stream: each of 12 uploads (a
/// time-major view, as the frame cache's input is, through the two pinned
/// buffers in turn) is read by a sum queued on the compute stream right
/// behind a long matrix product, from a training thread's pool stream as a
/// slot's is. A copy the compute stream did not wait for, or a buffer
/// refilled before its copy was done, gives a wrong sum.
#[test]
fn staged_uploads_on_the_copy_stream_arrive_whole_and_in_order() {
    use spikecv_worker::upload::{Role, staged_upload};

    assert!(tch::Cuda::is_available(), "no CUDA device");
    let cuda = Device::Cuda(0);
    std::thread::spawn(move || {
        spikecv_worker::cuda_host::use_pool_stream(0).expect("pool stream");
        let busy = Tensor::randn([2048, 2048], (Kind::Float, cuda));
        let mut sums = Vec::new();
        let mut want = Vec::new();
        for i in 0..12i64 {
            // [T, N, C] in memory, seen as [N, C, T].
            let host = (Tensor::arange(4 * 3 * 1000, (Kind::Float, Device::Cpu)) + i * 7)
                .view([4, 3, 1000])
                .permute([1, 2, 0]);
            want.push(host.sum(Kind::Double).double_value(&[]));
            let _ = busy.matmul(&busy);
            let on_device = staged_upload(Role::Input, &host, cuda).unwrap();
            assert_eq!(on_device.device(), cuda);
            assert_eq!(on_device.stride(), host.stride(), "memory order kept");
            sums.push(on_device.sum(Kind::Double));
        }
        let got: Vec<f64> = sums.iter().map(|s| s.double_value(&[])).collect();
        assert_eq!(got, want);
    })
    .join()
    .unwrap();
}

/// Where the fused-kernel checks run: `GPU_CHECK_DEVICE`, `cuda:0` unless set.
fn check_device() -> Device {
    let text = std::env::var("GPU_CHECK_DEVICE").unwrap_or_else(|_| "cuda:0".to_owned());
    let device = text
        .parse::<spikecv_worker::devices::DeviceSpec>()
        .expect("GPU_CHECK_DEVICE: cpu or cuda:N")
        .to_tch();
    if device != Device::Cpu {
        assert!(tch::Cuda::is_available(), "no CUDA device");
    }
    device
}

/// cuDNN convolutions in IEEE float32 (libtorch's default, like PyTorch's,
/// lets them use TF32), checked by reading the switch back. Nothing to do on
/// the CPU.
fn tf32_off(device: Device) {
    if device == Device::Cpu {
        return;
    }
    spikecv_worker::cuda_host::set_tf32_conv(false).expect("TF32 switch");
    let state = spikecv_worker::cuda_host::tf32_state().expect("TF32 state");
    assert!(!state.conv && !state.matmul, "TF32 still on: {state:?}");
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i64::try_from(i).unwrap());
    }
}

/// The worker's first-use check of the fused LIF kernels passes on the
/// device: `fused::cuda_ready` compiles the CUDA form with NVRTC, loads it
/// and runs it beside the tensor path on a small input (spikes equal,
/// gradients within the check's tolerance). A failure's reason is the
/// warning it logs (shown: this test installs the worker's log output). The
/// check is CUDA's: on the CPU the test says it is skipped (the C++ form is
/// checked by tests/lif_fused.rs and by the two passes below).
#[test]
fn fused_kernels_pass_their_first_use_check() {
    let device = check_device();
    let Device::Cuda(index) = device else {
        println!(
            "fused LIF self-check: skipped on the CPU (the first-use check is for CUDA devices)"
        );
        return;
    };
    spikecv_common::logging::init();
    let start = std::time::Instant::now();
    let ready = spikecv_worker::lif::fused::cuda_ready(index);
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        ready,
        "the fused LIF kernels failed their first-use check on cuda:{index} (the warning above says why)"
    );
    println!(
        "fused LIF self-check on cuda:{index}: passed in {seconds:.2} s (NVRTC compile and load included)"
    );
}

/// Gradients may differ from the reference by this much, relative to the
/// largest magnitude of the same parameter's reference gradient. The passes
/// compared have equal spikes (checked first, exactly), so what remains is
/// float32 summation order: cuDNN and cuBLAS (or the tensor path) add a
/// gradient's terms in another order than the CPU kernels' libtorch calls,
/// which moves a sum of K terms by about sqrt(K)·2⁻²⁴ of their magnitude; K
/// is at most 4·8·22·18 ≈ 13,000 terms per weight here (batch × T × the
/// conv1 output), about 7e-6. With the fused kernels' own rounding (their
/// first-use check allows 1e-5: libtorch's CUDA division by a scalar
/// multiplies by the reciprocal), 1e-4 leaves a margin of five or more.
const GRADIENT_TOLERANCE: f64 = 1e-4;

/// The loss's tolerance, relative: a mean of 76 equal squares added in another
/// order, at most 76·2⁻²⁴ ≈ 4.5e-6.
const LOSS_TOLERANCE: f64 = 1e-5;

/// One training pass's results, on the CPU.
struct Pass {
    loss: f64,
    rates: Tensor,
    /// Every LIF layer's firing rate from the pass's spike tally (the fused
    /// kernels count inside the kernel, the other paths from the output).
    firing: Vec<(String, f64)>,
    grads: Vec<(&'static str, Tensor)>,
}

/// One f32 training pass (`Net::forward_backward`, MSE against one-hot
/// labels) on `device` with the LIF kernels `kernels`, from the seed-0
/// network with its parameters rounded to multiples of 2⁻¹² and a seed-1
/// binary input (batch 4, T = 8, 24×20, so the pooled sizes are odd).
///
/// The rounding makes the forward's convolutions and matrix products exact
/// in float32 whatever the order of their sums (the products of such
/// weights with spikes or pooled spikes, multiples of 1/4, are exact, and
/// every partial sum fits in 24 bits; TF32 too represents such weights), so
/// the two devices feed the LIF layers the same inputs and a spike can flip
/// only where a potential lies within rounding of the threshold.
fn training_pass(device: Device, kernels: spikecv_worker::lif::fused::LifKernels) -> Pass {
    let cfg = NetConfig {
        width: 24,
        height: 20,
        ..NetConfig::default()
    };
    let (mut vs, mut net) = Net::seeded(cfg, 0, Device::Cpu);
    tch::no_grad(|| {
        for p in net.parameters() {
            let mut p = p;
            let rounded = (&p * 4096.0).round() / 4096.0;
            p.copy_(&rounded);
        }
    });
    if device != Device::Cpu {
        vs.set_device(device);
    }
    net.set_lif_kernels(kernels);
    let x = with_seed(1, || {
        Tensor::rand([4, 2, 24, 20, 8], (Kind::Float, Device::Cpu))
            .lt(0.3)
            .to_kind(Kind::Float)
    })
    .to_device(device);
    let target = Tensor::from_slice(&[0i64, 5, 11, 18])
        .onehot(19)
        .to_kind(Kind::Float)
        .to_device(device);
    let params = net.parameters();
    let refs: Vec<&Tensor> = params.iter().collect();
    Optimizer::zero_grad(&refs);
    let loss_fn = |rates: &Tensor| rates.mse_loss(&target, Reduction::Mean);
    let mut tally = spikecv_worker::model::SpikeTally::new(&net);
    let (loss, rates) = net.forward_backward_tallied(&x, &loss_fn, Some(&mut tally));
    let names = spikecv_worker::model::PARAM_NAMES;
    let grads = names
        .into_iter()
        .zip(&params)
        .map(|(name, p)| (name, p.grad().to_device(Device::Cpu)))
        .collect();
    Pass {
        loss: loss.double_value(&[]),
        rates: rates.to_device(Device::Cpu),
        firing: tally.rates().expect("a tallied pass"),
        grads,
    }
}

/// Compares `got` with `want`: rates (so every output spike count) and
/// every LIF layer's firing rate equal,
/// the loss and every gradient within tolerance, and none of the gradients
/// zero (a network that did not fire would agree vacuously). Prints the
/// largest relative differences.
fn assert_passes_agree(what: &str, want: &Pass, got: &Pass) {
    let spiking = want.rates.sum(Kind::Double).double_value(&[]);
    assert!(
        spiking > 0.0,
        "{what}: the reference pass has no output spikes"
    );
    if !want.rates.equal(&got.rates) {
        let differing = want
            .rates
            .ne_tensor(&got.rates)
            .sum(Kind::Int64)
            .int64_value(&[]);
        panic!(
            "{what}: {differing} of {} output rates differ (a spike flipped: a potential within rounding of the threshold, or a kernel error)",
            want.rates.numel()
        );
    }
    assert_eq!(
        want.firing, got.firing,
        "{what}: firing rates (exact counts)"
    );
    let loss_rel = (want.loss - got.loss).abs() / want.loss.abs().max(1e-30);
    assert!(
        loss_rel <= LOSS_TOLERANCE,
        "{what}: loss {} vs {} (relative {loss_rel:e})",
        want.loss,
        got.loss
    );
    let mut worst = 0.0f64;
    for ((name, w), (_, g)) in want.grads.iter().zip(&got.grads) {
        let scale = w.abs().max().double_value(&[]);
        assert!(scale > 0.0, "{what}: no gradient reaches {name}");
        let diff = (w - g).abs().max().double_value(&[]);
        let rel = diff / scale;
        assert!(
            rel <= GRADIENT_TOLERANCE,
            "{what}: gradient of {name} differs by {diff:e}, {rel:e} of its largest {scale:e} (tolerance {GRADIENT_TOLERANCE:e})"
        );
        worst = worst.max(rel);
    }
    println!(
        "{what}: rates equal, loss relative difference {loss_rel:.2e}, largest gradient difference {worst:.2e} of the gradient's largest (tolerances {LOSS_TOLERANCE:e}, {GRADIENT_TOLERANCE:e})"
    );
}

/// One f32 training pass with the fused kernels on the check device (TF32
/// off) against the CPU kernels' pass on the CPU from the same weights and
/// input: equal rates, the loss and every gradient within tolerance.
#[test]
fn fused_training_pass_on_the_device_matches_the_cpu() {
    use spikecv_worker::lif::fused::LifKernels;
    let device = check_device();
    tf32_off(device);
    let cpu = training_pass(Device::Cpu, LifKernels::Auto);
    let fused = training_pass(device, LifKernels::Fused);
    assert_passes_agree(
        &format!("fused on {device:?} vs CPU kernels on the CPU"),
        &cpu,
        &fused,
    );
}

/// On the check device, the fused kernels' training pass against the tensor
/// path's (`lif::through_time`, libtorch's pooling), within tolerance.
#[test]
fn fused_training_pass_matches_the_tensor_path_on_the_device() {
    use spikecv_worker::lif::fused::LifKernels;
    let device = check_device();
    tf32_off(device);
    let tensor = training_pass(device, LifKernels::Tensor);
    let fused = training_pass(device, LifKernels::Fused);
    assert_passes_agree(
        &format!("fused vs tensor path on {device:?}"),
        &tensor,
        &fused,
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Training-step time (`Net::forward_backward` and an Adam step) of one LIF
/// path on the check device, at `SPEED_BATCH` (8), `SPEED_STEPS` (50),
/// `SPEED_SIZE`² (128²), input spike density 0.05, `SPEED_ITERS` (20) timed
/// steps after `SPEED_WARMUP` (3), in `precision`: prints `step <name>:
/// <rate> samples/s, ...` and returns the rate. Each path is a test of its
/// own, so that a failure of one (the fused kernels') keeps the other's
/// figure; `scripts/gpu-check.sh` runs the tensor baseline first.
fn step_speed(
    name: &str,
    kernels: spikecv_worker::lif::fused::LifKernels,
    precision: Precision,
) -> f64 {
    let device = check_device();
    let batch: i64 = env_or("SPEED_BATCH", 8);
    let steps: i64 = env_or("SPEED_STEPS", 50);
    let size: i64 = env_or("SPEED_SIZE", 128);
    let iters: u32 = env_or("SPEED_ITERS", 20);
    let warmup: u32 = env_or("SPEED_WARMUP", 3);
    let cfg = NetConfig {
        width: size,
        height: size,
        ..NetConfig::default()
    };
    let x = with_seed(1, || {
        Tensor::rand([batch, 2, size, size, steps], (Kind::Float, Device::Cpu))
            .lt(0.05)
            .to_kind(Kind::Float)
    })
    .to_device(device);
    let target = Tensor::arange(batch, (Kind::Int64, device))
        .remainder(19)
        .onehot(19)
        .to_kind(Kind::Float);
    let loss_fn = |rates: &Tensor| rates.mse_loss(&target, Reduction::Mean);
    let (_vs, mut net) = Net::seeded(cfg, 0, device);
    net.set_lif_kernels(kernels);
    net.set_precision(precision);
    let params = net.parameters();
    let refs: Vec<&Tensor> = params.iter().collect();
    let mut opt = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.9, &refs);
    let mut step = || {
        Optimizer::zero_grad(&refs);
        let (loss, _) = net.forward_backward(&x, &loss_fn);
        opt.step(&refs);
        loss
    };
    for _ in 0..warmup {
        let _ = step();
    }
    sync(device);
    let start = std::time::Instant::now();
    let mut losses = Vec::new();
    for _ in 0..iters {
        losses.push(step());
    }
    sync(device);
    let seconds = start.elapsed().as_secs_f64() / f64::from(iters);
    let last_loss = losses.last().map_or(f64::NAN, |l| l.double_value(&[]));
    assert!(last_loss.is_finite(), "{name}: the loss is {last_loss}");
    let rate = batch as f64 / seconds;
    println!(
        "step {name}: {rate:.1} samples/s, {:.2} ms/step (batch {batch}, T {steps}, {size}x{size}, {device:?}, {iters} steps after {warmup}, last loss {last_loss:.5})",
        seconds * 1e3
    );
    rate
}

/// The tensor path's training-step speed (the baseline). Timing only: run by
/// `scripts/gpu-check.sh` with `--ignored`.
#[test]
#[ignore = "timing; run by scripts/gpu-check.sh"]
fn training_step_speed_tensor_path() {
    step_speed(
        "tensor",
        spikecv_worker::lif::fused::LifKernels::Tensor,
        Precision::F32,
    );
}

/// The fused kernels' training-step speed (and, on the CPU, the CPU
/// kernels'). Timing only: run by `scripts/gpu-check.sh` with `--ignored`.
#[test]
#[ignore = "timing; run by scripts/gpu-check.sh"]
fn training_step_speed_fused() {
    use spikecv_worker::lif::fused::LifKernels;
    step_speed("fused", LifKernels::Fused, Precision::F32);
    if check_device() == Device::Cpu {
        step_speed("cpu-kernels", LifKernels::Auto, Precision::F32);
    }
}

/// The fused kernels' training-step speed in float32 with TF32 convolutions
/// off and on (on a GPU; the CPU has no TF32) and in bfloat16
/// (`[training] precision = "bf16"`), with the ratio of bfloat16 to float32
/// as a job runs it by default (TF32 on). Timing only: run by
/// `scripts/gpu-check.sh` with `--ignored`.
#[test]
#[ignore = "timing; run by scripts/gpu-check.sh"]
fn training_step_speed_precisions() {
    use spikecv_worker::lif::fused::LifKernels;
    let device = check_device();
    let f32_rate = if device == Device::Cpu {
        step_speed("fused-f32", LifKernels::Fused, Precision::F32)
    } else {
        spikecv_worker::cuda_host::set_tf32_conv(false).unwrap();
        step_speed("fused-f32-tf32-off", LifKernels::Fused, Precision::F32);
        spikecv_worker::cuda_host::set_tf32_conv(true).unwrap();
        step_speed("fused-f32-tf32-on", LifKernels::Fused, Precision::F32)
    };
    let bf16_rate = step_speed("fused-bf16", LifKernels::Fused, Precision::Bf16);
    println!(
        "precision: bf16 {bf16_rate:.1} samples/s, f32 {f32_rate:.1} samples/s -> bf16/f32 {:.2}x",
        bf16_rate / f32_rate
    );
}

//! Training-step throughput of the STBP engine against the reference-style
//! PyTorch implementation (`benches/reference_step.py`), in one run, same
//! shapes (batch 8, T = 50, 128×128 by default), same thread count.
//!
//! `cargo bench -p spikecv-worker --bench train_step`
//! Environment: BENCH_BATCH, BENCH_STEPS, BENCH_ITERS, BENCH_THREADS,
//! BENCH_DEVICE (cpu or cuda:N), BENCH_DENSITY (input spike density),
//! BENCH_WARMUP (untimed steps first, default 1; the reference-style step
//! takes minutes on a small CPU),
//! PYTHON (default: the workspace's .venv), BENCH_REFERENCE_SCRIPT (default: this
//! checkout's benches/reference_step.py), BENCH_SKIP_PYTHON=1,
//! BENCH_SKIP_AUTOGRAD=1 (skip the in-repository autograd reference,
//! `Net::forward_autograd`, whose backward is quadratic in T).
//!
//! Reports samples/s, peak RSS and minor page faults per step (on the CPU) of
//! `Net::forward_backward`, of the autograd reference and of the PyTorch loop.
//! The bench installs the host heap as the `worker` binary does
//! (`spikecv_worker::allocator`), or with BENCH_ALLOCATOR=jemalloc jemalloc
//! (tikv-jemalloc-sys, default settings) as libtorch's CPU allocator, or with
//! BENCH_ALLOCATOR=glibc (or BENCH_SYSTEM_ALLOCATOR=1) leaves glibc's malloc,
//! as `worker --system-allocator` does; it trains on a thread of its own, as a
//! worker's slot does. BENCH_BREAKDOWN=0 skips the forward/backward/Adam
//! breakdown. The PyTorch loop runs twice on the CPU: as users run it,
//! and with glibc told to keep freed memory (through `GLIBC_TUNABLES`), the
//! allocator help a PyTorch user can get, so the engine's share of the
//! speed-up shows apart from the allocator's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;
use std::time::Instant;

use spikecv_common::experiment::sections::OptimizerKind;
use spikecv_worker::devices::DeviceSpec;
use spikecv_worker::model::{Net, NetConfig};
use spikecv_worker::optim::Optimizer;
use tch::{Device, Kind, Reduction, Tensor};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Resets the process's peak resident set size (Linux; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, as text.
fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.0} MiB", kb / 1024.0),
        )
}

/// Minor page faults of the process so far (Linux; zero elsewhere).
fn minor_faults() -> u64 {
    // Field 10 of /proc/self/stat; the command name (field 2) may hold spaces,
    // so count from the closing parenthesis.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// glibc's settings for the PyTorch loop's second run: one arena, no mmap, no
/// trimming, so freed blocks stay mapped for the next step.
const KEEP_FREED_TUNABLES: &str =
    "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647";

/// The bench's settings, from the environment.
#[derive(Clone)]
struct Settings {
    allocator: String,
    breakdown: bool,
    batch: i64,
    steps: i64,
    iters: u32,
    density: f64,
    warmup: u32,
    threads: i32,
    device_text: String,
    device: Device,
}

impl Settings {
    /// The settings, with the CPU allocator already chosen.
    fn from_env(allocator: String) -> Settings {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let device_text: String = env_or("BENCH_DEVICE", "cpu".to_owned());
        let device = device_text
            .parse::<DeviceSpec>()
            .expect("BENCH_DEVICE")
            .to_tch();
        Settings {
            allocator,
            breakdown: !std::env::var("BENCH_BREAKDOWN").is_ok_and(|v| v == "0"),
            batch: env_or("BENCH_BATCH", 8),
            steps: env_or("BENCH_STEPS", 50),
            iters: env_or("BENCH_ITERS", 3),
            density: env_or("BENCH_DENSITY", 0.05),
            warmup: env_or("BENCH_WARMUP", 1),
            threads: env_or("BENCH_THREADS", cores as i32),
            device_text,
            device,
        }
    }
}

/// Installs the CPU allocator BENCH_ALLOCATOR (or BENCH_SYSTEM_ALLOCATOR)
/// names, and returns its name.
fn install_allocator() -> String {
    let system_allocator = std::env::var("BENCH_SYSTEM_ALLOCATOR").is_ok_and(|v| v == "1");
    let allocator = std::env::var("BENCH_ALLOCATOR")
        .unwrap_or_else(|_| if system_allocator { "glibc" } else { "heap" }.to_owned());
    match allocator.as_str() {
        "heap" => spikecv_worker::allocator::install_host_heap().expect("host heap"),
        "jemalloc" => spikecv_worker::allocator::install_jemalloc().expect("jemalloc"),
        "glibc" => {}
        other => panic!("BENCH_ALLOCATOR={other}: expected heap, jemalloc or glibc"),
    }
    allocator
}

/// The network, its input and target.
struct Trainee {
    _vs: tch::nn::VarStore,
    net: Net,
    x: Tensor,
    target: Tensor,
    params: Vec<Tensor>,
}

impl Trainee {
    fn new(s: &Settings) -> Trainee {
        let (vs, net) = Net::seeded(NetConfig::default(), 0, s.device);
        let x = Tensor::rand([s.batch, 2, 128, 128, s.steps], (Kind::Float, Device::Cpu))
            .lt(s.density)
            .to_kind(Kind::Float)
            .to_device(s.device);
        let labels = Tensor::arange(s.batch, (Kind::Int64, s.device)).remainder(19);
        let target = labels.onehot(19).to_kind(Kind::Float);
        let params: Vec<Tensor> = net.parameters();
        Trainee {
            _vs: vs,
            net,
            x,
            target,
            params,
        }
    }

    fn loss(&self, out: &Tensor) -> Tensor {
        out.mse_loss(&self.target, Reduction::Mean)
    }

    /// One training step: the staged backward (`forward_backward`) or the
    /// autograd reference.
    fn step(&self, opt: &mut Optimizer, refs: &[&Tensor], staged: bool) {
        Optimizer::zero_grad(refs);
        if staged {
            let _ = self.net.forward_backward(&self.x, &|out| self.loss(out));
        } else {
            self.loss(&self.net.forward_autograd(&self.x, true))
                .backward();
        }
        opt.step(refs);
    }
}

/// Samples/s, seconds per step, peak RSS and minor page faults per step of
/// `iters` training steps after `warmup` untimed ones.
fn time_steps(
    s: &Settings,
    t: &Trainee,
    opt: &mut Optimizer,
    staged: bool,
) -> (f64, f64, String, u64) {
    let refs: Vec<&Tensor> = t.params.iter().collect();
    let mut step = || {
        t.step(opt, &refs, staged);
        sync(s.device);
    };
    reset_peak_rss();
    for _ in 0..s.warmup {
        step();
    }
    let faults = minor_faults();
    let start = Instant::now();
    for _ in 0..s.iters {
        step();
    }
    let seconds = start.elapsed().as_secs_f64() / f64::from(s.iters);
    let faults = (minor_faults() - faults) / u64::from(s.iters);
    (s.batch as f64 / seconds, seconds, peak_rss_mib(), faults)
}

/// Where a step's time goes: the forward pass alone (evaluation's), the
/// forward and backward, and the optimiser step.
fn print_breakdown(s: &Settings, t: &Trainee) {
    let timed = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..s.iters {
            f();
            sync(s.device);
        }
        start.elapsed().as_secs_f64() / f64::from(s.iters)
    };
    let refs: Vec<&Tensor> = t.params.iter().collect();
    let forward = timed(&mut || {
        let _ = t.net.forward_fast(&t.x);
    });
    let forward_backward = timed(&mut || {
        Optimizer::zero_grad(&refs);
        let _ = t.net.forward_backward(&t.x, &|out| t.loss(out));
    });
    let mut opt_only = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.9, &refs);
    let optimizer = timed(&mut || opt_only.step(&refs));
    println!(
        "  of which: forward {forward:.3} s, forward+backward {forward_backward:.3} s, Adam step {optimizer:.3} s"
    );
}

/// The host heap's counters, when it is installed.
fn print_host_heap() {
    if let Some(heap) = spikecv_worker::allocator::host_heap_stats() {
        println!(
            "  host heap: peak {} MiB, {} requests reused a free range, {} assembled ({} MiB moved), {} resets",
            heap.high_water_bytes >> 20,
            heap.reused,
            heap.assembled,
            heap.moved_bytes >> 20,
            heap.resets
        );
    }
}

/// Times the engine (and the autograd reference unless skipped) on the
/// calling thread and returns the engine's samples/s.
fn bench_ours(s: &Settings) -> f64 {
    tch::set_num_threads(s.threads);
    tch::set_num_threads(s.threads);
    let t = Trainee::new(s);
    let refs: Vec<&Tensor> = t.params.iter().collect();
    let mut opt = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.9, &refs);
    let (batch, steps, density, threads, iters) = (s.batch, s.steps, s.density, s.threads, s.iters);
    let (device_text, allocator) = (&s.device_text, &s.allocator);
    println!(
        "shapes: batch {batch}, T {steps}, 128x128, input density {density}; device {device_text}; {threads} threads; {iters} timed steps; CPU allocator {allocator}"
    );
    let (ours, seconds, rss, faults) = time_steps(s, &t, &mut opt, true);
    print_host_heap();
    println!(
        "spikecv (LIF outside autograd, staged backward): {ours:8.2} samples/s ({seconds:.3} s/step, peak RSS {rss}, {faults} page faults/step)"
    );
    if s.breakdown {
        print_breakdown(s, &t);
    }
    if !std::env::var("BENCH_SKIP_AUTOGRAD").is_ok_and(|v| v == "1") {
        let (before, seconds, rss, faults) = time_steps(s, &t, &mut opt, false);
        println!(
            "spikecv autograd reference (forward_autograd): {before:8.2} samples/s ({seconds:.3} s/step, peak RSS {rss}, {faults} page faults/step)"
        );
        println!(
            "speed-up over the autograd reference: {:.2}x",
            ours / before
        );
    }
    ours
}

/// Runs the PyTorch loop (twice on the CPU: as users run it and with glibc
/// keeping freed memory) and prints the speed-ups over it.
fn compare_with_reference(s: &Settings, ours: f64) {
    let args = ReferenceArgs {
        batch: s.batch,
        steps: s.steps,
        iters: s.iters,
        threads: s.threads,
        density: s.density,
        warmup: s.warmup,
        device: s.device_text.clone(),
    };
    let batch = s.batch;
    if let Some(theirs) = run_reference(&args, None) {
        println!(
            "reference (PyTorch, loop over T):         {theirs:8.2} samples/s ({:.3} s/step)",
            batch as f64 / theirs
        );
        println!("speed-up: {:.2}x", ours / theirs);
    }
    // On a GPU the host allocator hardly matters: one run of the loop is enough.
    let on_cpu = args.device == "cpu";
    if on_cpu && let Some(theirs) = run_reference(&args, Some(KEEP_FREED_TUNABLES)) {
        println!(
            "reference, glibc keeping freed memory:   {theirs:8.2} samples/s ({:.3} s/step)",
            batch as f64 / theirs
        );
        println!("speed-up over it: {:.2}x", ours / theirs);
    }
}

fn main() {
    let allocator = install_allocator();
    let settings = Settings::from_env(allocator);
    // Training runs on its own thread in a worker; so it does here.
    let on_thread = settings.clone();
    let ours = std::thread::spawn(move || bench_ours(&on_thread))
        .join()
        .expect("training thread");
    if std::env::var("BENCH_SKIP_PYTHON").is_ok_and(|v| v == "1") {
        return;
    }
    compare_with_reference(&settings, ours);
}

/// The shapes and settings the PyTorch loop is run with.
struct ReferenceArgs {
    batch: i64,
    steps: i64,
    iters: u32,
    threads: i32,
    density: f64,
    warmup: u32,
    device: String,
}

/// Runs `benches/reference_step.py` (with `GLIBC_TUNABLES` when given) and
/// returns its samples/s, printing its peak RSS and page faults; `None` (with
/// the reason printed) when it cannot run.
fn run_reference(args: &ReferenceArgs, tunables: Option<&str>) -> Option<f64> {
    let python = std::env::var("PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").to_owned());
    // A binary carried to another machine (scripts/gpu-check.sh) names the
    // script's path there.
    let script = std::env::var("BENCH_REFERENCE_SCRIPT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/benches/reference_step.py").to_owned()
    });
    let mut command = Command::new(&python);
    command
        .arg(script)
        .args(["--batch", &args.batch.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--iters", &args.iters.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--density", &args.density.to_string()])
        .args(["--device", &args.device])
        .args(["--warmup", &args.warmup.to_string()]);
    if let Some(tunables) = tunables {
        command.env("GLIBC_TUNABLES", tunables);
    }
    let output = match command.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "reference run failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return None;
        }
        Err(e) => {
            println!("cannot run {python}: {e}");
            return None;
        }
    };
    let line = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str::<serde_json::Value>(line.trim()).expect("reference output");
    let rss = report["peak_rss_mib"]
        .as_f64()
        .map_or_else(|| "unknown".to_owned(), |m| format!("{m:.0} MiB"));
    let faults = report["minor_faults_per_step"]
        .as_u64()
        .map_or_else(|| "unknown".to_owned(), |f| f.to_string());
    println!("  PyTorch loop: peak RSS {rss}, {faults} page faults/step");
    report["samples_per_second"].as_f64()
}

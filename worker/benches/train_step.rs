//! Training-step throughput of the STBP engine against the reference-style
//! PyTorch implementation (`benches/reference_step.py`), in one run, same
//! shapes (batch 8, T = 50, 128×128 by default), same thread count.
//!
//! `cargo bench -p spikecv-worker --bench train_step`
//! Environment: BENCH_BATCH, BENCH_STEPS, BENCH_ITERS, BENCH_THREADS,
//! BENCH_DEVICE (cpu or cuda:N), BENCH_DENSITY (input spike density),
//! BENCH_WARMUP (untimed steps first, default 1; the reference-style step
//! takes minutes on a small CPU),
//! PYTHON (default: the workspace's .venv), BENCH_SKIP_PYTHON=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;
use std::time::Instant;

use spikecv_common::config::OptimizerKind;
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

fn main() {
    let batch: i64 = env_or("BENCH_BATCH", 8);
    let steps: i64 = env_or("BENCH_STEPS", 50);
    let iters: u32 = env_or("BENCH_ITERS", 3);
    let density: f64 = env_or("BENCH_DENSITY", 0.05);
    let warmup: u32 = env_or("BENCH_WARMUP", 1);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads: i32 = env_or("BENCH_THREADS", cores as i32);
    let device_text: String = env_or("BENCH_DEVICE", "cpu".to_owned());
    let device = device_text
        .parse::<DeviceSpec>()
        .expect("BENCH_DEVICE")
        .to_tch();
    tch::set_num_threads(threads);

    let (_vs, net) = Net::seeded(NetConfig::default(), 0, device);
    let x = Tensor::rand([batch, 2, 128, 128, steps], (Kind::Float, Device::Cpu))
        .lt(density)
        .to_kind(Kind::Float)
        .to_device(device);
    let labels = Tensor::arange(batch, (Kind::Int64, device)).remainder(19);
    let target = labels.onehot(19).to_kind(Kind::Float);
    let params: Vec<Tensor> = net
        .named_parameters()
        .into_iter()
        .map(|(_, p)| p.shallow_clone())
        .collect();
    let refs: Vec<&Tensor> = params.iter().collect();
    let mut opt = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.9, &refs);
    let mut step = || {
        let out = net.forward_t(&x, true);
        let loss = out.mse_loss(&target, Reduction::Mean);
        Optimizer::zero_grad(&refs);
        loss.backward();
        opt.step(&refs);
        sync(device);
    };
    for _ in 0..warmup {
        step();
    }
    let start = Instant::now();
    for _ in 0..iters {
        step();
    }
    let seconds = start.elapsed().as_secs_f64() / f64::from(iters);
    let ours = batch as f64 / seconds;
    println!(
        "shapes: batch {batch}, T {steps}, 128x128, input density {density}; device {device_text}; {threads} threads; {iters} timed steps"
    );
    println!(
        "spikecv (tch, time folded into the batch): {ours:8.2} samples/s ({seconds:.3} s/step)"
    );

    if std::env::var("BENCH_SKIP_PYTHON").is_ok_and(|v| v == "1") {
        return;
    }
    let python = std::env::var("PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/reference_step.py");
    let output = Command::new(&python)
        .arg(script)
        .args(["--batch", &batch.to_string(), "--steps", &steps.to_string()])
        .args([
            "--iters",
            &iters.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args(["--density", &density.to_string(), "--device", &device_text])
        .args(["--warmup", &warmup.to_string()])
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "reference run failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            println!("cannot run {python}: {e}");
            return;
        }
    };
    let line = String::from_utf8_lossy(&output.stdout);
    let theirs = serde_json::from_str::<serde_json::Value>(line.trim())
        .ok()
        .and_then(|v| v["samples_per_second"].as_f64())
        .expect("reference output");
    println!(
        "reference (PyTorch, loop over T):         {theirs:8.2} samples/s ({:.3} s/step)",
        batch as f64 / theirs
    );
    println!("speed-up: {:.2}x", ours / theirs);
}

//! Benchmark of the frame cache on a synthetic data set: how long building it
//! takes (all windows, as with random crop, on every core), then how many
//! samples per second batches come out of it at T = 50 (batch 8, random crops,
//! shuffled; compact rows, before the float conversion), and, for reference,
//! with the conversion to the float input on the CPU. OR and SUM.
//!
//! Run: `cargo bench -p spikecv-worker --bench frame_cache`. The default set is
//! the synthetic `small` size, 12 recordings (228 samples); set
//! `SPIKECV_CACHE_BENCH_SIZE=full` (with `SPIKECV_CACHE_BENCH_RECORDINGS=59`,
//! the default for `full`) for the full-size set, 1121 samples of 1-9 s, and
//! `SPIKECV_CACHE_BENCH_MODES=or` (default `or,sum`) to leave out SUM, whose
//! u8 rows take about 6 GB for the full set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::synth::{SynthOptions, SynthSize, generate};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::FrameSpec;
use spikecv_worker::cache::{self, CacheNeed, FrameCache, FrameSettings};
use spikecv_worker::loader::{SampleRef, samples_of};
use tch::Device;

const STEPS: usize = 50;
const BATCH: usize = 8;
const MEASURE: Duration = Duration::from_secs(3);

/// CPU seconds (user + system) of this thread or, with `process`, of the
/// whole process, from `/proc` (0 where there is none): on a shared machine
/// the wall-clock rates depend on the load, these do not.
fn cpu_seconds(process: bool) -> f64 {
    let path = if process {
        "/proc/self/stat"
    } else {
        "/proc/thread-self/stat"
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields, in clock ticks (100 per second on Linux).
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// Samples per wall second and per CPU second (this thread) of `f` over
/// shuffled, randomly cropped epochs.
fn rate(samples: &[SampleRef], mut f: impl FnMut(&[SampleRef])) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let cpu = cpu_seconds(false);
    let (started, mut done) = (Instant::now(), 0usize);
    while started.elapsed() < MEASURE {
        let mut epoch = samples.to_vec();
        epoch.shuffle(&mut rng);
        for s in &mut epoch {
            s.crop_draw = Some(rng.next_u64());
        }
        for chunk in epoch.chunks(BATCH) {
            f(chunk);
            done += chunk.len();
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(false) - cpu;
    (
        done as f64 / wall,
        if cpu > 0.0 { done as f64 / cpu } else { 0.0 },
    )
}

fn run_mode(data: &Dataset, recordings: &[String], mode: BinMode) {
    let spec = FrameSpec::dvs128(30, STEPS, mode);
    let need = CacheNeed {
        settings: FrameSettings::of(&spec),
        recordings: recordings.to_vec(),
        horizon: None,
    };
    let (started, cpu) = (Instant::now(), cpu_seconds(true));
    let cache: Arc<FrameCache> =
        Arc::new(cache::build(data, &need, Device::Cpu, u64::MAX).expect("cache build"));
    let build_s = started.elapsed().as_secs_f64();
    let build_cpu = cpu_seconds(true) - cpu;
    let samples = samples_of(recordings, 19);
    println!(
        "{mode:?}: built in {build_s:.2} s, {build_cpu:.2} CPU s ({} samples, {:.1} MB, {:?}, {} threads)",
        cache.sample_count(),
        cache.bytes() as f64 / 1e6,
        cache.storage(),
        std::thread::available_parallelism().map_or(1, |p| p.get()),
    );
    let compact = rate(&samples, |chunk| {
        let b = cache.gather(chunk, &spec).expect("gather");
        std::hint::black_box(b);
    });
    println!(
        "{mode:?}: {:.0} samples/s ({:.0} per CPU s) out of the cache at T = {STEPS} (compact rows)",
        compact.0, compact.1
    );
    let input = rate(&samples, |chunk| {
        let b = cache.gather(chunk, &spec).expect("gather");
        let _ = std::hint::black_box(b.to_input());
    });
    println!(
        "{mode:?}: {:.0} samples/s ({:.0} per CPU s) with the float conversion on the CPU",
        input.0, input.1
    );
}

fn main() {
    let size: SynthSize = std::env::var("SPIKECV_CACHE_BENCH_SIZE")
        .unwrap_or_else(|_| "small".into())
        .parse()
        .expect("SPIKECV_CACHE_BENCH_SIZE: tiny, small or full");
    let default_recordings = if size == SynthSize::Full { 59 } else { 12 };
    let recordings: usize = std::env::var("SPIKECV_CACHE_BENCH_RECORDINGS")
        .ok()
        .map(|v| v.parse().expect("SPIKECV_CACHE_BENCH_RECORDINGS: a number"))
        .unwrap_or(default_recordings);
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let summary = generate(
        dir.path(),
        &SynthOptions {
            seed: 1,
            size,
            recordings: Some(recordings),
        },
    )
    .expect("synthetic data set");
    println!(
        "synthetic {size:?}: {} recordings, {} samples, {} events, generated in {:.1} s",
        summary.recordings.len(),
        summary.samples,
        summary.events,
        started.elapsed().as_secs_f64()
    );
    let data = Dataset::open(dir.path()).expect("open data set");
    let recordings = data.recordings(Variant::WHOLE);
    let modes = std::env::var("SPIKECV_CACHE_BENCH_MODES").unwrap_or_else(|_| "or,sum".into());
    for mode in modes.split(',') {
        let mode = match mode.trim() {
            "or" => BinMode::Or,
            "sum" => BinMode::Sum,
            "sum_norm" => BinMode::SumNorm,
            other => {
                panic!("SPIKECV_CACHE_BENCH_MODES: unknown mode {other:?} (or, sum, sum_norm)")
            }
        };
        run_mode(&data, &recordings, mode);
    }
}

//! Benchmark: read + slice + bin one full-size synthetic recording (19 samples,
//! sliced as borrowed sub-slices,
//! T = 50, dt = 30 ms, OR) in Rust, beside the same pipeline in numpy + tonic
//! (`pipeline_tonic.py`, run with `$SPIKECV_PYTHON` or `.venv/bin/python`) in
//! the same run; prints both medians and the ratio.
//!
//! Like the data loader, the Rust side reuses one event buffer from recording to
//! recording (the first, untimed run allocates it).
//!
//! Run: `cargo bench -p spikecv-common --bench pipeline`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use spikecv_common::dataset::synth::{SynthSize, recording};
use spikecv_common::events::Event;
use spikecv_common::events::aedat::{self, v2};
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, FrameSpec, bin_into};
use spikecv_common::events::slicing::slice_borrowed;
use spikecv_common::events::tags;

const DT: u32 = 30;
const STEPS: usize = 50;
const REPEATS: usize = 7;

/// Read, slice and bin every sample; `check` adds up the tensors (outside the
/// timed runs) to compare with the baseline.
fn rust_pipeline(
    rec: &Path,
    tags_path: &Path,
    out: &mut [f32],
    spare: &mut Vec<Event>,
    check: bool,
) -> f64 {
    let file = aedat::read_file_reusing(rec, std::mem::take(spare)).unwrap();
    let tags = tags::read(tags_path).unwrap();
    tags::check_range(&tags, file.events.len(), tags_path).unwrap();
    let samples = slice_borrowed(&file.events, &tags);
    let spec = FrameSpec::dvs128(DT, STEPS, BinMode::Or);
    let mut total = 0.0f64;
    for s in &samples {
        bin_into(s, &spec, Crop::First, out);
        if check {
            total += out.iter().map(|&v| f64::from(v)).sum::<f64>();
        }
    }
    *spare = file.events;
    total
}

/// The same pipeline, timing each stage (read, slice, bin) once.
fn stages(rec: &Path, tags_path: &Path, out: &mut [f32], spare: &mut Vec<Event>) -> [f64; 3] {
    let t0 = Instant::now();
    let file = aedat::read_file_reusing(rec, std::mem::take(spare)).unwrap();
    let tags = tags::read(tags_path).unwrap();
    let t1 = Instant::now();
    let samples = slice_borrowed(&file.events, &tags);
    let t2 = Instant::now();
    let spec = FrameSpec::dvs128(DT, STEPS, BinMode::Or);
    for s in &samples {
        bin_into(s, &spec, Crop::First, out);
    }
    let t3 = Instant::now();
    *spare = file.events;
    [t1 - t0, t2 - t1, t3 - t2].map(|d| d.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let name = "user35_dc";
    let (events, ranges) = recording(0, 34, name, SynthSize::Full);
    let rec = dir.path().join(format!("{name}.aedat"));
    let mut w = BufWriter::new(std::fs::File::create(&rec).unwrap());
    v2::write(
        &mut w,
        &["AEChip: ch.unizh.ini.jaer.chip.retina.DVS128".into()],
        &events,
    )
    .unwrap();
    w.flush().unwrap();
    drop(w);
    let tags_path = dir.path().join(format!("{name}.csv"));
    std::fs::write(&tags_path, tags::to_csv(&ranges)).unwrap();
    let size = std::fs::metadata(&rec).unwrap().len();
    println!(
        "recording: {name} (synthetic, full size): {} events, {:.1} MB, {:.1} s; 19 samples, T={STEPS}, dt={DT} ms, OR",
        events.len(),
        size as f64 / 1e6,
        (events.last().unwrap().t - events[0].t) as f64 / 1e6
    );

    let mut out = vec![0.0f32; 2 * 128 * 128 * STEPS];
    let mut times = Vec::new();
    let mut spare = Vec::new();
    let total = rust_pipeline(&rec, &tags_path, &mut out, &mut spare, true);
    for _ in 0..REPEATS {
        let t0 = Instant::now();
        rust_pipeline(&rec, &tags_path, &mut out, &mut spare, false);
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours = median(times);
    println!(
        "rust  read+slice+bin: median {:.4} s over {REPEATS} runs (sum of tensors {total:.0})",
        ours
    );

    let [read, sl, b] = stages(&rec, &tags_path, &mut out, &mut spare);
    println!("rust  stages: read {read:.4} s, slice {sl:.4} s, bin {b:.4} s");

    let python = std::env::var_os("SPIKECV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"))
        });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pipeline_tonic.py");
    let result = std::process::Command::new(&python)
        .args([script, rec.to_str().unwrap(), tags_path.to_str().unwrap()])
        .args([DT.to_string(), STEPS.to_string(), "3".into()])
        .output();
    match result {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut parts = text.split_whitespace();
            let theirs: f64 = parts.next().unwrap().parse().unwrap();
            let their_total: f64 = parts.next().unwrap().parse().unwrap();
            println!(
                "tonic read+slice+bin: median {theirs:.4} s over 3 runs (sum of tensors {their_total:.0})"
            );
            println!(
                "speed-up: {:.1}x; same result: {}",
                theirs / ours,
                (their_total - total).abs() < 0.5
            );
        }
        Ok(o) => println!(
            "tonic baseline failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!("tonic baseline not run ({}: {e})", python.display()),
    }
}

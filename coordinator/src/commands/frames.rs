//! `coordinator data frames`: the network input of many samples in one
//! process, one float32 `[2, X, Y, T]` `.npy` per sample, binned by
//! `common::frames::bin` (the worker's uncached loader and its frame cache give
//! the same values). Recordings are read once each, on every core.
//!
//! On a DVS128 Gesture root a sample is a label row: `<recording>_<NN>` with
//! NN the row (00 the first), whatever its class; a folder output also gets
//! `samples.csv` giving each sample's row and class.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::kind::SampleCut;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::frames::{self, Crop, FrameSpec};
use spikecv_common::events::npy;
use spikecv_common::events::slicing::sample_name;
use spikecv_common::events::tags::CLASSES;
use spikecv_common::experiment::config::ExperimentConfig;

use super::data_error::{DataCmdError, stdout_err};
use super::samples::{
    RowSample, parse_row_sample, parse_sample, recording_rows, write_samples_csv,
};

/// Flags of `coordinator data frames`.
#[derive(Debug, clap::Args)]
pub struct FramesArgs {
    /// Data set root.
    #[arg(long)]
    pub data: PathBuf,
    /// Samples `<recording>_<NN>` (NN = class index 00-18; DVS128 Gesture:
    /// NN = label row, 00 the first), repeated or comma-separated; none: every
    /// sample of `--variant`.
    #[arg(long, value_delimiter = ',')]
    pub sample: Vec<String>,
    /// Without `--sample`: the recordings of this variant (whole or reduced).
    #[arg(long, default_value = "whole", conflicts_with = "sample")]
    pub variant: Variant,
    /// Experiment/training config (its dt, T = simulation.steps and bin mode).
    #[arg(long)]
    pub config: PathBuf,
    /// Windows per sample instead of `simulation.steps` (e.g. the config's
    /// `training.test_steps`; at most 10,000, the config's limit).
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=10_000), usize::from))]
    pub steps: Option<usize>,
    /// Where to write: a `.npy` file for a single `--sample`, else a folder
    /// (created) that gets `<sample>.npy` per sample (DVS128 Gesture: and
    /// `samples.csv`, each sample's recording, row and class).
    #[arg(long)]
    pub out: PathBuf,
    /// Start at window K instead of 0 (as a random crop would).
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Samples grouped by recording, recordings in first-seen order.
type Groups = Vec<(String, Vec<usize>)>;

/// The requested samples grouped by recording, recordings in first-seen
/// order; on a DVS128 Gesture root also each sample's label row and class,
/// in the order asked.
fn requested(a: &FramesArgs, ds: &Dataset) -> Result<(Groups, Vec<RowSample>), DataCmdError> {
    if ds.kind().cut() == SampleCut::TimeWindows {
        return requested_rows(a, ds);
    }
    Ok((requested_classes(a, ds)?, Vec::new()))
}

/// [`requested`] on a DVS128 Gesture root: samples are label rows.
fn requested_rows(a: &FramesArgs, ds: &Dataset) -> Result<(Groups, Vec<RowSample>), DataCmdError> {
    let mut rows: Vec<RowSample> = Vec::new();
    if a.sample.is_empty() {
        for rec in ds.recordings(a.variant) {
            rows.extend(recording_rows(ds, &rec)?);
        }
    } else {
        for name in &a.sample {
            let row = parse_row_sample(ds, name)?;
            if !rows.iter().any(|r| r.name == row.name) {
                rows.push(row);
            }
        }
    }
    let mut groups: Groups = Vec::new();
    for r in &rows {
        match groups.iter_mut().find(|(rec, _)| *rec == r.recording) {
            Some((_, indices)) => indices.push(r.row),
            None => groups.push((r.recording.clone(), vec![r.row])),
        }
    }
    Ok((groups, rows))
}

/// [`requested`] on an SL-Animals root: samples are classes.
fn requested_classes(a: &FramesArgs, ds: &Dataset) -> Result<Groups, DataCmdError> {
    if a.sample.is_empty() {
        return Ok(ds
            .recordings(a.variant)
            .into_iter()
            .map(|r| (r, (0..CLASSES).collect()))
            .collect());
    }
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for name in &a.sample {
        let (rec, class) = parse_sample(name)?;
        match groups.iter_mut().find(|(r, _)| *r == rec) {
            Some((_, classes)) if !classes.contains(&class) => classes.push(class),
            Some(_) => {}
            None => groups.push((rec, vec![class])),
        }
    }
    Ok(groups)
}

/// Bins and writes every sample of one recording; returns how many.
fn write_recording(
    ds: &Dataset,
    rec: &str,
    classes: &[usize],
    spec: &FrameSpec,
    crop: Crop,
    target: &dyn Fn(&str) -> PathBuf,
) -> Result<usize, DataCmdError> {
    let samples = ds.recording_samples(rec)?;
    let mut values = vec![0f32; spec.len()];
    for &class in classes {
        let name = sample_name(rec, class);
        let events = samples.get(class).ok_or_else(|| match ds.kind().cut() {
            SampleCut::EventIndices => DataCmdError::BadSample { name: name.clone() },
            SampleCut::TimeWindows => DataCmdError::NoSuchRow {
                sample: name.clone(),
                row: class,
                rows: samples.len(),
                labels: ds.tags_path(rec),
            },
        })?;
        frames::bin_into(events, spec, crop, &mut values);
        npy::write_f32(&target(&name), &spec.shape(), &values)?;
    }
    Ok(classes.len())
}

/// Bins and writes the samples of every group on `threads` threads, each
/// taking the next recording; stops at the first error. Returns how many
/// samples were written.
fn write_groups(
    ds: &Dataset,
    groups: &Groups,
    spec: &FrameSpec,
    crop: Crop,
    target: &(impl Fn(&str) -> PathBuf + Sync),
    threads: usize,
) -> Result<usize, DataCmdError> {
    let (next, written, stop) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicBool::new(false),
    );
    let first_error: Mutex<Option<DataCmdError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let Some((rec, classes)) = groups.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        return;
                    };
                    match write_recording(ds, rec, classes, spec, crop, target) {
                        Ok(n) => {
                            written.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(written.into_inner())
}

/// Runs `data frames`, printing one summary line to `out` (DVS128 Gesture:
/// and a line naming `samples.csv`, or for a single `.npy` the sample's row
/// and class).
pub fn run_frames(a: &FramesArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    let config = ExperimentConfig::load(&a.config)?;
    let ds = Dataset::open(&a.data)?;
    let (groups, rows) = requested(a, &ds)?;
    let spec = FrameSpec::dvs128_downscaled(
        config.simulation.dt_ms,
        a.steps.unwrap_or(config.simulation.steps as usize),
        config.training.bin_mode,
        config.data.downscale as usize,
    );
    let single_file = a.sample.len() == 1 && a.out.extension().is_some_and(|e| e == "npy");
    if !single_file {
        std::fs::create_dir_all(&a.out).map_err(|source| DataCmdError::Io {
            path: a.out.clone(),
            source,
        })?;
    }
    let target = |name: &str| {
        if single_file {
            a.out.clone()
        } else {
            a.out.join(format!("{name}.npy"))
        }
    };
    let crop = Crop::Start(a.start);
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |p| p.get()))
        .clamp(1, groups.len().max(1));
    let started = Instant::now();
    let n = write_groups(&ds, &groups, &spec, crop, &target, threads)?;
    let seconds = started.elapsed().as_secs_f64();
    let gesture_line = if ds.kind().cut() != SampleCut::TimeWindows {
        None
    } else if single_file {
        rows.first().map(|r| {
            let class_name = ds
                .class_names()
                .get(r.label.class)
                .map_or("", String::as_str);
            format!(
                "{}: label row {} of {}, class {} ({class_name})",
                r.name, r.row, r.recording, r.label.class
            )
        })
    } else {
        let csv = write_samples_csv(&ds, &a.out, &rows)?;
        Some(format!(
            "label rows and classes of the samples: {}",
            csv.display()
        ))
    };
    writeln!(
        out,
        "wrote {n} samples, float32 {:?} ({} ms windows from window {}, mode {:?}), to {} \
         in {seconds:.2} s ({:.0} samples/s, {threads} threads)",
        spec.shape(),
        spec.dt_ms,
        a.start,
        spec.mode,
        a.out.display(),
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        },
    )
    .map_err(stdout_err)?;
    if let Some(line) = gesture_line {
        writeln!(out, "{line}").map_err(stdout_err)?;
    }
    Ok(())
}

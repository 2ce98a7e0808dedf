//! `coordinator data synth|import|slice|frames|inspect|render`: tools for data sets.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::dvs_gesture::synth as gesture_synth;
use spikecv_common::dataset::dvs_gesture::{self, Label};
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::DataKind;
use spikecv_common::dataset::kind::Variant;
use spikecv_common::dataset::sl_animals::{CLASS_DEFS, FILE_LIST};
use spikecv_common::dataset::synth::{self, SynthError, SynthOptions, SynthSize};
use spikecv_common::events::aedat::{self, ReadError};
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{self, Crop, FrameSpec};
use spikecv_common::events::npy::{self, NpyError};
use spikecv_common::events::render::{self, RenderError};
use spikecv_common::events::slicing::{parse_sample_name, sample_name};
use spikecv_common::events::tags::CLASSES;
use spikecv_common::events::{Event, checksum};
use spikecv_common::experiment::error::ConfigError;

use crate::data_import::{self, ImportArgs, ImportError};

/// Flags of `coordinator data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Which data tool.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The data tools.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Generate a synthetic SL-Animals-DVS root (59 recordings × 19 gestures),
    /// or with `--kind dvs-gesture` a small DVS128 Gesture download
    /// (`<out>/DvsGesture/`, 12 recordings × 11 gestures, AEDAT 3.1).
    Synth(SynthArgs),
    /// Lay out the downloaded SL-Animals-DVS as a root: finds the recordings and
    /// tag files anywhere under DIR, checks each listed name is there once, links
    /// (or copies) them into place, then prints what `inspect` says of the root.
    /// A DIR holding `DvsGesture/` (DVS128 Gesture) becomes `ROOT/DvsGesture/`.
    Import(crate::data_import::ImportArgs),
    /// Slice every listed recording into its 19 samples (`<out>/sliced/<recording>_<NN>.npy`).
    /// DVS128 Gesture: one sample per label row (NN the row, 00 the first),
    /// and `<out>/samples.csv` gives each sample's label row and class.
    Slice(SliceArgs),
    /// Write the network input, float32 `[2, X, Y, T]`, of one sample, a list,
    /// or a whole root as .npy, one file per sample.
    Frames(super::frames::FramesArgs),
    /// Summarise an event file, a sliced sample or a data set root.
    Inspect(InspectArgs),
    /// Draw one sample's frames as a PNG (ON orange, OFF blue).
    Render(RenderArgs),
}

/// Flags of `coordinator data synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Root folder to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// tiny (CI), small, or full (realistic lengths and rates).
    #[arg(long, default_value = "tiny")]
    pub size: SynthSize,
    /// Write only N recordings, spread evenly over the file list (every set;
    /// DVS128 Gesture: the first N).
    #[arg(long)]
    pub recordings: Option<usize>,
    /// Which data set: sl-animals or dvs-gesture.
    #[arg(long, default_value = "sl-animals")]
    pub kind: DataKind,
}

/// Flags of `coordinator data slice`.
#[derive(Debug, clap::Args)]
pub struct SliceArgs {
    /// Data set root to read.
    #[arg(long)]
    pub data: PathBuf,
    /// Root to write: samples go to `<out>/sliced/`, and the file list and class
    /// definitions beside them, so `<out>` is itself a usable (sliced) root.
    /// DVS128 Gesture: `samples.csv` beside `sliced/` instead (`sample,
    /// recording, row, class, class_name, start_us, end_us`; class 0-based).
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `coordinator data inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// An event file (.aedat/.aedat4/...), a sliced sample (.npy) or a data set root.
    pub path: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `coordinator data render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Data set root.
    #[arg(long)]
    pub data: PathBuf,
    /// Sample `<recording>_<NN>`.
    #[arg(long)]
    pub sample: String,
    /// The PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Window length in ms.
    #[arg(long, default_value_t = 30)]
    pub dt_ms: u32,
    /// Frames to draw (default: every window, at most 64; at most 10,000,
    /// the config's limit on `simulation.steps`).
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=10_000), usize::from))]
    pub steps: Option<usize>,
    /// Tiles per row.
    #[arg(long, default_value_t = 8)]
    pub columns: usize,
    /// Pixel scale.
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
}

/// Why a data tool failed.
#[derive(Debug, thiserror::Error)]
pub enum DataCmdError {
    /// A data set problem.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An event file problem.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An .npy problem.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// Synthesis failed.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Importing a download failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The imported root has problems (listed in the summary above).
    #[error("{root}: imported, but `data inspect` finds {count} problem(s) (listed above)")]
    ImportedWithProblems {
        /// The root written.
        root: PathBuf,
        /// How many problems.
        count: usize,
    },
    /// A sample name that is not `<recording>_<NN>`.
    #[error("bad sample name {name:?}: expected <recording>_<NN> with NN = 00..18")]
    BadSample {
        /// What was given.
        name: String,
    },
    /// A DVS128 Gesture sample name that is not `<recording>_<NN>`.
    #[error(
        "bad sample name {name:?}: expected <recording>_<NN> with NN a row of the \
         recording's labels file, 00 the first (DVS128 Gesture)"
    )]
    BadRowName {
        /// What was given.
        name: String,
    },
    /// A sample of a recording that the trial lists do not name (DVS128 Gesture).
    #[error(
        "sample {sample:?}: recording {recording:?} is in neither {} nor {} of {dir}",
        dvs_gesture::TRAIN_LIST,
        dvs_gesture::TEST_LIST
    )]
    UnknownTrial {
        /// The sample name given.
        sample: String,
        /// Its recording.
        recording: String,
        /// The folder holding the trial lists.
        dir: PathBuf,
    },
    /// A label row past the end of a recording's labels file (DVS128 Gesture).
    #[error(
        "sample {sample:?}: {labels} has {rows} label rows, numbered from 00; there is no row {row}"
    )]
    NoSuchRow {
        /// The sample name.
        sample: String,
        /// The row asked for (0-based).
        row: usize,
        /// Rows the file has.
        rows: usize,
        /// The labels file.
        labels: PathBuf,
    },
    /// A labels file with more rows than two-digit sample names can number.
    #[error("{labels}: {rows} label rows; sample names number rows 00..{MAX_ROWS_SHOWN}")]
    TooManyRows {
        /// The labels file.
        labels: PathBuf,
        /// Rows it has.
        rows: usize,
    },
    /// Writing output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file (or `-` for stdout).
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Label rows a recording may have: sample names give the row in two digits.
pub const MAX_ROWS: usize = 100;
const MAX_ROWS_SHOWN: usize = MAX_ROWS - 1;

/// The file, beside a DVS128 Gesture output's samples, giving each sample's
/// recording, label row and class.
pub const SAMPLES_CSV: &str = "samples.csv";

/// One DVS128 Gesture sample by name: `<recording>_<NN>`, NN its label row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSample {
    /// `<recording>_<NN>`.
    pub(crate) name: String,
    /// The recording.
    pub(crate) recording: String,
    /// The label row (0-based), the sample's index in the recording.
    pub(crate) row: usize,
    /// The row's class (0-based) and time window.
    pub(crate) label: Label,
}

/// Every label row of a DVS128 Gesture recording as a sample, in row order.
pub(crate) fn recording_rows(
    ds: &Dataset,
    recording: &str,
) -> Result<Vec<RowSample>, DataCmdError> {
    let labels = ds.labels(recording)?;
    if labels.len() > MAX_ROWS {
        return Err(DataCmdError::TooManyRows {
            labels: ds.tags_path(recording),
            rows: labels.len(),
        });
    }
    Ok(labels
        .into_iter()
        .enumerate()
        .map(|(row, label)| RowSample {
            name: sample_name(recording, row),
            recording: recording.to_owned(),
            row,
            label,
        })
        .collect())
}

/// The DVS128 Gesture sample `name` (`<recording>_<NN>`, NN a label row),
/// checked against the root: a recording of its trial lists, a row of its
/// labels file.
pub(crate) fn parse_row_sample(ds: &Dataset, name: &str) -> Result<RowSample, DataCmdError> {
    let (recording, row) = parse_sample_name(name).ok_or_else(|| DataCmdError::BadRowName {
        name: name.to_owned(),
    })?;
    if !ds.recordings(Variant::Whole).iter().any(|r| r == recording) {
        return Err(DataCmdError::UnknownTrial {
            sample: name.to_owned(),
            recording: recording.to_owned(),
            dir: dvs_gesture::find_dir(ds.root()).unwrap_or_else(|| ds.root().to_path_buf()),
        });
    }
    let rows = recording_rows(ds, recording)?;
    let count = rows.len();
    rows.into_iter()
        .nth(row)
        .ok_or_else(|| DataCmdError::NoSuchRow {
            sample: name.to_owned(),
            row,
            rows: count,
            labels: ds.tags_path(recording),
        })
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// [`SAMPLES_CSV`]'s text for `samples`: `sample,recording,row,class,
/// class_name,start_us,end_us`, the class 0-based and named as the root's
/// `gesture_mapping.csv` names it.
pub(crate) fn samples_csv(ds: &Dataset, samples: &[RowSample]) -> String {
    let mut text = String::from("sample,recording,row,class,class_name,start_us,end_us\n");
    for s in samples {
        let class_name = ds
            .class_names()
            .get(s.label.class)
            .map_or("", String::as_str);
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            csv_field(&s.name),
            csv_field(&s.recording),
            s.row,
            s.label.class,
            csv_field(class_name),
            s.label.start_us,
            s.label.end_us
        ));
    }
    text
}

/// Writes [`SAMPLES_CSV`] into `dir`; returns its path.
pub(crate) fn write_samples_csv(
    ds: &Dataset,
    dir: &Path,
    samples: &[RowSample],
) -> Result<PathBuf, DataCmdError> {
    let path = dir.join(SAMPLES_CSV);
    std::fs::write(&path, samples_csv(ds, samples)).map_err(io_at(&path))?;
    Ok(path)
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DataCmdError + '_ {
    move |source| DataCmdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn stdout_err(source: std::io::Error) -> DataCmdError {
    DataCmdError::Io {
        path: PathBuf::from("-"),
        source,
    }
}

/// Runs a data tool, printing its report to `out`.
pub fn run(args: &DataArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    match &args.command {
        DataCommand::Synth(a) => run_synth(a, out),
        DataCommand::Import(a) => run_import(a, out),
        DataCommand::Slice(a) => run_slice(a, out),
        DataCommand::Frames(a) => super::frames::run_frames(a, out),
        DataCommand::Inspect(a) => run_inspect(a, out),
        DataCommand::Render(a) => run_render(a, out),
    }
}

fn run_synth(a: &SynthArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    let opts = SynthOptions {
        seed: a.seed,
        size: a.size,
        recordings: a.recordings,
    };
    let s = match a.kind {
        DataKind::SlAnimals => synth::generate(&a.out, &opts)?,
        DataKind::DvsGesture => gesture_synth::generate(&a.out, &opts)?,
    };
    writeln!(
        out,
        "wrote {} recordings, {} samples, {} events, {} bytes to {}",
        s.recordings.len(),
        s.samples,
        s.events,
        s.bytes,
        a.out.display()
    )
    .map_err(stdout_err)
}

fn run_import(a: &ImportArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    let imported = data_import::import(a)?;
    data_import::print_report(&imported, out).map_err(stdout_err)?;
    let report = inspect_root(&imported.out)?;
    print_root(&report, out).map_err(stdout_err)?;
    match report.problems.len() {
        0 => Ok(()),
        count => Err(DataCmdError::ImportedWithProblems {
            root: imported.out,
            count,
        }),
    }
}

fn run_slice(a: &SliceArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    let ds = Dataset::open(&a.data)?;
    if ds.kind() == DataKind::DvsGesture {
        return run_slice_gesture(a, &ds, out);
    }
    let dir = a.out.join("sliced");
    std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let mut samples = 0;
    for rec in ds.recordings(Variant::Whole) {
        for (class, events) in ds.recording_samples(&rec)?.iter().enumerate() {
            npy::write_events(
                &dir.join(format!("{}.npy", sample_name(&rec, class))),
                events,
            )?;
            samples += 1;
        }
    }
    for name in [FILE_LIST, CLASS_DEFS] {
        let (from, to) = (a.data.join(name), a.out.join(name));
        if from.canonicalize().ok() != to.canonicalize().ok() {
            std::fs::copy(&from, &to).map_err(io_at(&to))?;
        }
    }
    writeln!(out, "wrote {samples} samples to {}", dir.display()).map_err(stdout_err)
}

/// `data slice` of a DVS128 Gesture root: one sample per label row,
/// `<out>/sliced/<recording>_<NN>.npy` with NN the row, and
/// [`SAMPLES_CSV`] beside `sliced/` giving their rows and classes.
fn run_slice_gesture(a: &SliceArgs, ds: &Dataset, out: &mut dyn Write) -> Result<(), DataCmdError> {
    // Every labels file is checked before anything is written.
    let recordings = ds
        .recordings(Variant::Whole)
        .into_iter()
        .map(|rec| Ok((recording_rows(ds, &rec)?, rec)))
        .collect::<Result<Vec<_>, DataCmdError>>()?;
    let dir = a.out.join("sliced");
    std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let mut written = Vec::new();
    for (rows, rec) in recordings {
        // Both are the labels file's rows, in order.
        let samples = ds.recording_samples(&rec)?;
        for (row, events) in rows.into_iter().zip(samples) {
            npy::write_events(&dir.join(format!("{}.npy", row.name)), &events)?;
            written.push(row);
        }
    }
    let csv = write_samples_csv(ds, &a.out, &written)?;
    writeln!(
        out,
        "wrote {} samples to {}\nlabel rows and classes of the samples: {}",
        written.len(),
        dir.display(),
        csv.display()
    )
    .map_err(stdout_err)
}

/// `<recording>_<NN>` with NN a class index.
pub(crate) fn parse_sample(name: &str) -> Result<(String, usize), DataCmdError> {
    match parse_sample_name(name) {
        Some((rec, class)) if class < CLASSES => Ok((rec.to_string(), class)),
        _ => Err(DataCmdError::BadSample {
            name: name.to_string(),
        }),
    }
}

fn run_render(a: &RenderArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    let ds = Dataset::open(&a.data)?;
    // SL-Animals: NN is the class; DVS128 Gesture: a label row of the recording.
    let (rec, index) = match ds.kind() {
        DataKind::SlAnimals => parse_sample(&a.sample)?,
        DataKind::DvsGesture => {
            let row = parse_row_sample(&ds, &a.sample)?;
            (row.recording, row.row)
        }
    };
    let events = ds.sample_events(&rec, index)?;
    let windows = frames::window_count(&events, a.dt_ms);
    let steps = a.steps.unwrap_or(windows.clamp(1, 64));
    let spec = FrameSpec::dvs128(a.dt_ms, steps, BinMode::Sum);
    let tensor = frames::bin(&events, &spec, Crop::First);
    let image = render::draw(&tensor, &spec, a.columns, a.scale)?;
    render::write_png(&image, &a.out)?;
    writeln!(
        out,
        "wrote {} ({} frames of {} ms, {}x{} px) to {}",
        a.sample,
        steps,
        a.dt_ms,
        image.width,
        image.height,
        a.out.display()
    )
    .map_err(stdout_err)
}

/// Summary of one event sequence.
#[derive(Debug, Serialize)]
struct EventStats {
    events: usize,
    duration_s: f64,
    rate_per_s: f64,
    on_fraction: f64,
    first: Option<[i64; 4]>,
    last: Option<[i64; 4]>,
    checksum: String,
}

fn stats(events: &[Event]) -> EventStats {
    let duration_us = match (events.first(), events.last()) {
        (Some(f), Some(l)) => (l.t - f.t) as f64,
        _ => 0.0,
    };
    let duration_s = duration_us / 1e6;
    let as_row = |e: &Event| [e.t, i64::from(e.x), i64::from(e.y), i64::from(e.p)];
    EventStats {
        events: events.len(),
        duration_s,
        rate_per_s: if duration_s > 0.0 {
            events.len() as f64 / duration_s
        } else {
            0.0
        },
        on_fraction: if events.is_empty() {
            0.0
        } else {
            events.iter().filter(|e| e.p).count() as f64 / events.len() as f64
        },
        first: events.first().map(as_row),
        last: events.last().map(as_row),
        checksum: format!("{:016x}", checksum(events)),
    }
}

/// `inspect` of one file.
#[derive(Debug, Serialize)]
struct FileReport {
    path: PathBuf,
    format: String,
    sensor: Option<[u16; 2]>,
    chip: Option<String>,
    timestamp_wraps: u32,
    #[serde(flatten)]
    stats: EventStats,
}

/// Per-class sample durations over the recordings.
#[derive(Debug, Serialize)]
struct ClassDurations {
    class: String,
    samples: usize,
    mean_s: f64,
    min_s: f64,
    max_s: f64,
}

/// `inspect` of a root.
#[derive(Debug, Serialize)]
struct RootReport {
    root: PathBuf,
    kind: DataKind,
    recordings: usize,
    people: usize,
    recordings_reduced: usize,
    samples: usize,
    events: u64,
    duration_s: f64,
    rate_per_s: f64,
    fingerprint: String,
    classes: Vec<ClassDurations>,
    problems: Vec<String>,
}

fn run_inspect(a: &InspectArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    if a.path.is_dir() {
        let report = inspect_root(&a.path)?;
        if a.json {
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            writeln!(out, "{text}").map_err(stdout_err)
        } else {
            print_root(&report, out).map_err(stdout_err)
        }
    } else {
        let report = inspect_file(&a.path)?;
        if a.json {
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            writeln!(out, "{text}").map_err(stdout_err)
        } else {
            print_file(&report, out).map_err(stdout_err)
        }
    }
}

fn inspect_file(path: &Path) -> Result<FileReport, DataCmdError> {
    let is_npy = path.extension().is_some_and(|e| e == "npy");
    if is_npy {
        let events = npy::read_events(path)?;
        return Ok(FileReport {
            path: path.to_path_buf(),
            format: "npy (sliced sample)".into(),
            sensor: None,
            chip: None,
            timestamp_wraps: 0,
            stats: stats(&events),
        });
    }
    let f = aedat::read_file(path)?;
    Ok(FileReport {
        path: path.to_path_buf(),
        format: f.format.to_string(),
        sensor: Some([f.sensor.width, f.sensor.height]),
        chip: f.header.chip.clone(),
        timestamp_wraps: f.timestamp_wraps,
        stats: stats(&f.events),
    })
}

fn print_file(r: &FileReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "file:       {}", r.path.display())?;
    writeln!(out, "format:     {}", r.format)?;
    if let Some([w, h]) = r.sensor {
        writeln!(out, "sensor:     {w}x{h}")?;
    }
    if let Some(chip) = &r.chip {
        writeln!(out, "chip:       {chip}")?;
    }
    writeln!(out, "events:     {}", r.stats.events)?;
    writeln!(out, "duration:   {:.3} s", r.stats.duration_s)?;
    writeln!(out, "rate:       {:.0} events/s", r.stats.rate_per_s)?;
    writeln!(out, "ON share:   {:.3}", r.stats.on_fraction)?;
    writeln!(out, "first:      {:?} (t us, x, y, p)", r.stats.first)?;
    writeln!(out, "last:       {:?}", r.stats.last)?;
    writeln!(out, "ts wraps:   {}", r.timestamp_wraps)?;
    writeln!(out, "checksum:   {}", r.stats.checksum)
}

fn inspect_root(root: &Path) -> Result<RootReport, DataCmdError> {
    let ds = Dataset::open(root)?;
    let names = ds.recordings(Variant::Whole);
    let mut durations: Vec<Vec<f64>> = vec![Vec::new(); ds.class_names().len()];
    let mut problems = Vec::new();
    let (mut events, mut duration_s, mut samples) = (0u64, 0.0f64, 0usize);
    for rec in &names {
        match ds.labelled_samples(rec) {
            Ok(list) => {
                for (i, (c, s)) in list.iter().enumerate() {
                    let c = *c;
                    samples += 1;
                    events += s.len() as u64;
                    let d = match (s.first(), s.last()) {
                        (Some(f), Some(l)) => (l.t - f.t) as f64 / 1e6,
                        _ => 0.0,
                    };
                    duration_s += d;
                    if let Some(list) = durations.get_mut(c) {
                        list.push(d);
                    }
                    if s.is_empty() {
                        problems.push(format!("{}: empty sample", sample_name(rec, i)));
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let classes = ds
        .class_names()
        .iter()
        .zip(&durations)
        .map(|(name, d)| ClassDurations {
            class: name.clone(),
            samples: d.len(),
            mean_s: if d.is_empty() {
                0.0
            } else {
                d.iter().sum::<f64>() / d.len() as f64
            },
            min_s: d.iter().copied().reduce(f64::min).unwrap_or(0.0),
            max_s: d.iter().copied().fold(0.0, f64::max),
        })
        .collect();
    Ok(RootReport {
        root: root.to_path_buf(),
        kind: ds.kind(),
        recordings: names.len(),
        people: ds.description().people.len(),
        recordings_reduced: ds.recordings(Variant::Reduced).len(),
        samples,
        events,
        duration_s,
        rate_per_s: if duration_s > 0.0 {
            events as f64 / duration_s
        } else {
            0.0
        },
        fingerprint: ds.fingerprint()?,
        classes,
        problems,
    })
}

fn print_root(r: &RootReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "root:        {}", r.root.display())?;
    if r.kind == DataKind::SlAnimals {
        writeln!(
            out,
            "recordings:  {} ({} without _indoor)",
            r.recordings, r.recordings_reduced
        )?;
    } else {
        writeln!(out, "kind:        {}", r.kind)?;
        writeln!(out, "recordings:  {}", r.recordings)?;
    }
    writeln!(out, "people:      {}", r.people)?;
    writeln!(out, "classes:     {}", r.classes.len())?;
    writeln!(out, "samples:     {}", r.samples)?;
    writeln!(out, "events:      {} (in samples)", r.events)?;
    writeln!(out, "duration:    {:.1} s (sum of samples)", r.duration_s)?;
    writeln!(out, "rate:        {:.0} events/s", r.rate_per_s)?;
    writeln!(out, "fingerprint: {}", r.fingerprint)?;
    writeln!(out, "per-class sample durations (s):")?;
    for c in &r.classes {
        writeln!(
            out,
            "  {:<10} n={:<3} mean {:.3}  min {:.3}  max {:.3}",
            c.class, c.samples, c.mean_s, c.min_s, c.max_s
        )?;
    }
    if r.problems.is_empty() {
        writeln!(out, "problems:    none")
    } else {
        writeln!(out, "problems:    {}", r.problems.len())?;
        r.problems.iter().try_for_each(|p| writeln!(out, "  {p}"))
    }
}

//! `coordinator data synth|import|slice|frames|inspect|render`: tools for data sets.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::import::by_kind::import;
use spikecv_common::dataset::import::{ClassDefsSource, ImportOptions, ImportReport, list_paths};
use spikecv_common::dataset::kind::{DataKind, SampleCut};
use spikecv_common::dataset::synth::{SynthOptions, SynthSize};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::aedat;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{self, Crop, FrameSpec};
use spikecv_common::events::npy;
use spikecv_common::events::render;
use spikecv_common::events::slicing::sample_name;
use spikecv_common::events::{Event, checksum};

use super::data_error::{DataCmdError, io_at, stdout_err};
use super::samples::{parse_row_sample, parse_sample, recording_rows, write_samples_csv};

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
    Import(ImportArgs),
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
    /// Which data set kind (the default kind when left out).
    #[arg(long, default_value_t = DataKind::default())]
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

/// Flags of `coordinator data import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The downloaded data set: a folder holding the `.aedat` recordings and tag
    /// `.csv` files anywhere below it.
    pub dir: PathBuf,
    /// The root to write (created if missing; must not lie inside DIR).
    #[arg(long)]
    pub out: PathBuf,
    /// Copy the files instead of hard-linking them.
    #[arg(long)]
    pub copy: bool,
    /// Import the recordings that are complete and leave the others out of
    /// `filelist.txt` instead of failing (doubled names still fail).
    #[arg(long)]
    pub allow_missing: bool,
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
    let s = a.kind.synth(&a.out, &opts)?;
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
    let imported = import(&ImportOptions {
        dir: a.dir.clone(),
        out: a.out.clone(),
        copy: a.copy,
        allow_missing: a.allow_missing,
    })?;
    print_import(&imported, out).map_err(stdout_err)?;
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

/// Writes what an import did, for people.
fn print_import(r: &ImportReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "imported {} recordings into {} ({} files hard-linked, {} copied, {} already there)",
        r.recordings.len(),
        r.out.display(),
        r.linked,
        r.copied,
        r.kept
    )?;
    match &r.class_defs {
        ClassDefsSource::Found(p) => writeln!(out, "class definitions: {}", p.display())?,
        ClassDefsSource::BuiltIn => writeln!(out, "class definitions: built-in (none found)")?,
    }
    if !r.left_out.is_empty() {
        writeln!(
            out,
            "left out (--allow-missing): {}; missing: {}",
            r.left_out.join(", "),
            r.missing.join(", ")
        )?;
    }
    if !r.unexpected.is_empty() {
        writeln!(
            out,
            "unexpected (not in the file list, ignored): {}",
            list_paths(&r.unexpected)
        )?;
    }
    writeln!(out)
}

fn run_slice(a: &SliceArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    let ds = Dataset::open(&a.data)?;
    if ds.kind().cut() == SampleCut::TimeWindows {
        return run_slice_gesture(a, &ds, out);
    }
    let dir = a.out.join("sliced");
    std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let mut samples = 0;
    for rec in ds.recordings(Variant::WHOLE) {
        for (class, events) in ds.recording_samples(&rec)?.iter().enumerate() {
            npy::write_events(
                &dir.join(format!("{}.npy", sample_name(&rec, class))),
                events,
            )?;
            samples += 1;
        }
    }
    for from in ds.kind().metadata_files(&a.data) {
        let to = a.out.join(from.strip_prefix(&a.data).unwrap_or(&from));
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
        .recordings(Variant::WHOLE)
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

fn run_render(a: &RenderArgs, out: &mut dyn Write) -> Result<(), DataCmdError> {
    let ds = Dataset::open(&a.data)?;
    // SL-Animals: NN is the class; DVS128 Gesture: a label row of the recording.
    let (rec, index) = match ds.kind().cut() {
        SampleCut::EventIndices => parse_sample(&a.sample)?,
        SampleCut::TimeWindows => {
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

/// How many recordings a variant keeps.
#[derive(Debug, Serialize)]
struct VariantCount {
    variant: Variant,
    recordings: usize,
}

/// `inspect` of a root.
#[derive(Debug, Serialize)]
struct RootReport {
    root: PathBuf,
    kind: DataKind,
    recordings: usize,
    people: usize,
    /// Recordings each of the kind's variants keeps, `whole` first.
    variants: Vec<VariantCount>,
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
    let names = ds.recordings(Variant::WHOLE);
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
        variants: ds
            .kind()
            .variants()
            .iter()
            .map(|&variant| VariantCount {
                variant,
                recordings: ds.recordings(variant).len(),
            })
            .collect(),
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
    if !r.kind.is_default() {
        writeln!(out, "kind:        {}", r.kind)?;
    }
    // Variants with a note say how many recordings they keep (SL-Animals'
    // reduced set: "59 (41 without _indoor)").
    let noted: String = r
        .variants
        .iter()
        .filter_map(|c| Some(format!(" ({} {})", c.recordings, c.variant.note()?)))
        .collect();
    writeln!(out, "recordings:  {}{noted}", r.recordings)?;
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

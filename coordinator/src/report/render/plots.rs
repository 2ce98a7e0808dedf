//! Plots written beside a report, each as SVG and PNG:
//!
//! - `learning-<variant>-<protocol>`: train loss and validation accuracy per
//!   epoch of every job (thin, coloured by fold), with the mean across folds of
//!   each seed drawn over them (thick);
//! - `test-accuracy-<protocol>`: test accuracy per fold and variant (mean over
//!   seeds, error bars: population std over seeds), and over all folds;
//! - `confusion-<variant>-<protocol>`: the confusion matrix summed over folds
//!   and seeds, with the class names;
//! - in a sweep, `configurations-<variant>-<protocol>` (see [`super::plots_sweep`]);
//!   the learning and confusion plots are per configuration
//!   (`learning-c<i>-...`), the bar chart shows the baseline.
//!
//! Text is drawn with DejaVu Sans embedded from the `dejavu` crate, so nothing
//! depends on the fonts of the machine. PNGs are encoded with the `png` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::sections::ProtocolKind;

use super::plots_sweep::{CONFIGURATIONS_SIZE, draw_configurations};
use crate::report::compute::compare::Ranking;
use crate::report::compute::groups::GroupReport;
use crate::report::compute::report::Report;
use crate::store::records::JobRecord;

/// Size of a learning-curve plot in pixels.
pub const LEARNING_SIZE: (u32, u32) = (1400, 560);
/// Size of the test-accuracy bar chart in pixels.
pub const BARS_SIZE: (u32, u32) = (1000, 600);
/// Size of a confusion-matrix plot in pixels.
pub const CONFUSION_SIZE: (u32, u32) = (1000, 1000);

const FONT: &str = "sans-serif";
/// Pixels a confusion matrix's label area needs besides its longest class
/// name: the gap to the matrix and the axis description.
const LABEL_ROOM: u32 = 40;

/// A plot that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be loaded.
    #[error("cannot load the embedded DejaVu Sans font for plots")]
    Font,
    /// Drawing failed.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// The drawing library's message.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// PNG encoding failed.
    #[error("cannot encode {path}: {source}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        source: png::EncodingError,
    },
}

/// A plot file that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotFile {
    /// Where it is.
    pub path: PathBuf,
    /// Width in pixels (SVG: user units).
    pub width: u32,
    /// Height in pixels (SVG: user units).
    pub height: u32,
}

fn register_fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// What one plot shows.
enum Plot<'a> {
    Learning {
        group: &'a GroupReport,
        jobs: Vec<&'a JobRecord>,
    },
    Bars {
        protocol: ProtocolKind,
        groups: Vec<&'a GroupReport>,
    },
    Confusion {
        group: &'a GroupReport,
        class_names: &'a [String],
    },
    Configurations {
        ranking: &'a Ranking,
    },
}

impl Plot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        match self {
            Plot::Learning { group, jobs } => draw_learning(root, group, jobs),
            Plot::Bars { protocol, groups } => draw_bars(root, *protocol, groups),
            Plot::Confusion { group, class_names } => draw_confusion(root, group, class_names),
            Plot::Configurations { ranking } => draw_configurations(root, ranking, FONT),
        }
    }
}

/// Writes every plot of the report into `out_dir` (created if missing) as SVG
/// and PNG; returns the files in the order written.
pub fn write_plots(report: &Report, out_dir: &Path) -> Result<Vec<PlotFile>, PlotError> {
    register_fonts()?;
    std::fs::create_dir_all(out_dir).map_err(|source| PlotError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let mut plots: Vec<(String, (u32, u32), Plot<'_>)> = Vec::new();
    // In a sweep each configuration's plots carry its index; the bar chart
    // shows the baseline, and the comparison plot every configuration.
    let sweep = report.sweep.as_ref();
    let tag = |g: &GroupReport| {
        if sweep.is_some() {
            format!("c{}-", g.configuration)
        } else {
            String::new()
        }
    };
    let baseline = sweep.and_then(|s| s.baseline).unwrap_or(0);
    for g in &report.groups {
        let jobs = report
            .jobs
            .iter()
            .filter(|j| {
                j.variant == g.variant
                    && j.protocol == g.protocol
                    && j.configuration == g.configuration
            })
            .collect();
        plots.push((
            format!("learning-{}{}-{}", tag(g), g.variant, g.protocol),
            LEARNING_SIZE,
            Plot::Learning { group: g, jobs },
        ));
    }
    for protocol in ProtocolKind::ALL {
        let groups: Vec<&GroupReport> = report
            .groups
            .iter()
            .filter(|g| g.protocol == protocol && g.configuration == baseline)
            .collect();
        if !groups.is_empty() {
            plots.push((
                format!("test-accuracy-{protocol}"),
                BARS_SIZE,
                Plot::Bars { protocol, groups },
            ));
        }
    }
    for g in &report.groups {
        plots.push((
            format!("confusion-{}{}-{}", tag(g), g.variant, g.protocol),
            CONFUSION_SIZE,
            Plot::Confusion {
                group: g,
                class_names: &report.experiment.class_names,
            },
        ));
    }
    for ranking in sweep.iter().flat_map(|s| &s.rankings) {
        plots.push((
            format!("configurations-{}-{}", ranking.variant, ranking.protocol),
            CONFIGURATIONS_SIZE,
            Plot::Configurations { ranking },
        ));
    }
    let mut files = Vec::new();
    for (stem, size, plot) in &plots {
        files.push(write_svg(
            &out_dir.join(format!("{stem}.svg")),
            *size,
            plot,
        )?);
        files.push(write_png(
            &out_dir.join(format!("{stem}.png")),
            *size,
            plot,
        )?);
    }
    Ok(files)
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn write_svg(path: &Path, size: (u32, u32), plot: &Plot<'_>) -> Result<PlotFile, PlotError> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        plot.draw(&root).map_err(|e| draw_error(path, e))?;
        root.present().map_err(|e| draw_error(path, e))?;
    }
    std::fs::write(path, text).map_err(|source| PlotError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(PlotFile {
        path: path.to_owned(),
        width: size.0,
        height: size.1,
    })
}

fn write_png(path: &Path, size: (u32, u32), plot: &Plot<'_>) -> Result<PlotFile, PlotError> {
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        plot.draw(&root).map_err(|e| draw_error(path, e))?;
        root.present().map_err(|e| draw_error(path, e))?;
    }
    let file = std::fs::File::create(path).map_err(|source| PlotError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), size.0, size.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let encode = |source| PlotError::Encode {
        path: path.to_owned(),
        source,
    };
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(&pixels).map_err(encode)?;
    writer.finish().map_err(encode)?;
    Ok(PlotFile {
        path: path.to_owned(),
        width: size.0,
        height: size.1,
    })
}

/// Colours of folds (thin lines, bars) and of seed means (thick lines).
const FOLD_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
const MEAN_COLOURS: [RGBColor; 4] = [
    RGBColor(0, 0, 0),
    RGBColor(90, 90, 90),
    RGBColor(120, 60, 0),
    RGBColor(0, 70, 120),
];

fn fold_colour(fold: u32) -> RGBColor {
    FOLD_COLOURS[fold as usize % FOLD_COLOURS.len()]
}

fn protocol_title(protocol: ProtocolKind) -> String {
    if protocol == ProtocolKind::TrainTest {
        format!("{protocol} (optimistic)")
    } else {
        protocol.to_string()
    }
}

/// Mean over the jobs of each epoch's value, for epochs some job has.
fn epoch_mean(
    jobs: &[&JobRecord],
    value: impl Fn(&EpochMetrics) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut sums: BTreeMap<u32, (f64, usize)> = BTreeMap::new();
    for j in jobs {
        for e in &j.epochs {
            if let Some(v) = value(e) {
                let s = sums.entry(e.epoch).or_default();
                s.0 += v;
                s.1 += 1;
            }
        }
    }
    sums.into_iter()
        .map(|(epoch, (sum, n))| (f64::from(epoch), sum / n as f64))
        .collect()
}

/// A chart of a plot: both axes continuous.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The value a learning panel draws of one epoch.
type EpochValue<'a> = &'a dyn Fn(&EpochMetrics) -> Option<f64>;

/// One panel of the learning-curve plot.
struct Panel<'a, DB: DrawingBackend> {
    area: &'a DrawingArea<DB, Shift>,
    label: &'a str,
    y_max: f64,
    value: EpochValue<'a>,
    legend_at: SeriesLabelPosition,
}

/// The jobs a learning-curve plot draws, and what its panels share.
struct Curves<'a> {
    jobs: &'a [&'a JobRecord],
    /// The jobs' seeds, ascending.
    seeds: Vec<u64>,
    /// The x axis' last epoch (at least 2).
    max_epoch: u32,
}

impl<'a> Curves<'a> {
    fn of(jobs: &'a [&'a JobRecord]) -> Self {
        let mut seeds: Vec<u64> = jobs.iter().map(|j| j.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let max_epoch = jobs
            .iter()
            .flat_map(|j| j.epochs.iter().map(|e| e.epoch))
            .max()
            .unwrap_or(1)
            .max(2);
        Self {
            jobs,
            seeds,
            max_epoch,
        }
    }

    /// The loss axis' top: 5 % above the largest finite train loss (1 without one).
    fn loss_top(&self) -> f64 {
        let max_loss = self
            .jobs
            .iter()
            .flat_map(|j| j.epochs.iter().map(|e| e.train_loss))
            .filter(|x| x.is_finite())
            .fold(0.0f64, f64::max);
        if max_loss > 0.0 { max_loss * 1.05 } else { 1.0 }
    }
}

/// Draws `text` in grey in the middle of `area`: a plot without data yet.
fn draw_note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str) -> DrawResult<DB> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        text,
        (w as i32 / 2, h as i32 / 2),
        (FONT, 20)
            .into_font()
            .color(&RGBColor(120, 120, 120))
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))
}

fn draw_learning<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    group: &GroupReport,
    jobs: &[&JobRecord],
) -> DrawResult<DB> {
    let title = format!(
        "Learning curves: {} set, {}",
        group.variant,
        protocol_title(group.protocol)
    );
    let root = root.titled(&title, (FONT, 24).into_font().style(FontStyle::Bold))?;
    let areas = root.split_evenly((1, 2));
    let curves = Curves::of(jobs);
    let use_val = group.protocol == ProtocolKind::TrainValTest;
    let acc_label = if use_val {
        "validation accuracy (%)"
    } else {
        "test accuracy (%), optimistic protocol"
    };
    let acc_of = move |e: &EpochMetrics| {
        if use_val {
            e.val_accuracy
        } else {
            e.test_accuracy
        }
        .map(|a| a * 100.0)
    };
    let loss_of = |e: &EpochMetrics| Some(e.train_loss).filter(|x| x.is_finite());
    // Loss falls (its upper right is empty), accuracy rises (its upper left is).
    let panels = [
        Panel {
            area: &areas[0],
            label: "train loss",
            y_max: curves.loss_top(),
            value: &loss_of,
            legend_at: SeriesLabelPosition::UpperRight,
        },
        Panel {
            area: &areas[1],
            label: acc_label,
            y_max: 100.0,
            value: &acc_of,
            legend_at: SeriesLabelPosition::UpperLeft,
        },
    ];
    for panel in panels {
        draw_panel(panel, &curves)?;
    }
    Ok(())
}

/// One panel of the learning curves: its axes, then (with epoch metrics)
/// each job's curve, each seed's mean and the legend.
fn draw_panel<DB: DrawingBackend>(panel: Panel<'_, DB>, curves: &Curves<'_>) -> DrawResult<DB> {
    let y_max = panel.y_max;
    let mut chart = ChartBuilder::on(panel.area)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(1.0..f64::from(curves.max_epoch), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(panel.label)
        .x_labels(10)
        .x_label_formatter(&integer_label)
        .y_label_formatter(&|y| {
            if y_max == 100.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.3}")
            }
        })
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    if curves.jobs.iter().all(|j| j.epochs.is_empty()) {
        return draw_note(panel.area, "no epoch metrics yet");
    }
    draw_job_curves(&mut chart, curves.jobs, panel.value)?;
    draw_seed_means(&mut chart, curves, panel.value)?;
    chart
        .configure_series_labels()
        .position(panel.legend_at)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
}

/// Each job's curve, thin and coloured by fold; the first of each fold
/// labelled.
fn draw_job_curves<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    jobs: &[&JobRecord],
    get: EpochValue<'_>,
) -> DrawResult<DB> {
    let mut folds_seen = std::collections::BTreeSet::new();
    for j in jobs {
        let points: Vec<(f64, f64)> = j
            .epochs
            .iter()
            .filter_map(|e| get(e).map(|v| (f64::from(e.epoch), v)))
            .collect();
        let colour = fold_colour(j.fold);
        let series = chart.draw_series(LineSeries::new(points, colour.mix(0.6).stroke_width(2)))?;
        if folds_seen.insert(j.fold) {
            series
                .label(format!("fold {}", j.fold))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
    }
    Ok(())
}

/// Each seed's mean over its folds, thick.
fn draw_seed_means<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    curves: &Curves<'_>,
    get: EpochValue<'_>,
) -> DrawResult<DB> {
    for (i, seed) in curves.seeds.iter().enumerate() {
        let of_seed: Vec<&JobRecord> = curves
            .jobs
            .iter()
            .copied()
            .filter(|j| j.seed == *seed)
            .collect();
        let colour = MEAN_COLOURS[i % MEAN_COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                epoch_mean(&of_seed, get),
                colour.stroke_width(3),
            ))?
            .label(format!("mean over folds, seed {seed}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    Ok(())
}

/// Labels whole numbers only (epochs), leaving fractional ticks blank.
fn integer_label(x: &f64) -> String {
    let k = x.round();
    if (x - k).abs() < 1e-6 {
        format!("{k:.0}")
    } else {
        String::new()
    }
}

/// Bar colour of a variant: the fold palette in the variants'
/// rank order (whole first, then the kind's own).
fn variant_colour(v: Variant) -> RGBColor {
    FOLD_COLOURS[usize::from(v.rank()) % FOLD_COLOURS.len()]
}

/// One bar of the bar chart, in chart coordinates (percent).
struct Bar {
    left: f64,
    right: f64,
    mean: f64,
    std: Option<f64>,
    count: usize,
    planned: usize,
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    protocol: ProtocolKind,
    groups: &[&GroupReport],
) -> DrawResult<DB> {
    let title = format!("Test accuracy per fold: {}", protocol_title(protocol));
    let root = root.titled(&title, (FONT, 24).into_font().style(FontStyle::Bold))?;
    let folds = groups.iter().map(|g| g.per_fold.len()).max().unwrap_or(0);
    let mut chart = bars_chart(&root, folds)?;
    let n = groups.len().max(1) as f64;
    let width = 0.8 / n;
    for (i, g) in groups.iter().enumerate() {
        let colour = variant_colour(g.variant);
        let bars = group_bars(g, folds, width * i as f64, width);
        chart
            .draw_series(
                bars.iter()
                    .map(|b| Rectangle::new([(b.left, 0.0), (b.right, b.mean)], colour.filled())),
            )?
            .label(bars_legend(g))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        for b in &bars {
            draw_bar_marks(&mut chart, b)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    Ok(())
}

/// The bar chart's axes: one category per fold, then all folds.
fn bars_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    folds: usize,
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let categories = folds + 1;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..(categories as f64 - 0.5), 0.0..100.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(categories + 1)
        .x_label_formatter(&|x| {
            let k = x.round();
            if (x - k).abs() > 1e-6 || k < 0.0 {
                String::new()
            } else if (k as usize) < folds {
                format!("fold {k}")
            } else {
                "all folds".to_owned()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("test accuracy (%)")
        .x_desc("bars: mean over seeds (all folds: over every job); error bars: population std; n: jobs behind the bar / planned")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    Ok(chart)
}

/// The bars of one group: one per fold with a result, then all folds; each
/// `offset` right of its category's left edge, `width` wide less a gap.
fn group_bars(g: &GroupReport, folds: usize, offset: f64, width: f64) -> Vec<Bar> {
    let mut bars = Vec::new();
    for (c, m) in g
        .per_fold
        .iter()
        .map(|f| &f.test_accuracy)
        .chain(std::iter::once(&g.test_accuracy))
        .enumerate()
    {
        let centre = if c < g.per_fold.len() { c } else { folds } as f64;
        let x0 = centre - 0.4 + offset;
        if let Some(mean) = m.mean {
            bars.push(Bar {
                left: x0,
                right: x0 + width * 0.9,
                mean: mean * 100.0,
                std: m.std_population.filter(|_| m.count > 1).map(|s| s * 100.0),
                count: m.count,
                planned: m.planned,
            });
        }
    }
    bars
}

/// A group's legend entry: its variant and jobs, flagged when partial.
fn bars_legend(g: &GroupReport) -> String {
    if g.succeeded < g.planned {
        format!(
            "{} set (partial: {} of {} jobs)",
            g.variant, g.succeeded, g.planned
        )
    } else {
        format!("{} set ({} jobs)", g.variant, g.planned)
    }
}

/// A bar's error bar (with two values or more), its mean above it and its
/// jobs at its foot.
fn draw_bar_marks<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, b: &Bar) -> DrawResult<DB> {
    let centre = (b.left + b.right) / 2.0;
    let cap = (b.right - b.left) * 0.2;
    if let Some(sd) = b.std {
        let (lo, hi) = ((b.mean - sd).max(0.0), (b.mean + sd).min(100.0));
        let style = BLACK.stroke_width(2);
        chart.draw_series([
            PathElement::new(vec![(centre, lo), (centre, hi)], style),
            PathElement::new(vec![(centre - cap, lo), (centre + cap, lo)], style),
            PathElement::new(vec![(centre - cap, hi), (centre + cap, hi)], style),
        ])?;
    }
    let top = b.mean + b.std.unwrap_or(0.0);
    chart.draw_series([
        Text::new(
            format!("{:.1}", b.mean),
            (centre, (top + 1.5).min(99.0)),
            TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)),
        ),
        Text::new(
            format!("n={}/{}", b.count, b.planned),
            (centre, 1.5),
            (FONT, 13)
                .into_font()
                .color(&WHITE)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        ),
    ])?;
    Ok(())
}

fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    group: &GroupReport,
    class_names: &[String],
) -> DrawResult<DB> {
    let title = format!(
        "Confusion matrix: {} set, {}, summed over {} jobs",
        group.variant,
        protocol_title(group.protocol),
        group.confusion_jobs
    );
    let titled = root.titled(&title, (FONT, 22).into_font().style(FontStyle::Bold))?;
    let Some(matrix) = &group.confusion else {
        return draw_note(&titled, "no confusion matrix yet");
    };
    let n = matrix.len();
    let names: Vec<String> = (0..n)
        .map(|i| match class_names.get(i) {
            Some(name) if class_names.len() == n => name.clone(),
            _ => format!("class {i}"),
        })
        .collect();
    // Room below and beside the matrix for the longest class name (DVS128
    // Gesture's run to 27 characters) and the axis description; never less
    // than the areas SL-Animals-DVS' short names have always had.
    let longest = names
        .iter()
        .filter_map(|name| root.estimate_text_size(name, &class_label()).ok())
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0);
    let nf = n.max(1) as f64;
    let mut chart = ChartBuilder::on(&titled)
        .margin_top(10)
        .margin_right(30)
        .margin_left(12)
        .x_label_area_size(110.max(longest + LABEL_ROOM))
        .y_label_area_size(120.max(longest + LABEL_ROOM))
        .build_cartesian_2d(0.0..nf, 0.0..nf)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc("predicted class (cell colour: share of the true class's test samples)")
        .y_desc("true class")
        .axis_desc_style((FONT, 17))
        .draw()?;
    draw_cells(&mut chart, matrix)?;
    draw_class_names(root, &chart, &names)
}

/// The font of a class name beside or below the matrix.
fn class_label() -> TextStyle<'static> {
    (FONT, 16.0).into_font().color(&BLACK)
}

/// Each cell of `matrix` (row: true class, from the top), coloured by its
/// share of the row, with its count when not 0.
fn draw_cells<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    matrix: &[Vec<u64>],
) -> DrawResult<DB> {
    let nf = matrix.len().max(1) as f64;
    let cell_px = {
        let (x0, _) = chart.backend_coord(&(0.0, 0.0));
        let (x1, _) = chart.backend_coord(&(1.0, 0.0));
        (x1 - x0).max(1)
    };
    let count_size = f64::from(cell_px).clamp(6.0, 40.0) * 0.36;
    for (i, row) in matrix.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (j, &count) in row.iter().enumerate() {
            let share = if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            };
            let fill = RGBColor(
                (255.0 - share * 247.0) as u8,
                (255.0 - share * 207.0) as u8,
                (255.0 - share * 148.0) as u8,
            );
            // Row i (true class) from the top.
            let y_top = nf - i as f64;
            let x = j as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y_top - 1.0), (x + 1.0, y_top)],
                fill.filled(),
            )))?;
            if count > 0 {
                let colour = if share > 0.5 { WHITE } else { BLACK };
                chart.draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (x + 0.5, y_top - 0.5),
                    (FONT, count_size)
                        .into_font()
                        .color(&colour)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )))?;
            }
        }
    }
    Ok(())
}

/// The class names on `root`: below each column (rotated) and beside each row.
fn draw_class_names<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    names: &[String],
) -> DrawResult<DB> {
    let nf = names.len().max(1) as f64;
    for (k, name) in names.iter().enumerate() {
        let centre = k as f64 + 0.5;
        let (px, py) = chart.backend_coord(&(centre, 0.0));
        root.draw(&Text::new(
            name.clone(),
            (px, py + 6),
            class_label()
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        let (qx, qy) = chart.backend_coord(&(0.0, nf - centre));
        root.draw(&Text::new(
            name.clone(),
            (qx - 6, qy),
            class_label().pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    Ok(())
}

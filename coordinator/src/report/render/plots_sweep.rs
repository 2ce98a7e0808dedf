//! The sweep's plot: `configurations-<variant>-<protocol>`, mean test
//! accuracy of every configuration in ranking order with population-std error
//! bars, the baseline drawn in its own colour and named as such.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::compute::compare::{RankBasis, Ranking};

/// Size of a configuration comparison plot in pixels.
pub const CONFIGURATIONS_SIZE: (u32, u32) = (1100, 600);

const BASELINE_COLOUR: RGBColor = RGBColor(90, 90, 90);
const CANDIDATE_COLOUR: RGBColor = RGBColor(31, 119, 180);

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws `ranking` on `root` with the font family `font`.
pub fn draw_configurations<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    ranking: &Ranking,
    font: &str,
) -> DrawResult<DB> {
    let basis = match ranking.ranked_by {
        RankBasis::Validation => "ranked by validation accuracy",
        RankBasis::TestOptimistic => "optimistic: epoch chosen by test accuracy",
    };
    let title = format!(
        "Test accuracy per configuration: {} set, {} ({basis})",
        ranking.variant, ranking.protocol
    );
    let root = root.titled(&title, (font, 20).into_font().style(FontStyle::Bold))?;
    let rows = &ranking.rows;
    let n = rows.len().max(1);
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.baseline {
                format!("{} (baseline)", r.label)
            } else {
                r.label.clone()
            }
        })
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..100.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|x| {
            let k = x.round();
            if (x - k).abs() > 1e-6 || k < 0.0 {
                String::new()
            } else {
                labels.get(k as usize).cloned().unwrap_or_default()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("test accuracy (%)")
        .x_desc("bars: mean over (seed, fold) jobs; error bars: population std; n: jobs behind the bar / planned")
        .label_style((font, 14))
        .axis_desc_style((font, 14))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    for (i, row) in rows.iter().enumerate() {
        let m = &row.test_accuracy;
        let Some(mean) = m.mean.map(|x| x * 100.0) else {
            continue;
        };
        let colour = if row.baseline {
            BASELINE_COLOUR
        } else {
            CANDIDATE_COLOUR
        };
        let (left, right, centre) = (i as f64 - 0.3, i as f64 + 0.3, i as f64);
        chart.draw_series([Rectangle::new(
            [(left, 0.0), (right, mean)],
            colour.filled(),
        )])?;
        let sd = m.std_population.filter(|_| m.count > 1).map(|s| s * 100.0);
        if let Some(sd) = sd {
            let (lo, hi) = ((mean - sd).max(0.0), (mean + sd).min(100.0));
            let style = BLACK.stroke_width(2);
            chart.draw_series([
                PathElement::new(vec![(centre, lo), (centre, hi)], style),
                PathElement::new(vec![(centre - 0.08, lo), (centre + 0.08, lo)], style),
                PathElement::new(vec![(centre - 0.08, hi), (centre + 0.08, hi)], style),
            ])?;
        }
        let top = mean + sd.unwrap_or(0.0);
        chart.draw_series([
            Text::new(
                format!("{mean:.1}"),
                (centre, (top + 1.5).min(99.0)),
                TextStyle::from((font, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)),
            ),
            Text::new(
                format!("n={}/{}", m.count, m.planned),
                (centre, 1.5),
                (font, 13)
                    .into_font()
                    .color(&WHITE)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ),
        ])?;
    }
    Ok(())
}

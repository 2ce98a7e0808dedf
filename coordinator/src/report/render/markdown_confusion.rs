//! The Markdown section of the confusion matrices: one table per group
//! (variant, protocol, configuration), `[true][predicted]` counts summed over
//! the group's jobs that have a matrix, the class names (escaped as every
//! other cell) as row and column headers; `class i` where the store has no
//! names for the matrix's size.

use std::fmt::Write as _;

use super::text::cell;
use crate::report::compute::groups::GroupReport;
use crate::report::compute::report::Report;

/// The header of class `i` of an `n`-class matrix.
fn class_name(names: &[String], n: usize, i: usize) -> String {
    match names.get(i) {
        Some(name) if names.len() == n => cell(name),
        _ => format!("class {i}"),
    }
}

/// One group's matrix as a table.
fn write_matrix(
    out: &mut String,
    r: &Report,
    g: &GroupReport,
    matrix: &[Vec<u64>],
) -> std::fmt::Result {
    let label = r
        .configurations
        .get(g.configuration)
        .map_or("", |c| c.label.as_str());
    let configuration = if label.is_empty() {
        String::new()
    } else {
        format!(" [{}]", cell(label))
    };
    writeln!(
        out,
        "\n### {}{configuration}, {}: summed over {} job(s)\n",
        g.variant, g.protocol, g.confusion_jobs
    )?;
    let names = &r.experiment.class_names;
    let n = matrix.len();
    let header: Vec<String> = (0..n).map(|i| class_name(names, n, i)).collect();
    writeln!(out, "| true \\\\ predicted | {} |", header.join(" | "))?;
    writeln!(out, "| --- |{}", " ---: |".repeat(n))?;
    for (i, row) in matrix.iter().enumerate() {
        let counts: Vec<String> = row.iter().map(u64::to_string).collect();
        writeln!(out, "| **{}** | {} |", header[i], counts.join(" | "))?;
    }
    Ok(())
}

/// Writes the confusion matrices of the groups that have one (nothing when
/// none has).
pub fn write_markdown(out: &mut String, r: &Report) -> std::fmt::Result {
    let with: Vec<(&GroupReport, &Vec<Vec<u64>>)> = r
        .groups
        .iter()
        .filter_map(|g| g.confusion.as_ref().map(|m| (g, m)))
        .collect();
    if with.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n## Confusion matrices\n\nTest samples by true class (rows) and predicted class (columns), summed over each group's jobs with a matrix, each from the model its test accuracy is reported for (optimistic under train-test, as that accuracy)."
    )?;
    for (g, m) in with {
        write_matrix(out, r, g, m)?;
    }
    Ok(())
}

//! The Markdown report: what a researcher reads (and pastes into a paper).
//!
//! Accuracies are shown in percent with two decimals, their standard
//! deviations in percentage points; losses with four decimals, epochs with one.
//! Every figure says how many jobs stand behind it and how many were planned.

use std::fmt::Write as _;
use std::path::Path;

use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::sections::ProtocolKind;

use super::text::{cell, duration_text, network_text, utc_text};
use crate::report::compute::configurations::NetworkSummary;
use crate::report::compute::groups::GroupReport;
use crate::report::compute::metric::Metric;
use crate::report::compute::report::Report;
use spikecv_common::dataset::published::{PublishedFigure, PublishedTable, PublishedValue};

const OPTIMISTIC_NOTE: &str = "optimistic: the epoch is chosen by test accuracy";

/// How a metric's numbers are written.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// A fraction shown in percent.
    Percent,
    /// A loss.
    Loss,
    /// An epoch number.
    Epoch,
}

fn num(x: Option<f64>, unit: Unit) -> String {
    match x {
        None => "–".to_owned(),
        Some(x) => match unit {
            Unit::Percent => format!("{:.2}", x * 100.0),
            Unit::Loss => format!("{x:.4}"),
            Unit::Epoch => format!("{x:.1}"),
        },
    }
}

fn mean_text(x: Option<f64>, unit: Unit) -> String {
    match (x, unit) {
        (Some(_), Unit::Percent) => format!("{} %", num(x, unit)),
        _ => num(x, unit),
    }
}

/// `k of n`, flagged when partial.
fn jobs_text(m: &Metric) -> String {
    if m.is_partial() {
        format!("partial: {} of {} jobs", m.count, m.planned)
    } else {
        format!("{} of {} jobs", m.count, m.planned)
    }
}

/// The variant, with the configuration's label in a sweep.
fn variant_text(variant: impl std::fmt::Display, label: &str) -> String {
    if label.is_empty() {
        variant.to_string()
    } else {
        format!("{variant} [{}]", cell(label))
    }
}

/// The label of a job's configuration (empty without a sweep).
fn job_label(r: &Report, configuration: usize) -> &str {
    r.configurations
        .get(configuration)
        .map_or("", |c| c.label.as_str())
}

fn protocol_text(g: &GroupReport) -> String {
    if g.optimistic {
        format!("{} ({OPTIMISTIC_NOTE})", g.protocol)
    } else {
        g.protocol.to_string()
    }
}

fn pruned_text(pruned: usize) -> String {
    if pruned == 0 {
        String::new()
    } else {
        format!(", {pruned} pruned by the sweep")
    }
}

fn published_text(v: Option<PublishedValue>) -> String {
    match v {
        Some(PublishedValue {
            mean_percent,
            std_percent: Some(std),
        }) => format!("{mean_percent:.2} % ± {std:.2}"),
        Some(PublishedValue {
            mean_percent,
            std_percent: None,
        }) => format!("{mean_percent:.2} %"),
        None => "not given".to_owned(),
    }
}

fn ours_text(g: Option<&GroupReport>) -> String {
    match g {
        None => "not run".to_owned(),
        Some(g) => {
            let m = &g.test_accuracy;
            match m.mean {
                None => format!("no result yet ({})", jobs_text(m)),
                Some(_) => format!(
                    "{} ± {} ({})",
                    mean_text(m.mean, Unit::Percent),
                    num(m.std_population, Unit::Percent),
                    jobs_text(m)
                ),
            }
        }
    }
}

/// Renders the report as Markdown. `plots` are paths (relative to the report)
/// of plot images to link; pass an empty slice when none were written.
pub fn render_markdown(report: &Report, plots: &[&Path]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut out, report, plots);
    out
}

fn write_all(out: &mut String, r: &Report, plots: &[&Path]) -> std::fmt::Result {
    let e = &r.experiment;
    writeln!(
        out,
        "# spikecv report: {}\n",
        cell(e.name.as_deref().unwrap_or(&e.id))
    )?;
    writeln!(out, "- Experiment: `{}`", e.id)?;
    writeln!(out, "- Configuration hash: `{}`", e.config_hash)?;
    writeln!(out, "- Submitted: {}", utc_text(e.created_unix))?;
    writeln!(out, "- Report made: {}", utc_text(r.generated_unix))?;
    let p = &r.progress;
    if p.complete {
        writeln!(
            out,
            "- Status: complete, {} of {} jobs succeeded{}",
            p.succeeded,
            p.planned,
            pruned_text(p.pruned)
        )?;
    } else {
        writeln!(
            out,
            "- Status: **partial: {} of {} jobs** succeeded ({} running, {} leased, {} pending, {} failed, {} cancelled, {} not in the store){}; figures average only the jobs that succeeded and say how many",
            p.succeeded,
            p.planned,
            p.running,
            p.leased,
            p.pending,
            p.failed,
            p.cancelled,
            p.missing,
            pruned_text(p.pruned)
        )?;
    }
    write_network(out, r)?;
    write_data_set(out, r)?;
    if r.groups.iter().any(|g| g.optimistic) {
        writeln!(
            out,
            "\n> **Optimistic figures.** The train-test protocol evaluates the test set every epoch and reports the best test accuracy: its numbers are marked optimistic wherever they appear. The train-val-test protocol selects by validation loss and is the honest estimate."
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "\n> Warning: {}", cell(w))?;
    }

    write_results(out, r)?;
    writeln!(out, "\n## Methods\n\n{}", super::methods::methods_text(r))?;
    if let Some(sweep) = &r.sweep {
        super::markdown_sweep::write_sweep(out, sweep)?;
    }
    if let Some(e) = &r.early_stopping {
        super::early_stop::write_markdown(out, e, &r.configurations)?;
    }
    super::silent::write_markdown(out, r)?;
    super::verification::write_markdown(out, r)?;
    write_published(out, r)?;
    write_per_seed(out, r)?;
    write_per_fold(out, r)?;
    super::markdown_confusion::write_markdown(out, r)?;
    write_jobs(out, r)?;
    write_failed(out, r)?;
    write_compute(out, r)?;
    super::environment::write_markdown(out, &r.environments)?;
    if !plots.is_empty() {
        writeln!(out, "\n## Plots\n")?;
        for path in plots {
            let s = path.display().to_string();
            if s.ends_with(".png") {
                writeln!(out, "![{s}]({s})\n")?;
            } else {
                writeln!(out, "- [{s}]({s})")?;
            }
        }
    }
    writeln!(out, "\n## Configuration\n")?;
    writeln!(
        out,
        "Hash `{}`; the exact configuration that was submitted:\n",
        e.config_hash
    )?;
    let fence = super::text::code_fence(&e.config_toml);
    writeln!(out, "{fence}toml\n{}\n{fence}", e.config_toml.trim_end())?;
    Ok(())
}

fn write_results(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "\n## Results\n")?;
    writeln!(
        out,
        "Mean and standard deviation over every (seed, fold) job that succeeded. Accuracies in %, their spread in percentage points.\n"
    )?;
    writeln!(
        out,
        "| variant | protocol | metric | mean | std (population, ddof 0) | std (sample, ddof 1) | min | max | jobs |"
    )?;
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for g in &r.groups {
        let acc_name = if g.optimistic {
            "test accuracy (optimistic)"
        } else {
            "test accuracy"
        };
        let mut rows: Vec<(&str, &Metric, Unit)> =
            vec![(acc_name, &g.test_accuracy, Unit::Percent)];
        if let Some(v) = &g.val_accuracy {
            rows.push(("validation accuracy", v, Unit::Percent));
        }
        rows.push(("test loss", &g.test_loss, Unit::Loss));
        rows.push(("best epoch", &g.best_epoch, Unit::Epoch));
        for (name, m, unit) in rows {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                variant_text(g.variant, &g.configuration_label),
                protocol_text(g),
                name,
                mean_text(m.mean, unit),
                num(m.std_population, unit),
                num(m.std_sample, unit),
                num(m.min, unit),
                num(m.max, unit),
                jobs_text(m)
            )?;
        }
    }
    Ok(())
}

/// The header's network line: the network, its parameters and FLOPs when
/// every configuration trains the same one, else a pointer to the ranking.
fn write_network(out: &mut String, r: &Report) -> std::fmt::Result {
    let mut networks: Vec<&NetworkSummary> = Vec::new();
    for n in r.configurations.iter().filter_map(|c| c.network.as_ref()) {
        if !networks.contains(&n) {
            networks.push(n);
        }
    }
    match networks.as_slice() {
        [] => Ok(()),
        [one] => writeln!(out, "- Network: {}", network_text(one)),
        many => writeln!(
            out,
            "- Networks: {} different ones across the configurations (names, parameters and FLOPs in \"Configurations compared\")",
            many.len()
        ),
    }
}

/// The header's data set line: its name and classes. Left out for
/// SL-Animals-DVS (the default), whose reports keep the layout they had.
fn write_data_set(out: &mut String, r: &Report) -> std::fmt::Result {
    let e = &r.experiment;
    if e.data_kind.is_default() {
        return Ok(());
    }
    let names: Vec<String> = e.class_names.iter().map(|n| cell(n)).collect();
    writeln!(
        out,
        "- Data set: {}, {} classes: {}",
        e.data_kind.title(),
        names.len(),
        names.join(", ")
    )
}

/// The configuration that stands for the run beside the published figures:
/// the baseline in a sweep, else the only one.
fn baseline(r: &Report) -> usize {
    r.configurations
        .iter()
        .find(|c| c.baseline)
        .map_or(0, |c| c.index)
}

/// The group of this run that stands beside the published figures: the
/// baseline configuration's of `variant` under `protocol`.
fn ours(r: &Report, variant: Variant, protocol: ProtocolKind) -> Option<&GroupReport> {
    let base = baseline(r);
    r.groups
        .iter()
        .find(|g| g.variant == variant && g.protocol == protocol && g.configuration == base)
}

fn write_published(out: &mut String, r: &Report) -> std::fmt::Result {
    let table = r.published;
    writeln!(out, "\n## {}\n", table.heading)?;
    writeln!(out, "{}\n", table.note)?;
    let mut headers: Vec<&str> = table.columns.iter().map(|c| c.header).collect();
    if table.classes_column {
        headers.push("classes");
    }
    writeln!(out, "| method | {} | protocol |", headers.join(" | "))?;
    writeln!(out, "|{}", " --- |".repeat(headers.len() + 2))?;
    write_published_run(out, r, table)?;
    for f in table.figures {
        writeln!(out, "{}", published_row(table, f))?;
    }
    Ok(())
}

/// This run's rows of a published table, one per protocol it ran: in each
/// column the baseline configuration's group of the column's variant, where
/// the protocol is the column's (the data set's own split or k-fold).
fn write_published_run(out: &mut String, r: &Report, table: &PublishedTable) -> std::fmt::Result {
    let classes = match r.experiment.class_names.len() {
        0 => "–".to_owned(),
        n => n.to_string(),
    };
    for protocol in ProtocolKind::ALL {
        let own_split = protocol == ProtocolKind::Official;
        let groups: Vec<Option<&GroupReport>> = table
            .columns
            .iter()
            .map(|c| (c.own_split == own_split).then(|| ours(r, c.variant, protocol))?)
            .collect();
        let Some(any) = groups.iter().flatten().next() else {
            continue;
        };
        let mut cells: Vec<String> = groups.iter().map(|g| ours_text(*g)).collect();
        if table.classes_column {
            cells.push(classes.clone());
        }
        writeln!(
            out,
            "| this run, {protocol} | {} | {}, ± population std over (seed, fold) jobs |",
            cells.join(" | "),
            protocol_text(any)
        )?;
    }
    Ok(())
}

/// A published figure's row.
fn published_row(table: &PublishedTable, f: &PublishedFigure) -> String {
    let mut cells: Vec<String> = f.values.iter().map(|v| published_text(*v)).collect();
    if table.classes_column {
        cells.push(
            f.classes
                .map_or_else(|| "not stated".to_owned(), |n| n.to_string()),
        );
    }
    format!(
        "| {} | {} | {} |",
        cell(f.method),
        cells.join(" | "),
        cell(&published_protocol_text(f.protocol, f.optimistic))
    )
}

/// A published row's protocol cell: the protocol and whether it selects on
/// the test set (`None`: the source does not say).
fn published_protocol_text(protocol: &str, optimistic: Option<bool>) -> String {
    match optimistic {
        Some(true) => format!("{protocol} ({OPTIMISTIC_NOTE})"),
        Some(false) => protocol.to_owned(),
        None => format!("{protocol} (whether it selects on the test set is not stated)"),
    }
}

fn write_per_seed(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "\n## Per seed (spread between seeds)\n")?;
    writeln!(
        out,
        "Test accuracy per seed over its folds; the last row of each group summarises the seed means.\n"
    )?;
    writeln!(
        out,
        "| variant | protocol | seed | test accuracy mean | std (population) | std (sample) | folds |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for g in &r.groups {
        for s in &g.per_seed {
            let m = &s.test_accuracy;
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                variant_text(g.variant, &g.configuration_label),
                protocol_text(g),
                s.seed,
                mean_text(m.mean, Unit::Percent),
                num(m.std_population, Unit::Percent),
                num(m.std_sample, Unit::Percent),
                jobs_text(m)
            )?;
        }
        let m = &g.seed_spread;
        writeln!(
            out,
            "| {} | {} | between seeds | {} | {} | {} | {} seed means of {} |",
            variant_text(g.variant, &g.configuration_label),
            protocol_text(g),
            mean_text(m.mean, Unit::Percent),
            num(m.std_population, Unit::Percent),
            num(m.std_sample, Unit::Percent),
            m.count,
            m.planned
        )?;
    }
    Ok(())
}

fn write_per_fold(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "\n## Per fold\n")?;
    writeln!(out, "Each fold's metrics over the seeds.\n")?;
    writeln!(
        out,
        "| variant | protocol | fold | test accuracy mean | std (population) | std (sample) | validation accuracy mean | test loss mean | seeds |"
    )?;
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for g in &r.groups {
        for f in &g.per_fold {
            let m = &f.test_accuracy;
            let val = match &f.val_accuracy {
                Some(v) => mean_text(v.mean, Unit::Percent),
                None => "n/a".to_owned(),
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                variant_text(g.variant, &g.configuration_label),
                protocol_text(g),
                f.fold,
                mean_text(m.mean, Unit::Percent),
                num(m.std_population, Unit::Percent),
                num(m.std_sample, Unit::Percent),
                val,
                num(f.test_loss.mean, Unit::Loss),
                jobs_text(m)
            )?;
        }
    }
    Ok(())
}

fn opt_text<T: ToString>(x: Option<T>) -> String {
    x.map_or_else(|| "–".to_owned(), |x| x.to_string())
}

fn write_jobs(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "\n## Jobs\n")?;
    writeln!(
        out,
        "| variant | protocol | seed | fold | status | attempts | best epoch | test accuracy | test loss | validation accuracy | validation loss | train time (s) | worker | device |"
    )?;
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for j in &r.jobs {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            variant_text(j.variant, job_label(r, j.configuration)),
            j.protocol,
            j.seed,
            j.fold,
            j.status,
            j.attempts,
            opt_text(j.best_epoch),
            mean_text(j.test_accuracy, Unit::Percent),
            num(j.test_loss, Unit::Loss),
            mean_text(j.val_accuracy, Unit::Percent),
            num(j.val_loss, Unit::Loss),
            j.train_seconds
                .map_or_else(|| "–".to_owned(), |s| format!("{s:.1}")),
            cell(j.worker.as_deref().unwrap_or("–")),
            cell(j.device.as_deref().unwrap_or("–"))
        )?;
    }
    Ok(())
}

fn write_failed(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "\n## Failed and cancelled jobs\n")?;
    if r.failed_jobs.is_empty() {
        writeln!(out, "None.")?;
        return Ok(());
    }
    writeln!(
        out,
        "| variant | protocol | seed | fold | status | attempts | worker | device | error |"
    )?;
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for f in &r.failed_jobs {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.variant,
            f.protocol,
            f.seed,
            f.fold,
            f.status,
            f.attempts,
            cell(f.worker.as_deref().unwrap_or("–")),
            cell(f.device.as_deref().unwrap_or("–")),
            cell(f.error.as_deref().unwrap_or("(no error recorded)"))
        )?;
    }
    Ok(())
}

fn write_compute(out: &mut String, r: &Report) -> std::fmt::Result {
    let c = &r.compute;
    writeln!(out, "\n## Compute\n")?;
    match c.wall_seconds {
        Some(s) => writeln!(
            out,
            "- Wall time: {} ({s:.0} s, {})",
            duration_text(s),
            c.wall_basis
        )?,
        None => writeln!(out, "- Wall time: {}", c.wall_basis)?,
    }
    writeln!(
        out,
        "- Training time, all jobs: {} ({:.1} s)",
        duration_text(c.train_seconds),
        c.train_seconds
    )?;
    writeln!(out, "- GPU hours: {:.3}", c.gpu_hours)?;
    writeln!(out, "- CPU hours: {:.3}", c.cpu_hours)?;
    if c.throughput.is_empty() {
        writeln!(out, "\nNo epoch metrics yet.")?;
        return Ok(());
    }
    writeln!(
        out,
        "\n| worker | device | jobs | epochs | samples/s (mean) | std (population) | min | max |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
    let f1 = |x: Option<f64>| x.map_or_else(|| "–".to_owned(), |x| format!("{x:.1}"));
    for t in &c.throughput {
        let m = &t.samples_per_second;
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&t.worker),
            cell(&t.device),
            t.jobs,
            t.epochs,
            f1(m.mean),
            f1(m.std_population),
            f1(m.min),
            f1(m.max)
        )?;
    }
    Ok(())
}

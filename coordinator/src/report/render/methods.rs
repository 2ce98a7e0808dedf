//! The methods paragraph: how the figures of a report were obtained, in
//! sentences a paper can use as they stand (data set and variants, protocol
//! and folds, seeds and epochs, the selection rule, the tests and corrections,
//! and what became of every planned job), with the baseline's figures.

use std::fmt::Write as _;

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::prune::PruneSettings;
use spikecv_common::experiment::sections::{OptimizerKind, ProtocolKind};

use crate::report::compute::groups::GroupReport;
use crate::report::compute::report::Report;

/// The methods text of `report`: paragraphs separated by blank lines, plain
/// text (no Markdown markup), the same in every format.
pub fn methods_text(report: &Report) -> String {
    let config = match ExperimentConfig::from_toml_str(&report.experiment.config_toml) {
        Ok(c) => c,
        Err(e) => {
            return format!("No methods text: the stored configuration does not parse ({e}).");
        }
    };
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_methods(&mut out, report, &config);
    out.trim_end().to_owned()
}

fn write_methods(out: &mut String, r: &Report, c: &ExperimentConfig) -> std::fmt::Result {
    write_data(out, r, c)?;
    write_protocol(out, c)?;
    write_training(out, c)?;
    write_figures(out, r)?;
    write_tests(out, r, c)?;
    write_outcome(out, r, c)
}

fn write_data(out: &mut String, r: &Report, c: &ExperimentConfig) -> std::fmt::Result {
    let kind = r.experiment.data_kind;
    let variants: Vec<String> = c
        .protocol
        .variants
        .iter()
        .map(|v| match v.note() {
            Some(note) => format!("{} ({note})", v.as_str()),
            None if *v == spikecv_common::dataset::variant::Variant::WHOLE => {
                format!("{} (every recording)", v.as_str())
            }
            None => v.as_str().to_owned(),
        })
        .collect();
    write!(
        out,
        "The network was trained on {} ({} classes), variant{} {}. ",
        kind.title(),
        kind.classes(),
        if variants.len() == 1 { "" } else { "s" },
        variants.join(" and ")
    )?;
    writeln!(
        out,
        "Each sample's events were binned into {} frames of {} ms, one per time step of a spiking network of LIF neurons (threshold {}, decay {}) trained with spatio-temporal backpropagation (STBP).",
        c.simulation.steps, c.simulation.dt_ms, c.simulation.vth, c.simulation.tau
    )?;
    writeln!(out)
}

fn write_protocol(out: &mut String, c: &ExperimentConfig) -> std::fmt::Result {
    let p = &c.protocol;
    let (unit, unit_note) = if c.data.kind.folds_over_people() {
        ("people", " (all recordings of a person in the same fold)")
    } else {
        ("recordings", "")
    };
    match p.kind {
        ProtocolKind::Official => writeln!(
            out,
            "Evaluation used the data set's own train/test split, one job per seed; the model of the last epoch is reported (the test set selects nothing)."
        )?,
        kind => {
            write!(
                out,
                "Evaluation used {}-fold cross-validation over {unit}{unit_note}: for each seed, scikit-learn's KFold(n_splits={}, shuffle=True, random_state=seed) split the list, each fold serving once as the test set. ",
                p.folds, p.folds
            )?;
            if kind == ProtocolKind::TrainValTest {
                writeln!(
                    out,
                    "Within each fold, {:.0} % of the training {unit} were held out for validation (train_test_split with random_state = seed + 1); the model of the epoch with the lowest validation loss (the first such epoch) is reported on the test fold.",
                    p.val_fraction * 100.0
                )?;
            } else {
                writeln!(
                    out,
                    "The test fold was evaluated after every epoch and the best test accuracy is reported; these figures are optimistic, since the test set selects the epoch."
                )?;
            }
        }
    }
    writeln!(out)
}

fn write_training(out: &mut String, c: &ExperimentConfig) -> std::fmt::Result {
    let t = &c.training;
    let seeds: Vec<String> = c.protocol.seeds.iter().map(u64::to_string).collect();
    write!(
        out,
        "Each job trained for {} epochs (batch {}, {} optimiser, learning rate {}) with seed{} {}",
        t.epochs,
        t.batch,
        match t.optimizer {
            OptimizerKind::Adam => "Adam",
            OptimizerKind::Sgd => "SGD",
        },
        t.lr,
        if seeds.len() == 1 { "" } else { "s" },
        seeds.join(", ")
    )?;
    if t.patience > 0 {
        write!(
            out,
            ", stopping early after {} epochs without a better validation accuracy",
            t.patience
        )?;
    }
    writeln!(
        out,
        "; deterministic kernels were {}.",
        if t.deterministic { "on" } else { "off" }
    )?;
    writeln!(out)
}

fn write_figures(out: &mut String, r: &Report) -> std::fmt::Result {
    let base = r
        .configurations
        .iter()
        .find(|c| c.baseline)
        .map_or(0, |c| c.index);
    let groups: Vec<&GroupReport> = r
        .groups
        .iter()
        .filter(|g| g.configuration == base)
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = groups.iter().map(|g| figure_text(g)).collect();
    writeln!(
        out,
        "Test accuracy (mean ± sample standard deviation over the jobs that succeeded{}): {}.",
        if r.sweep.is_some() {
            ", baseline configuration"
        } else {
            ""
        },
        parts.join("; ")
    )?;
    writeln!(out)
}

fn figure_text(g: &GroupReport) -> String {
    let m = &g.test_accuracy;
    let value = match (m.mean, m.std_sample) {
        (Some(mean), Some(sd)) => format!("{:.2} ± {:.2} %", mean * 100.0, sd * 100.0),
        (Some(mean), None) => format!("{:.2} % (one job)", mean * 100.0),
        _ => "no job succeeded".to_owned(),
    };
    format!(
        "{} set, {}{}: {value} (n = {} of {})",
        g.variant,
        g.protocol.as_str(),
        if g.optimistic { ", optimistic" } else { "" },
        m.count,
        m.planned
    )
}

fn write_tests(out: &mut String, r: &Report, c: &ExperimentConfig) -> std::fmt::Result {
    let Some(sweep) = &r.sweep else {
        return Ok(());
    };
    if c.protocol.kind == ProtocolKind::Official {
        write!(
            out,
            "Each configuration was compared with the baseline on seed-paired differences of test accuracy. The seeds share one split, so no two pairs share training data across splits and the paired t-test applies uncorrected (ρ = 0); "
        )?;
    } else {
        write!(
            out,
            "Each configuration was compared with the baseline on (seed, fold)-paired differences of test accuracy with the corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004), whose variance is inflated by (1/n + ρ/(1 − ρ)) with ρ = 1/{} because the folds' training sets overlap; ",
            c.protocol.folds
        )?;
    }
    writeln!(
        out,
        "p-values were adjusted with Holm's method over the {} comparisons. The Bayesian correlated t-test (Corani & Benavoli 2015, the same ρ) gives the posterior probability that a configuration is better than, practically equivalent to (within ± {} percentage points) or worse than the baseline. The uncorrected paired t-test and Wilcoxon signed-rank test are reported beside them for reference only.",
        sweep.comparisons, sweep.rope_pp
    )?;
    writeln!(out)
}

fn write_outcome(out: &mut String, r: &Report, c: &ExperimentConfig) -> std::fmt::Result {
    let p = &r.progress;
    let be = |n: usize| if n == 1 { "was" } else { "were" };
    let mut clauses = vec![
        format!("{} succeeded", p.succeeded),
        format!("{} failed", p.failed),
    ];
    if p.cancelled > 0 {
        clauses.push(format!("{} {} cancelled", p.cancelled, be(p.cancelled)));
    }
    if p.pruned > 0 {
        let rule = match c.sweep.as_ref().and_then(|s| s.prune()) {
            Some(PruneSettings::Median(_)) => " by the median rule",
            Some(PruneSettings::Asha { .. }) => " by successive halving (ASHA)",
            None => "",
        };
        clauses.push(format!("{} {} pruned{rule}", p.pruned, be(p.pruned)));
    }
    let unfinished = p.pending + p.leased + p.running + p.missing;
    if unfinished > 0 {
        clauses.push(format!("{unfinished} had not finished"));
    }
    let last = clauses.pop().unwrap_or_default();
    write!(
        out,
        "Of {} planned jobs, {} and {last}",
        p.planned,
        clauses.join(", ")
    )?;
    let stopped = r.early_stopping.as_ref().map_or(0, |e| e.jobs.len());
    if stopped > 0 {
        write!(out, "; {stopped} of the succeeded jobs stopped early")?;
    }
    match r.verification.as_ref().map(|v| v.counts) {
        Some(c) if c.bitwise + c.tolerance > 0 => writeln!(
            out,
            ". {} of the results were verified by a deterministic replay on another worker ({} bit for bit, {} within the tolerance).",
            c.bitwise + c.tolerance,
            c.bitwise,
            c.tolerance
        ),
        _ => writeln!(
            out,
            ". No result was verified by a second run on another worker."
        ),
    }
}

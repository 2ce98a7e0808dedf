//! The CSV report: one row per job with every metric (RFC 4180 quoting).
//!
//! Columns, in order: [`CSV_COLUMNS`]. Accuracies are fractions in [0, 1];
//! numbers are written in Rust's shortest round-trip form; absent values are
//! empty fields. `optimistic` is `true` for the train-test protocol;
//! `configuration` is the sweep configuration's label (empty without a sweep);
//! `network`, `parameters` and `flops_per_sample` describe the job's network
//! (its compact name, trainable parameters, and FLOPs of one training sample's
//! forward pass at `simulation.steps`; see
//! [`NetworkSummary`]), empty when unknown. The last five columns repeat, on
//! each job of a sweep, its configuration's comparison with the baseline
//! under its variant and protocol: the corrected resampled t-test's p-value
//! and its Holm adjustment, and the Bayesian correlated t-test's posterior
//! probabilities that the configuration is better, practically equivalent or
//! worse (empty for the baseline, without a sweep, or where no test could be
//! made).

use std::fmt::Write as _;

use spikecv_common::experiment::metrics::summary;

use crate::report::compute::compare::BaselineComparison;
use crate::report::compute::configurations::{ConfigurationInfo, NetworkSummary};
use crate::report::compute::report::Report;
use crate::report::compute::usage::job_seconds;
use crate::store::records::JobRecord;

/// The header of the CSV report.
pub const CSV_COLUMNS: [&str; 31] = [
    "experiment",
    "variant",
    "seed",
    "fold",
    "protocol",
    "status",
    "attempts",
    summary::BEST_EPOCH,
    summary::TEST_ACCURACY,
    summary::TEST_LOSS,
    summary::VAL_ACCURACY,
    summary::VAL_LOSS,
    summary::TRAIN_SECONDS,
    "worker",
    "device",
    "optimistic",
    "epochs_reported",
    "samples_per_second_mean",
    "compute_seconds",
    "finished_unix",
    "config_hash",
    "error",
    "configuration",
    "network",
    "parameters",
    "flops_per_sample",
    "corrected_t_p",
    "corrected_t_p_holm",
    "p_better",
    "p_equivalent",
    "p_worse",
];

/// Quotes a field when it holds a comma, quote or line break. A text that a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab
/// or a carriage return, e.g. a worker named `=HYPERLINK(...)`) gets a leading
/// `'` and quotes, so it reads as text (OWASP's advice for CSV injection).
fn field(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        return format!("\"'{}\"", text.replace('"', "\"\""));
    }
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn opt<T: ToString>(x: Option<T>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

/// The comparison with the baseline of `job`'s configuration under its
/// variant and protocol, when the report has one.
fn comparison_of<'a>(report: &'a Report, job: &JobRecord) -> Option<&'a BaselineComparison> {
    report
        .sweep
        .as_ref()?
        .rankings
        .iter()
        .filter(|r| r.variant == job.variant && r.protocol == job.protocol)
        .flat_map(|r| r.rows.iter())
        .find(|row| row.configuration == job.configuration)?
        .versus_baseline
        .as_ref()
}

/// The comparison's five fields (see the module notes).
fn comparison_fields(c: Option<&BaselineComparison>) -> [String; 5] {
    let posterior = c.and_then(|c| c.posterior);
    [
        opt(c.and_then(|c| c.corrected_t).map(|t| t.p_value)),
        opt(c.and_then(|c| c.corrected_t_p_holm)),
        opt(posterior.map(|p| p.p_better)),
        opt(posterior.map(|p| p.p_equivalent)),
        opt(posterior.map(|p| p.p_worse)),
    ]
}

fn row(
    job: &JobRecord,
    config_hash: &str,
    configuration: Option<&ConfigurationInfo>,
) -> Vec<String> {
    let network: Option<&NetworkSummary> = configuration.and_then(|c| c.network.as_ref());
    let speed = if job.epochs.is_empty() {
        None
    } else {
        Some(job.epochs.iter().map(|e| e.samples_per_second).sum::<f64>() / job.epochs.len() as f64)
    };
    vec![
        field(&job.experiment),
        job.variant.to_string(),
        job.seed.to_string(),
        job.fold.to_string(),
        job.protocol.to_string(),
        job.status.to_string(),
        job.attempts.to_string(),
        opt(job.best_epoch),
        opt(job.test_accuracy),
        opt(job.test_loss),
        opt(job.val_accuracy),
        opt(job.val_loss),
        opt(job.train_seconds),
        field(job.worker.as_deref().unwrap_or("")),
        field(job.device.as_deref().unwrap_or("")),
        (job.protocol == spikecv_common::experiment::sections::ProtocolKind::TrainTest).to_string(),
        job.epochs.len().to_string(),
        opt(speed),
        job_seconds(job).to_string(),
        opt(job.finished_unix),
        field(config_hash),
        field(job.error.as_deref().unwrap_or("")),
        field(configuration.map_or("", |c| c.label.as_str())),
        field(network.map_or("", |n| n.name.as_str())),
        opt(network.map(|n| n.parameters)),
        opt(network.map(|n| n.flops_per_sample)),
    ]
}

/// Renders one row per job (the report's job order) under the header.
pub fn render_csv(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for job in &report.jobs {
        let mut fields = row(
            job,
            &report.experiment.config_hash,
            report.configurations.get(job.configuration),
        );
        fields.extend(comparison_fields(comparison_of(report, job)));
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn formulas_are_quoted_as_text_and_plain_fields_stay_as_they_are() {
        assert_eq!(
            field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        for f in ["+1", "-2", "@SUM(A1)", "\tx"] {
            let q = field(f);
            assert!(q.starts_with("\"'") && q.ends_with('"'), "{f:?} -> {q}");
        }
        assert_eq!(field("gpu-node-1"), "gpu-node-1");
        assert_eq!(field("a,b"), "\"a,b\"");
    }
}

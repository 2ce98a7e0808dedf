//! What each MLflow run carries, built from the report (pure: no server, no
//! database): a job's run (its configuration's values and identity as params,
//! its selected model's figures and every epoch as metrics, status, worker and
//! device as tags) and the experiment's parent run (the report's groups, mean
//! ± std per variant, protocol and configuration, and each configuration
//! against the baseline, as metrics).

use std::collections::BTreeMap;

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, JobStatus};
use spikecv_common::experiment::metrics::{self, summary};

use super::held::Held;
use crate::report::compute::compare::BaselineComparison;
use crate::report::compute::groups::GroupReport;
use crate::report::compute::metric::Metric;
use crate::report::compute::report::Report;
use crate::report::model::JobRecord;

/// The longest param value MLflow takes (6,000 characters since MLflow 2.x);
/// a longer one is left out and named in [`PARAMS_LEFT_OUT_TAG`].
pub const MAX_PARAM_CHARS: usize = 6000;
/// The longest tag value sent: every MLflow backend takes 5,000 bytes.
pub const MAX_TAG_BYTES: usize = 5000;
/// Tag naming params too long for MLflow.
pub const PARAMS_LEFT_OUT_TAG: &str = "spikecv.params_left_out";

/// Tag saying which spikecv object a run stands for: `job` or `aggregate`.
pub const ROLE_TAG: &str = "spikecv.role";
/// Tag with the spikecv experiment id (on every run the export writes).
pub const EXPERIMENT_TAG: &str = "spikecv.experiment_id";
/// Tag with the spikecv job id (job runs).
pub const JOB_TAG: &str = "spikecv.job_id";
/// MLflow's tag linking a child run to its parent.
pub const PARENT_TAG: &str = "mlflow.parentRunId";

/// One metric value at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric key.
    pub key: String,
    /// Its value (finite).
    pub value: f64,
    /// Its step (the epoch for per-epoch metrics, 0 for summaries).
    pub step: i64,
}

/// Everything one MLflow run should hold.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// `job` or `aggregate` (the [`ROLE_TAG`]).
    pub role: &'static str,
    /// The spikecv job id (empty for the parent run).
    pub job_id: String,
    /// The run's display name.
    pub name: String,
    /// Params, by key (immutable in MLflow once logged).
    pub params: BTreeMap<String, String>,
    /// Tags, by key.
    pub tags: BTreeMap<String, String>,
    /// Summary metrics (step 0), each logged again only when its value changes.
    pub summary: Vec<Point>,
    /// Every epoch's metrics, logged with the epoch as step.
    pub epochs: Vec<EpochMetrics>,
    /// MLflow run status: `SCHEDULED`, `RUNNING`, `FINISHED`, `FAILED`, `KILLED`.
    pub status: &'static str,
    /// Run start (Unix milliseconds).
    pub start_ms: i64,
    /// Run end (Unix milliseconds), for runs that ended.
    pub end_ms: Option<i64>,
    /// Files to upload as artifacts: (file name, bytes).
    pub artifacts: Vec<(String, Vec<u8>)>,
}

/// MLflow's run status for a job status.
pub fn mlflow_status(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "SCHEDULED",
        JobStatus::Leased | JobStatus::Running => "RUNNING",
        JobStatus::Succeeded => "FINISHED",
        JobStatus::Failed => "FAILED",
        JobStatus::Cancelled | JobStatus::Pruned => "KILLED",
    }
}

/// A job's per-epoch points, under the names the worker's TensorBoard files
/// use ([`metrics::epoch`]: `train/loss`, `val/accuracy`, ...), step = epoch.
pub fn epoch_points(m: &EpochMetrics) -> Vec<Point> {
    let step = i64::from(m.epoch);
    metrics::epoch_scalars(m)
        .into_iter()
        .filter_map(|(key, v)| point(key, v, step))
        .collect()
}

/// A point, when the value is finite (JSON has no NaN).
fn point(key: &str, value: Option<f64>, step: i64) -> Option<Point> {
    value.filter(|v| v.is_finite()).map(|value| Point {
        key: key.to_owned(),
        value,
        step,
    })
}

/// `config` as dotted keys (`training.lr` → `0.001`), strings unquoted,
/// arrays in TOML's inline form; `[sweep]` left out.
pub fn flatten_config(config: &ExperimentConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(toml::Value::Table(table)) = toml::Value::try_from(config) {
        flatten("", &table, &mut out);
    }
    out.retain(|k, _| !k.starts_with("sweep."));
    out
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Puts params in `plan`, leaving out (and naming in a tag) values longer than
/// MLflow takes.
fn set_params(plan: &mut RunPlan, params: BTreeMap<String, String>) {
    let mut left_out = Vec::new();
    for (k, v) in params {
        if v.chars().count() > MAX_PARAM_CHARS {
            left_out.push(k);
        } else {
            plan.params.insert(k, v);
        }
    }
    if !left_out.is_empty() {
        let text = format!(
            "longer than {MAX_PARAM_CHARS} characters: {}",
            left_out.join(", ")
        );
        plan.tags
            .insert(PARAMS_LEFT_OUT_TAG.into(), clip(&text, MAX_TAG_BYTES));
    }
}

/// The run of one job. `config` is its configuration's experiment config
/// (`None` when the stored config does not parse), `label` its
/// configuration's label, `held` the tags and artifacts of [`super::held`].
pub fn job_run(
    report: &Report,
    job: &JobRecord,
    config: Option<&ExperimentConfig>,
    held: Held,
) -> RunPlan {
    let label = report
        .configurations
        .get(job.configuration)
        .map(|c| c.label.clone())
        .unwrap_or_default();
    let mut name = format!("{} seed {} fold {}", job.variant, job.seed, job.fold);
    if !label.is_empty() {
        name = format!("{name} {label}");
    }
    let mut plan = RunPlan {
        role: "job",
        job_id: job.id.clone(),
        name,
        params: BTreeMap::new(),
        tags: held.tags,
        summary: Vec::new(),
        epochs: job.epochs.clone(),
        status: mlflow_status(job.status),
        start_ms: report.experiment.created_unix.saturating_mul(1000),
        end_ms: job
            .finished_unix
            .filter(|_| job.status.is_terminal())
            .map(|s| s.saturating_mul(1000)),
        artifacts: held.artifacts,
    };
    let mut params = config.map(flatten_config).unwrap_or_default();
    params.insert("variant".into(), job.variant.to_string());
    params.insert("seed".into(), job.seed.to_string());
    params.insert("fold".into(), job.fold.to_string());
    params.insert("protocol".into(), job.protocol.as_str().into());
    params.insert("configuration".into(), job.configuration.to_string());
    if !label.is_empty() {
        params.insert("configuration_label".into(), label);
    }
    set_params(&mut plan, params);

    let tags = &mut plan.tags;
    tags.insert("spikecv.status".into(), job.status.as_str().into());
    tags.insert("spikecv.attempts".into(), job.attempts.to_string());
    let optional = [
        ("spikecv.worker", job.worker.clone()),
        ("spikecv.device", job.device.clone()),
        ("spikecv.error", job.error.clone()),
        (
            "spikecv.pruned",
            job.pruned
                .as_ref()
                .and_then(|v| serde_json::to_string(v).ok()),
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            tags.insert(k.into(), clip(&v, MAX_TAG_BYTES));
        }
    }
    // What the result was computed on and with: spikecv.manifest.<field>.
    if let Some(p) = &job.provenance {
        for (field, value) in p.manifest.fields() {
            tags.insert(
                format!("spikecv.manifest.{field}"),
                clip(&value, MAX_TAG_BYTES),
            );
        }
        tags.insert("spikecv.weights_sha256".into(), p.weights_sha256.clone());
    }

    plan.summary = [
        (summary::TEST_ACCURACY, job.test_accuracy),
        (summary::TEST_LOSS, job.test_loss),
        (summary::VAL_ACCURACY, job.val_accuracy),
        (summary::VAL_LOSS, job.val_loss),
        (summary::BEST_EPOCH, job.best_epoch.map(f64::from)),
        (summary::TRAIN_SECONDS, job.train_seconds),
    ]
    .into_iter()
    .filter_map(|(k, v)| point(k, v, 0))
    .collect();
    plan
}

/// The prefix of a group's metric keys: `variant/protocol`, and `/c<index>`
/// when the experiment has several configurations.
pub fn group_prefix(report: &Report, g: &GroupReport) -> String {
    let base = format!("{}/{}", g.variant, g.protocol.as_str());
    if report.configurations.len() > 1 {
        format!("{base}/c{}", g.configuration)
    } else {
        base
    }
}

/// A metric's figures as points `<prefix>/<name>_mean`, `_std_population`,
/// `_std_sample`, `_count`.
fn metric_points(prefix: &str, name: &str, m: &Metric, out: &mut Vec<Point>) {
    let figures = [
        ("mean", m.mean),
        ("std_population", m.std_population),
        ("std_sample", m.std_sample),
        ("count", Some(m.count as f64)),
    ];
    for (figure, v) in figures {
        out.extend(point(&format!("{prefix}/{name}_{figure}"), v, 0));
    }
}

/// A configuration against the baseline as points under
/// `<prefix>/vs_baseline/`: the mean difference, the corrected t-test's
/// p-value (raw and Holm-adjusted) and the posterior probabilities.
fn versus_points(prefix: &str, v: &BaselineComparison, out: &mut Vec<Point>) {
    let posterior = v.posterior.as_ref();
    let figures = [
        ("mean_difference_pp", v.paired.mean_difference_pp),
        ("corrected_t_p", v.corrected_t.as_ref().map(|t| t.p_value)),
        ("corrected_t_p_holm", v.corrected_t_p_holm),
        ("p_better", posterior.map(|p| p.p_better)),
        ("p_equivalent", posterior.map(|p| p.p_equivalent)),
        ("p_worse", posterior.map(|p| p.p_worse)),
    ];
    for (figure, value) in figures {
        out.extend(point(&format!("{prefix}/vs_baseline/{figure}"), value, 0));
    }
}

/// The parent run: the report's groups and progress as metrics, each
/// configuration's label as a tag, `report.json` as an artifact.
pub fn parent_run(report: &Report, report_json: Vec<u8>) -> RunPlan {
    let e = &report.experiment;
    let mut tags = BTreeMap::new();
    tags.insert("spikecv.config_hash".into(), e.config_hash.clone());
    if let Some(name) = &e.name {
        tags.insert("spikecv.experiment_name".into(), clip(name, MAX_TAG_BYTES));
    }
    tags.insert(
        "spikecv.complete".into(),
        report.progress.complete.to_string(),
    );
    tags.insert("spikecv.warnings".into(), report.warnings.len().to_string());
    if report.configurations.len() > 1 {
        for c in &report.configurations {
            let mut label = clip(&c.label, MAX_TAG_BYTES);
            if c.baseline {
                label.push_str(" (baseline)");
            }
            tags.insert(format!("spikecv.configuration.c{}", c.index), label);
        }
    }

    let mut points = Vec::new();
    for g in &report.groups {
        let prefix = group_prefix(report, g);
        metric_points(
            &prefix,
            summary::TEST_ACCURACY,
            &g.test_accuracy,
            &mut points,
        );
        if let Some(val) = &g.val_accuracy {
            metric_points(&prefix, summary::VAL_ACCURACY, val, &mut points);
        }
        metric_points(&prefix, summary::TEST_LOSS, &g.test_loss, &mut points);
        points.extend(point(
            &format!("{prefix}/{}_mean", summary::BEST_EPOCH),
            g.best_epoch.mean,
            0,
        ));
        for (name, n) in [
            ("planned", g.planned),
            ("succeeded", g.succeeded),
            ("pruned", g.pruned),
        ] {
            points.extend(point(&format!("{prefix}/{name}"), Some(n as f64), 0));
        }
        let versus = report
            .sweep
            .as_ref()
            .and_then(|s| s.versus_baseline(g.variant, g.protocol, g.configuration));
        if let Some(v) = versus {
            versus_points(&prefix, v, &mut points);
        }
    }
    let p = &report.progress;
    for (name, n) in [
        ("planned", p.planned),
        ("succeeded", p.succeeded),
        ("failed", p.failed),
        ("cancelled", p.cancelled),
        ("pruned", p.pruned),
        ("pending", p.pending + p.leased + p.running),
    ] {
        points.extend(point(&format!("progress/{name}"), Some(n as f64), 0));
    }

    let ended = p.missing == 0 && report.jobs.iter().all(|j| j.status.is_terminal());
    RunPlan {
        role: "aggregate",
        job_id: String::new(),
        name: format!("{} (aggregates)", e.name.as_deref().unwrap_or(&e.id)),
        params: BTreeMap::new(),
        tags,
        summary: points,
        epochs: Vec::new(),
        status: if ended { "FINISHED" } else { "RUNNING" },
        start_ms: e.created_unix.saturating_mul(1000),
        end_ms: ended
            .then(|| report.jobs.iter().filter_map(|j| j.finished_unix).max())
            .flatten()
            .map(|s| s.saturating_mul(1000)),
        artifacts: vec![("report.json".into(), report_json)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_cuts_on_a_character_boundary() {
        assert_eq!(clip("abc", 10), "abc");
        let cut = clip(&"é".repeat(10), 7);
        assert!(cut.len() <= 7, "{cut}");
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn non_finite_values_make_no_point() {
        assert!(point("k", Some(f64::NAN), 1).is_none());
        assert!(point("k", Some(f64::INFINITY), 1).is_none());
        assert_eq!(point("k", Some(0.5), 2).map(|p| p.step), Some(2));
    }
}

//! The jobs table (filtered, sorted and paginated on the server, so the page
//! renders one page of rows even with 10,000 jobs; rows are compact arrays) and
//! one job's learning curves.

use std::cmp::Ordering;

use serde::Serialize;
use spikecv_common::experiment::job::{EpochMetrics, LayerRate};
use spikecv_common::experiment::metrics::summary;

use super::DashboardError;
use crate::store::records::JobRecord;

/// The columns of a jobs page row, in order.
pub const COLUMNS: [&str; 13] = [
    "job",
    "variant",
    "seed",
    "fold",
    "state",
    "attempts",
    "worker",
    "device",
    "epoch",
    "of",
    summary::VAL_ACCURACY,
    summary::TEST_ACCURACY,
    "configuration",
];

/// Largest page.
pub const MAX_LIMIT: usize = 500;

/// What to show of the jobs table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobsQuery {
    /// Experiment id (default: the newest experiment).
    pub experiment: Option<String>,
    /// Only jobs in this state (`active` = leased or running).
    pub state: Option<String>,
    /// Only this variant.
    pub variant: Option<String>,
    /// Only this seed.
    pub seed: Option<u64>,
    /// Only this fold.
    pub fold: Option<u32>,
    /// Only this sweep configuration (its label).
    pub configuration: Option<String>,
    /// Only jobs whose id, worker or device contains this text.
    pub text: Option<String>,
    /// Sort column (one of [`COLUMNS`]); default plan order.
    pub sort: Option<String>,
    /// Descending.
    pub descending: bool,
    /// First row.
    pub offset: usize,
    /// Rows per page (at most [`MAX_LIMIT`]).
    pub limit: usize,
}

fn bad(param: &'static str, value: &str, message: &str) -> DashboardError {
    DashboardError::BadRequest {
        param,
        value: value.to_owned(),
        message: message.to_owned(),
    }
}

impl JobsQuery {
    /// Parses the query string's `key=value` pairs (already percent-decoded).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, DashboardError> {
        let mut q = JobsQuery {
            limit: 50,
            ..Self::default()
        };
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        for (k, v) in pairs {
            match k.as_str() {
                "experiment" => q.experiment = some(v),
                "state" => q.state = some(v),
                "variant" => q.variant = some(v),
                "configuration" => q.configuration = some(v),
                "q" => q.text = some(v),
                "seed" if !v.is_empty() => {
                    q.seed = Some(v.parse().map_err(|_| bad("seed", v, "not a number"))?)
                }
                "fold" if !v.is_empty() => {
                    q.fold = Some(v.parse().map_err(|_| bad("fold", v, "not a number"))?)
                }
                "sort" if !v.is_empty() => {
                    if !COLUMNS.contains(&v.as_str()) {
                        return Err(bad("sort", v, "not a column of the jobs table"));
                    }
                    q.sort = Some(v.clone());
                }
                "dir" => match v.as_str() {
                    "asc" | "" => q.descending = false,
                    "desc" => q.descending = true,
                    _ => return Err(bad("dir", v, "must be asc or desc")),
                },
                "offset" => q.offset = v.parse().map_err(|_| bad("offset", v, "not a number"))?,
                "limit" => {
                    q.limit = v.parse().map_err(|_| bad("limit", v, "not a number"))?;
                    if q.limit == 0 || q.limit > MAX_LIMIT {
                        return Err(bad("limit", v, "must be 1 to 500"));
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    fn keeps(&self, j: &JobRecord, labels: &[String]) -> bool {
        let state_ok = match self.state.as_deref() {
            None => true,
            Some("active") => !j.status.is_terminal() && j.status.as_str() != "pending",
            Some(s) => j.status.as_str() == s,
        };
        let text_ok = self.text.as_deref().is_none_or(|t| {
            let t = t.to_lowercase();
            [
                Some(j.id.as_str()),
                j.worker.as_deref(),
                j.device.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|f| f.to_lowercase().contains(&t))
        });
        state_ok
            && text_ok
            && self
                .variant
                .as_deref()
                .is_none_or(|v| j.variant.as_str() == v)
            && self.seed.is_none_or(|s| j.seed == s)
            && self.fold.is_none_or(|f| j.fold == f)
            && self
                .configuration
                .as_deref()
                .is_none_or(|c| label(labels, j.configuration) == c)
    }
}

/// One page of the jobs table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobsPage {
    /// The experiment shown.
    pub experiment: Option<String>,
    /// Epochs per job of the experiment (for `epoch x/N` before a worker said).
    pub epochs: Option<u32>,
    /// Jobs of the experiment.
    pub total: usize,
    /// Jobs matching the filters.
    pub matched: usize,
    /// First row shown.
    pub offset: usize,
    /// The labels of the experiment's sweep configurations (one empty label
    /// without a sweep), for the configuration filter.
    pub configurations: Vec<String>,
    /// The column names of `rows`.
    pub columns: &'static [&'static str],
    /// The rows: one array per job, in `columns` order.
    pub rows: Vec<serde_json::Value>,
}

fn cmp_opt<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn compare(column: &str, a: &JobRecord, b: &JobRecord) -> Ordering {
    match column {
        "job" => a.id.cmp(&b.id),
        "variant" => a.variant.cmp(&b.variant),
        "seed" => a.seed.cmp(&b.seed),
        "fold" => a.fold.cmp(&b.fold),
        "state" => a.status.as_str().cmp(b.status.as_str()),
        "attempts" => a.attempts.cmp(&b.attempts),
        "worker" => cmp_opt(a.worker.as_deref(), b.worker.as_deref()),
        "device" => cmp_opt(a.device.as_deref(), b.device.as_deref()),
        "epoch" | "of" => cmp_opt(a.progress_epoch, b.progress_epoch),
        summary::VAL_ACCURACY => cmp_opt(a.current_val_accuracy(), b.current_val_accuracy()),
        summary::TEST_ACCURACY => cmp_opt(a.current_test_accuracy(), b.current_test_accuracy()),
        "configuration" => a.configuration.cmp(&b.configuration),
        _ => Ordering::Equal,
    }
}

/// Whether the job has no value in `column`.
fn missing(column: &str, j: &JobRecord) -> bool {
    match column {
        "worker" => j.worker.is_none(),
        "device" => j.device.is_none(),
        "epoch" | "of" => j.progress_epoch.is_none(),
        summary::VAL_ACCURACY => j.current_val_accuracy().is_none(),
        summary::TEST_ACCURACY => j.current_test_accuracy().is_none(),
        _ => false,
    }
}

/// The label of configuration `index` (empty when unknown).
fn label(labels: &[String], index: usize) -> &str {
    labels.get(index).map_or("", String::as_str)
}

fn row(j: &JobRecord, epochs: Option<u32>, labels: &[String]) -> serde_json::Value {
    serde_json::json!([
        j.id,
        j.variant.as_str(),
        j.seed,
        j.fold,
        j.status.as_str(),
        j.attempts,
        j.worker,
        j.device,
        j.progress_epoch,
        j.progress_of.or(epochs),
        j.current_val_accuracy(),
        j.current_test_accuracy(),
        label(labels, j.configuration),
    ])
}

/// Filters, sorts (stable: ties keep plan order) and cuts one page.
pub fn page(
    experiment: Option<String>,
    epochs: Option<u32>,
    labels: Vec<String>,
    jobs: &[JobRecord],
    q: &JobsQuery,
) -> JobsPage {
    let mut kept: Vec<&JobRecord> = jobs.iter().filter(|j| q.keeps(j, &labels)).collect();
    if let Some(column) = &q.sort {
        // Rows without the value go last in either direction.
        kept.sort_by(|a, b| match (missing(column, a), missing(column, b)) {
            (false, true) => Ordering::Less,
            (true, false) => Ordering::Greater,
            _ => {
                let o = compare(column, a, b);
                if q.descending { o.reverse() } else { o }
            }
        });
    }
    JobsPage {
        experiment,
        epochs,
        total: jobs.len(),
        matched: kept.len(),
        offset: q.offset,
        columns: &COLUMNS,
        rows: kept
            .iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|j| row(j, epochs, &labels))
            .collect(),
        configurations: labels,
    }
}

/// One job with its learning curves (one array per metric, `null` where an
/// epoch lacks the value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobDetail {
    /// Job id.
    pub job: String,
    /// Variant.
    pub variant: &'static str,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Protocol.
    pub protocol: &'static str,
    /// State.
    pub state: &'static str,
    /// Attempts.
    pub attempts: u32,
    /// Worker.
    pub worker: Option<String>,
    /// Device.
    pub device: Option<String>,
    /// Last error.
    pub error: Option<String>,
    /// Selected epoch.
    pub best_epoch: Option<u32>,
    /// Selected model's test accuracy.
    pub test_accuracy: Option<f64>,
    /// Selected model's validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Epoch numbers.
    pub epoch: Vec<u32>,
    /// Training loss per epoch.
    pub train_loss: Vec<f64>,
    /// Training accuracy per epoch.
    pub train_accuracy: Vec<f64>,
    /// Validation loss per epoch.
    pub val_loss_curve: Vec<Option<f64>>,
    /// Validation accuracy per epoch.
    pub val_accuracy_curve: Vec<Option<f64>>,
    /// Test accuracy per epoch.
    pub test_accuracy_curve: Vec<Option<f64>>,
    /// Each LIF layer's firing rates (training, evaluation) in the last epoch
    /// that reported them, in network order; empty when none did.
    pub firing_rates: Vec<LayerRate>,
    /// The epoch [`JobDetail::firing_rates`] are of.
    pub firing_rates_epoch: Option<u32>,
}

/// A job's detail from its line and its stored epochs.
pub fn detail(j: &JobRecord, epochs: &[EpochMetrics]) -> JobDetail {
    let rated = epochs.iter().rev().find(|m| !m.firing_rates.is_empty());
    JobDetail {
        job: j.id.clone(),
        variant: j.variant.as_str(),
        seed: j.seed,
        fold: j.fold,
        protocol: j.protocol.as_str(),
        state: j.status.as_str(),
        attempts: j.attempts,
        worker: j.worker.clone(),
        device: j.device.clone(),
        error: j.error.clone(),
        best_epoch: j.best_epoch,
        test_accuracy: j.test_accuracy,
        val_accuracy: j.val_accuracy,
        epoch: epochs.iter().map(|m| m.epoch).collect(),
        train_loss: epochs.iter().map(|m| m.train_loss).collect(),
        train_accuracy: epochs.iter().map(|m| m.train_accuracy).collect(),
        val_loss_curve: epochs.iter().map(|m| m.val_loss).collect(),
        val_accuracy_curve: epochs.iter().map(|m| m.val_accuracy).collect(),
        test_accuracy_curve: epochs.iter().map(|m| m.test_accuracy).collect(),
        firing_rates: rated.map(|m| m.firing_rates.clone()).unwrap_or_default(),
        firing_rates_epoch: rated.map(|m| m.epoch),
    }
}

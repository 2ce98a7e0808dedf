//! The dashboard's overview: every experiment (configuration, job counts, wall
//! time, ETA, throughput, and the aggregate so far from REPORT's
//! [`build_report`], so the numbers are those of `coordinator report`) and
//! every worker with the jobs it runs. Pushed to browsers over server-sent events.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;
use spikecv_common::config::{ExperimentConfig, ProtocolKind, Variant};

use super::DashboardError;
use super::queries::{self, JobLine};
use crate::report::aggregate::{Metric, Progress};
use crate::report::{ExperimentRecord, build_report, from_store};
use crate::scheduler::SlotInfo;
use crate::store::reads;

/// Everything the page's top half shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    /// Server time of the snapshot (Unix ms).
    pub now_ms: i64,
    /// Changes whenever a job, epoch, worker or experiment changes.
    pub version: String,
    /// Experiments, oldest first.
    pub experiments: Vec<ExperimentView>,
    /// Workers, in registration order.
    pub workers: Vec<WorkerView>,
}

/// One experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentView {
    /// Id.
    pub id: String,
    /// Name from the config.
    pub name: Option<String>,
    /// Hash of the normalised configuration.
    pub config_hash: String,
    /// The configuration as submitted.
    pub config_toml: String,
    /// Submission time (Unix seconds).
    pub created_unix: i64,
    /// Epochs per job (`[training] epochs`; `None` when the config does not parse).
    pub epochs: Option<u32>,
    /// Job counts against the plan (REPORT's figures).
    pub progress: Progress,
    /// True while a planned job has not ended: the aggregate is partial.
    pub partial: bool,
    /// Seconds from submission to now (or to the last job's end), as REPORT counts.
    pub wall_seconds: Option<f64>,
    /// Estimated seconds until every job ended.
    pub eta_seconds: Option<f64>,
    /// Training samples per second over every running job (latest epochs).
    pub samples_per_second: f64,
    /// Mean ± std per variant and protocol (REPORT's figures).
    pub aggregate: Vec<GroupView>,
}

/// The aggregate of one variant under one protocol (and sweep configuration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    /// The sweep configuration's label (empty without a sweep).
    pub configuration: String,
    /// Jobs the sweep's pruner stopped (in no figure).
    pub pruned: usize,
    /// Variant.
    pub variant: Variant,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Train-test: best test accuracy over epochs, optimistic.
    pub optimistic: bool,
    /// Jobs planned.
    pub planned: usize,
    /// Jobs succeeded.
    pub succeeded: usize,
    /// Test accuracy of the selected models.
    pub test_accuracy: Metric,
    /// Validation accuracy of the selected models (train-val-test).
    pub val_accuracy: Option<Metric>,
    /// Test loss of the selected models.
    pub test_loss: Metric,
}

/// One worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Host.
    pub host: String,
    /// `alive`, `draining` or `lost`.
    pub state: &'static str,
    /// Last call (heartbeat, lease, report), Unix ms.
    pub last_seen_ms: i64,
    /// Its slots (devices).
    pub slots: Vec<SlotInfo>,
    /// The jobs it runs now.
    pub jobs: Vec<WorkerJob>,
}

/// A job a worker runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerJob {
    /// Job id.
    pub job: String,
    /// Slot.
    pub device: String,
    /// Variant.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Last reported epoch.
    pub epoch: Option<u32>,
    /// Epochs in total.
    pub of: Option<u32>,
}

/// Estimated seconds until every job ended: the epochs left (per unfinished
/// job, `epochs` minus its last reported epoch), times the mean epoch time
/// (running jobs' latest epochs, else finished jobs' training time per epoch),
/// over the jobs that run in parallel (running jobs, else `slots`).
/// `Some(0)` when nothing is left; `None` without a time to go by.
pub fn eta_seconds(jobs: &[JobLine], epochs: u32, slots: usize) -> Option<f64> {
    let unfinished: Vec<&JobLine> = jobs.iter().filter(|j| !j.status.is_terminal()).collect();
    if unfinished.is_empty() {
        return Some(0.0);
    }
    let left: u64 = unfinished
        .iter()
        .map(|j| {
            let of = j.progress_of.unwrap_or(epochs);
            u64::from(of.saturating_sub(j.progress_epoch.unwrap_or(0)))
        })
        .sum();
    let running: Vec<f64> = unfinished
        .iter()
        .filter_map(|j| j.latest.as_ref())
        .map(|m| m.epoch_seconds)
        .collect();
    let per_epoch = if running.is_empty() {
        let done: Vec<f64> = jobs
            .iter()
            .filter_map(|j| j.train_seconds)
            .filter(|_| epochs > 0)
            .map(|s| s / f64::from(epochs))
            .collect();
        if done.is_empty() {
            return None;
        }
        done.iter().sum::<f64>() / done.len() as f64
    } else {
        running.iter().sum::<f64>() / running.len() as f64
    };
    let parallel = if running.is_empty() {
        slots
    } else {
        running.len()
    };
    (parallel > 0).then(|| left as f64 * per_epoch / parallel as f64)
}

/// Samples per second over every running job (sum of their latest epochs').
pub fn samples_per_second(jobs: &[JobLine]) -> f64 {
    jobs.iter()
        .filter(|j| !j.status.is_terminal())
        .filter_map(|j| j.latest.as_ref())
        .map(|m| m.samples_per_second)
        .sum()
}

/// One experiment's view from its job lines, at `now_ms`.
pub fn experiment_view(
    experiment: &ExperimentRecord,
    jobs: &[JobLine],
    slots: usize,
    now_ms: i64,
) -> ExperimentView {
    let records: Vec<_> = jobs.iter().map(|j| j.to_record(&experiment.id)).collect();
    let report = build_report(experiment, &records, now_ms.div_euclid(1000));
    let epochs = ExperimentConfig::from_toml_str(&experiment.config_toml)
        .ok()
        .map(|c| c.training.epochs);
    let p = &report.progress;
    let partial = p.missing + p.pending + p.leased + p.running > 0;
    ExperimentView {
        id: experiment.id.clone(),
        name: experiment.name.clone(),
        config_hash: experiment.config_hash.clone(),
        config_toml: experiment.config_toml.clone(),
        created_unix: experiment.created_unix,
        epochs,
        partial,
        wall_seconds: report.compute.wall_seconds,
        eta_seconds: eta_seconds(jobs, epochs.unwrap_or(0), slots),
        samples_per_second: samples_per_second(jobs),
        aggregate: report
            .groups
            .into_iter()
            .map(|g| GroupView {
                configuration: g.configuration_label,
                pruned: g.pruned,
                variant: g.variant,
                protocol: g.protocol,
                optimistic: g.optimistic,
                planned: g.planned,
                succeeded: g.succeeded,
                test_accuracy: g.test_accuracy,
                val_accuracy: g.val_accuracy,
                test_loss: g.test_loss,
            })
            .collect(),
        progress: report.progress,
    }
}

/// The whole overview, read from the store at `now_ms`.
pub fn overview(conn: &Connection, now_ms: i64) -> Result<Overview, DashboardError> {
    let version = queries::version(conn)?;
    let mut running: BTreeMap<String, Vec<WorkerJob>> = BTreeMap::new();
    for a in queries::open_attempts(conn)? {
        running.entry(a.worker).or_default().push(WorkerJob {
            job: a.job,
            device: a.device,
            variant: a.variant,
            seed: a.seed,
            fold: a.fold,
            epoch: a.epoch,
            of: a.of,
        });
    }
    let workers: Vec<WorkerView> = reads::query_workers(conn, "", [])?
        .into_iter()
        .map(|w| WorkerView {
            jobs: running.remove(&w.id.0).unwrap_or_default(),
            id: w.id.0,
            name: w.name,
            host: w.host,
            state: w.state.as_str(),
            last_seen_ms: w.last_seen_ms,
            slots: w.slots,
        })
        .collect();
    let slots = workers
        .iter()
        .filter(|w| w.state == "alive")
        .map(|w| w.slots.len())
        .sum();
    let experiments = from_store::experiments(conn)?
        .iter()
        .map(|e| {
            Ok(experiment_view(
                e,
                &queries::experiment_jobs(conn, &e.id)?,
                slots,
                now_ms,
            ))
        })
        .collect::<Result<Vec<_>, DashboardError>>()?;
    Ok(Overview {
        now_ms,
        version,
        experiments,
        workers,
    })
}

//! The dashboard's overview: every experiment (configuration, job counts, wall
//! time, ETA, throughput, and the aggregate so far from REPORT's
//! [`build_report`], so the numbers are those of `coordinator report`) and
//! every worker with the jobs it runs (and, for a suspect worker, why and the
//! command that clears it). Pushed to browsers over server-sent events.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::sections::ProtocolKind;

use super::DashboardError;
use crate::eta::{self, EtaInputs};
use crate::report::compute::compare::BaselineComparison;
use crate::report::compute::configurations::NetworkSummary;
use crate::report::compute::groups::GroupReport;
use crate::report::compute::jobs::Progress;
use crate::report::compute::metric::Metric;
use crate::report::{ExperimentRecord, build_report, from_store};
use crate::scheduler::SlotInfo;
/// A job a worker runs, as the overview lists it (the store's read of it).
pub use crate::store::read_only::WorkerJob;
use crate::store::records::JobRecord;
use crate::store::verify_rows::{self, SuspectRecord};
use crate::store::{jobs, worker_rows};

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
    /// Pending jobs of trainers no live worker registered, by trainer.
    pub waiting_for_trainers: Vec<TrainerWaitView>,
}

/// Pending jobs waiting for a training script no live worker registered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainerWaitView {
    /// The trainer's name.
    pub trainer: String,
    /// How many pending jobs need it.
    pub jobs: u64,
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
    /// The configuration's network: compact name, parameters, FLOPs per
    /// sample (REPORT's [`NetworkSummary`]; `None` when it does not resolve).
    pub network: Option<NetworkSummary>,
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
    /// Against the baseline configuration of its variant and protocol, as the
    /// report has it (corrected t, Holm, posteriors); `None` without a sweep
    /// and for the baseline.
    pub versus_baseline: Option<BaselineComparison>,
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
    /// Set while it is suspect (a run of it disagreed with two others): it
    /// gets no new leases until an operator clears it.
    pub suspect: Option<SuspectView>,
}

/// Why a worker is suspect, and how to clear it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuspectView {
    /// Why, in words.
    pub reason: String,
    /// The job where its run disagreed.
    pub job: String,
    /// Since when, Unix ms.
    pub since_ms: i64,
    /// The command that clears it (by name when the name is plain enough to
    /// type in a shell, else by id).
    pub clear_command: String,
}

impl SuspectView {
    /// The view of `s`.
    pub fn of(s: &SuspectRecord) -> Self {
        let plain = !s.name.is_empty()
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !s.name.starts_with('-');
        let who = if plain { &s.name } else { &s.worker.0 };
        SuspectView {
            reason: s.reason.clone(),
            job: s.job.clone(),
            since_ms: s.since_ms,
            clear_command: format!("coordinator worker clear {who}"),
        }
    }
}

/// Estimated seconds until every job of `jobs` ended, by the one estimate
/// `coordinator status` also gives ([`crate::eta`]): a job's epochs in total
/// are what its worker reported, else what the store planned, else `epochs`.
pub fn eta_seconds(jobs: &[JobRecord], epochs: u32, slots: usize) -> Option<f64> {
    let unfinished: Vec<&JobRecord> = jobs.iter().filter(|j| !j.status.is_terminal()).collect();
    let running: Vec<f64> = unfinished
        .iter()
        .filter_map(|j| j.live_epoch())
        .map(|m| m.epoch_seconds)
        .collect();
    let per_epoch: Vec<f64> = jobs
        .iter()
        .filter_map(|j| {
            let planned = j.planned_epochs.unwrap_or(epochs);
            j.train_seconds
                .filter(|_| planned > 0)
                .map(|s| s / f64::from(planned))
        })
        .collect();
    eta::eta_seconds(&EtaInputs {
        unfinished: unfinished.len() as u64,
        epochs_left: unfinished
            .iter()
            .map(|j| {
                let of = j.progress_of.or(j.planned_epochs).unwrap_or(epochs);
                u64::from(of.saturating_sub(j.progress_epoch.unwrap_or(0)))
            })
            .sum(),
        running_epoch_seconds: running.iter().sum(),
        running: running.len() as u64,
        finished_epoch_seconds: (!per_epoch.is_empty())
            .then(|| per_epoch.iter().sum::<f64>() / per_epoch.len() as f64),
        slots: slots as u64,
    })
}

/// Samples per second over every running job (sum of their latest epochs').
pub fn samples_per_second(jobs: &[JobRecord]) -> f64 {
    jobs.iter()
        .filter_map(JobRecord::live_epoch)
        .map(|m| m.samples_per_second)
        .sum()
}

/// One experiment's view from its job lines, at `now_ms`.
pub fn experiment_view(
    experiment: &ExperimentRecord,
    jobs: &[JobRecord],
    slots: usize,
    now_ms: i64,
) -> ExperimentView {
    let report = build_report(experiment, jobs, now_ms.div_euclid(1000));
    let epochs = ExperimentConfig::from_toml_str(&experiment.config_toml)
        .ok()
        .map(|c| c.training.epochs);
    let p = &report.progress;
    let partial = p.missing + p.pending + p.leased + p.running > 0;
    let versus = |g: &GroupReport| {
        let sweep = report.sweep.as_ref()?;
        sweep
            .versus_baseline(g.variant, g.protocol, g.configuration)
            .cloned()
    };
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
            .iter()
            .cloned()
            .map(|g| GroupView {
                versus_baseline: versus(&g),
                network: report
                    .configurations
                    .get(g.configuration)
                    .and_then(|c| c.network.clone()),
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
        progress: report.progress.clone(),
    }
}

/// The whole overview, read from the store at `now_ms`.
pub fn overview(conn: &Connection, now_ms: i64) -> Result<Overview, DashboardError> {
    let version = from_store::version(conn)?;
    let mut running: BTreeMap<String, Vec<WorkerJob>> = BTreeMap::new();
    for a in from_store::open_attempts(conn)? {
        running.entry(a.worker).or_default().push(a.job);
    }
    let suspects = verify_rows::suspects(conn)?;
    let workers: Vec<WorkerView> = worker_rows::query_workers(conn, "", [])?
        .into_iter()
        .map(|w| WorkerView {
            suspect: suspects
                .iter()
                .find(|s| s.worker == w.id)
                .map(SuspectView::of),
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
                &from_store::jobs_at(conn, &e.id, from_store::Depth::Live)?,
                slots,
                now_ms,
            ))
        })
        .collect::<Result<Vec<_>, DashboardError>>()?;
    let waiting_for_trainers = jobs::missing_trainers(conn)?
        .into_iter()
        .map(|(trainer, jobs)| TrainerWaitView { trainer, jobs })
        .collect();
    Ok(Overview {
        now_ms,
        version,
        experiments,
        workers,
        waiting_for_trainers,
    })
}

//! The dashboard's reads from the state database, over a read-only connection
//! (WAL lets it read while the scheduler writes). Jobs are read without their
//! split, config or result JSON, and with only their latest epoch, so a store
//! of 10,000 jobs × 400 epochs is read in milliseconds.

use std::collections::HashMap;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension};
use spikecv_common::config::{ProtocolKind, Variant};
use spikecv_common::job::{EpochMetrics, JobStatus};

use super::DashboardError;
use crate::report::JobRecord;

fn corrupt(
    table: &'static str,
    key: &str,
    column: &'static str,
    message: impl ToString,
) -> DashboardError {
    DashboardError::Corrupt {
        table,
        key: key.to_owned(),
        column,
        message: message.to_string(),
    }
}

/// One job as the dashboard shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLine {
    /// Job id.
    pub id: String,
    /// Variant.
    pub variant: Variant,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Status.
    pub status: JobStatus,
    /// Leases handed out.
    pub attempts: u32,
    /// Worker name (last or current).
    pub worker: Option<String>,
    /// Device (last or current).
    pub device: Option<String>,
    /// Last reported epoch.
    pub progress_epoch: Option<u32>,
    /// Epochs in total, as the worker reported them.
    pub progress_of: Option<u32>,
    /// Selected epoch, once finished.
    pub best_epoch: Option<u32>,
    /// Test accuracy of the selected model.
    pub test_accuracy: Option<f64>,
    /// Test loss of the selected model.
    pub test_loss: Option<f64>,
    /// Validation accuracy of the selected model.
    pub val_accuracy: Option<f64>,
    /// Validation loss of the selected model.
    pub val_loss: Option<f64>,
    /// Training seconds, once finished.
    pub train_seconds: Option<f64>,
    /// Last error.
    pub error: Option<String>,
    /// When it reached its final state (Unix ms).
    pub finished_ms: Option<i64>,
    /// The latest epoch's metrics while leased or running.
    pub latest: Option<EpochMetrics>,
    /// Index of the job's sweep configuration in its experiment (0 without a
    /// sweep, and for a job read on its own).
    pub configuration: usize,
}

impl JobLine {
    /// The report record of this job (without epochs or confusion matrix, which
    /// the aggregate figures do not use), for `report::build_report`.
    pub fn to_record(&self, experiment: &str) -> JobRecord {
        let mut r = JobRecord::pending(
            experiment,
            self.variant,
            self.seed,
            self.fold,
            self.protocol,
        );
        r.status = self.status;
        r.attempts = self.attempts;
        r.best_epoch = self.best_epoch;
        r.test_accuracy = self.test_accuracy;
        r.test_loss = self.test_loss;
        r.val_accuracy = self.val_accuracy;
        r.val_loss = self.val_loss;
        r.train_seconds = self.train_seconds;
        r.worker = self.worker.clone();
        r.device = self.device.clone();
        r.error = self.error.clone();
        r.finished_unix = self.finished_ms.map(|ms| ms.div_euclid(1000));
        r.configuration = self.configuration;
        r
    }

    /// Current validation accuracy: the latest epoch's while running, the
    /// selected model's once finished.
    pub fn current_val_accuracy(&self) -> Option<f64> {
        match &self.latest {
            Some(m) if !self.status.is_terminal() => m.val_accuracy,
            _ => self.val_accuracy,
        }
    }

    /// Current test accuracy, like [`Self::current_val_accuracy`].
    pub fn current_test_accuracy(&self) -> Option<f64> {
        match &self.latest {
            Some(m) if !self.status.is_terminal() => m.test_accuracy,
            _ => self.test_accuracy,
        }
    }
}

fn protocol_from_str(s: &str) -> Option<ProtocolKind> {
    [ProtocolKind::TrainValTest, ProtocolKind::TrainTest]
        .into_iter()
        .find(|p| p.as_str() == s)
}

const JOB_SELECT: &str = "SELECT j.id, j.variant, j.seed, j.fold, j.protocol, j.status, j.attempts, j.worker, \
    j.device, j.progress_epoch, j.progress_of, j.best_epoch, j.test_accuracy, j.test_loss, j.val_accuracy, \
    j.val_loss, j.train_seconds, j.error, j.finished_ms";

/// The configuration column after [`JOB_SELECT`]: the experiment's link where
/// there is one.
const CONFIGURATION_OF_LINK: &str = ", coalesce(ej.configuration, 0)";
/// ... and for a job read on its own.
const NO_CONFIGURATION: &str = ", 0";

type RawJob = (
    String,
    String,
    i64,
    i64,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    (
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<String>,
        Option<i64>,
        i64,
    ),
);

fn raw_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        (
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
            r.get(15)?,
            r.get(16)?,
            r.get(17)?,
            r.get(18)?,
            r.get(19)?,
        ),
    ))
}

fn job_line(raw: RawJob) -> Result<JobLine, DashboardError> {
    let (id, variant, seed, fold, protocol, status, attempts, worker, device, pe, po, best, rest) =
        raw;
    let (
        test_accuracy,
        test_loss,
        val_accuracy,
        val_loss,
        train_seconds,
        error,
        finished_ms,
        configuration,
    ) = rest;
    let int = |v: i64, column| u32::try_from(v).map_err(|e| corrupt("jobs", &id, column, e));
    Ok(JobLine {
        variant: Variant::from_str(&variant).map_err(|e| corrupt("jobs", &id, "variant", e))?,
        seed: u64::try_from(seed).map_err(|e| corrupt("jobs", &id, "seed", e))?,
        fold: int(fold, "fold")?,
        protocol: protocol_from_str(&protocol).ok_or_else(|| {
            corrupt(
                "jobs",
                &id,
                "protocol",
                format!("unknown protocol {protocol:?}"),
            )
        })?,
        status: JobStatus::from_str(&status).map_err(|e| corrupt("jobs", &id, "status", e))?,
        attempts: int(attempts, "attempts")?,
        worker,
        device,
        progress_epoch: pe.map(|v| int(v, "progress_epoch")).transpose()?,
        progress_of: po.map(|v| int(v, "progress_of")).transpose()?,
        best_epoch: best.map(|v| int(v, "best_epoch")).transpose()?,
        test_accuracy,
        test_loss,
        val_accuracy,
        val_loss,
        train_seconds,
        error,
        finished_ms,
        latest: None,
        configuration: usize::try_from(configuration)
            .map_err(|e| corrupt("experiment_jobs", &id, "configuration", e))?,
        id,
    })
}

fn parse_metrics(job: &str, epoch: i64, json: &str) -> Result<EpochMetrics, DashboardError> {
    serde_json::from_str(json).map_err(|e| {
        corrupt(
            "epoch_metrics",
            &format!("{job} epoch {epoch}"),
            "metrics_json",
            e,
        )
    })
}

/// The latest epoch metrics of every leased or running job, by job id.
fn latest_epochs(conn: &Connection) -> Result<HashMap<String, EpochMetrics>, DashboardError> {
    let mut stmt = conn.prepare(
        "SELECT m.job, m.epoch, m.metrics_json FROM jobs j
         JOIN epoch_metrics m ON m.job = j.id
              AND m.epoch = (SELECT max(epoch) FROM epoch_metrics WHERE job = j.id)
         WHERE j.status IN ('leased', 'running')",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(job, epoch, json)| Ok((job.clone(), parse_metrics(&job, epoch, &json)?)))
        .collect()
}

/// Every job of `experiment` (also those it shares with an earlier experiment,
/// as `report` counts them), in plan order, with the latest epoch of running ones.
pub fn experiment_jobs(
    conn: &Connection,
    experiment: &str,
) -> Result<Vec<JobLine>, DashboardError> {
    let sql = format!(
        "{JOB_SELECT}{CONFIGURATION_OF_LINK} FROM jobs j LEFT JOIN experiment_jobs ej ON ej.job = j.id AND ej.experiment = ?1
         WHERE ej.experiment IS NOT NULL OR j.experiment = ?1 ORDER BY ej.position, j.rowid"
    );
    let mut stmt = conn.prepare(&sql)?;
    let raws = stmt
        .query_map([experiment], raw_job)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut latest = latest_epochs(conn)?;
    raws.into_iter()
        .map(|raw| {
            let mut line = job_line(raw)?;
            if !line.status.is_terminal() {
                line.latest = latest.remove(&line.id);
            }
            Ok(line)
        })
        .collect()
}

/// One job by id, with its latest epoch.
pub fn job(conn: &Connection, id: &str) -> Result<Option<JobLine>, DashboardError> {
    let sql = format!("{JOB_SELECT}{NO_CONFIGURATION} FROM jobs j WHERE j.id = ?1");
    let Some(raw) = conn.query_row(&sql, [id], raw_job).optional()? else {
        return Ok(None);
    };
    let mut line = job_line(raw)?;
    line.latest = epochs(conn, id)?.pop();
    Ok(Some(line))
}

/// Every stored epoch of a job, by epoch.
pub fn epochs(conn: &Connection, job: &str) -> Result<Vec<EpochMetrics>, DashboardError> {
    let mut stmt = conn
        .prepare("SELECT epoch, metrics_json FROM epoch_metrics WHERE job = ?1 ORDER BY epoch")?;
    let rows = stmt
        .query_map([job], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter()
        .map(|(epoch, json)| parse_metrics(job, *epoch, json))
        .collect()
}

/// One open attempt: the job a worker runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAttempt {
    /// Worker id.
    pub worker: String,
    /// Job id.
    pub job: String,
    /// Slot.
    pub device: String,
    /// Variant, seed, fold of the job.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Last reported epoch.
    pub epoch: Option<u32>,
    /// Epochs in total, as reported.
    pub of: Option<u32>,
}

/// The attempts that are their job's current one and have not ended.
pub fn open_attempts(conn: &Connection) -> Result<Vec<OpenAttempt>, DashboardError> {
    let mut stmt = conn.prepare(
        "SELECT a.worker, a.job, a.device, j.variant, j.seed, j.fold, j.progress_epoch, j.progress_of
         FROM attempts a JOIN jobs j ON j.current_attempt = a.id
         WHERE a.ended_ms IS NULL ORDER BY a.id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(OpenAttempt {
                worker: r.get(0)?,
                job: r.get(1)?,
                device: r.get(2)?,
                variant: r.get(3)?,
                seed: r.get::<_, i64>(4)?.unsigned_abs(),
                fold: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                epoch: r
                    .get::<_, Option<i64>>(6)?
                    .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                of: r
                    .get::<_, Option<i64>>(7)?
                    .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A cheap fingerprint of everything the dashboard shows: it changes when a
/// job, an epoch, a worker or an experiment changes.
pub fn version(conn: &Connection) -> Result<String, DashboardError> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) || '.' || coalesce(max(updated_ms), 0) FROM jobs) || '/' ||
                (SELECT coalesce(max(rowid), 0) FROM epoch_metrics) || '/' ||
                (SELECT count(*) || '.' || coalesce(max(last_seen_ms), 0) || '.' ||
                        coalesce(sum(state = 'alive'), 0) || '.' || coalesce(sum(state = 'lost'), 0) FROM workers) || '/' ||
                (SELECT count(*) FROM experiments)",
        [],
        |r| r.get(0),
    )?)
}

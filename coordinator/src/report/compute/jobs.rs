//! The jobs a report covers: the store's records, one per job (a job held
//! twice is represented by the record closest to a result), the plan (every
//! job the configuration asks for, and every job the store holds) and the
//! count of jobs in each state against it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::{Configuration, configurations};
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;

use crate::store::records::{ExperimentRecord, JobRecord};

/// One job of the plan; ordered as the report lists jobs (variant, protocol,
/// configuration, seed, fold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobKey {
    /// Data set variant.
    pub variant: Variant,
    /// Protocol, by name.
    pub protocol: &'static str,
    /// Configuration index.
    pub configuration: usize,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
}

impl JobKey {
    /// The key of `job`.
    pub fn of(job: &JobRecord) -> Self {
        Self {
            variant: job.variant,
            protocol: job.protocol.as_str(),
            configuration: job.configuration,
            seed: job.seed,
            fold: job.fold,
        }
    }

    /// The group the job belongs to.
    pub fn group(&self) -> GroupKey {
        GroupKey {
            variant: self.variant,
            protocol: self.protocol,
            configuration: self.configuration,
        }
    }
}

/// One group of the report: a variant under a protocol (and, in a sweep, a
/// configuration); ordered as the report lists groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// Data set variant.
    pub variant: Variant,
    /// Protocol, by name.
    pub protocol: &'static str,
    /// Configuration index.
    pub configuration: usize,
}

/// The protocol of a name, train-val-test for one this build does not know.
pub fn protocol_of(name: &str) -> ProtocolKind {
    name.parse().unwrap_or(ProtocolKind::TrainValTest)
}

/// How far a status is from a result; the record closest to one represents a
/// job the store holds twice.
fn status_rank(status: JobStatus) -> u8 {
    match status {
        JobStatus::Succeeded => 0,
        JobStatus::Running => 1,
        JobStatus::Leased => 2,
        JobStatus::Pending => 3,
        JobStatus::Failed => 4,
        JobStatus::Pruned => 5,
        JobStatus::Cancelled => 6,
    }
}

/// The records of `experiment` among `jobs`, one per job, each warning said
/// pushed on `warnings`: a record of another experiment is left out, and of a
/// job held twice the record closest to a result is kept.
pub fn index_jobs<'a>(
    experiment: &ExperimentRecord,
    jobs: &'a [JobRecord],
    warnings: &mut Vec<String>,
) -> BTreeMap<JobKey, &'a JobRecord> {
    let mut by_key: BTreeMap<JobKey, &JobRecord> = BTreeMap::new();
    for job in jobs {
        if job.experiment != experiment.id {
            warnings.push(format!(
                "job {} seed {} fold {} belongs to experiment {}, not {}; left out",
                job.variant, job.seed, job.fold, job.experiment, experiment.id
            ));
            continue;
        }
        match by_key.get(&JobKey::of(job)) {
            Some(kept) => {
                warnings.push(format!(
                    "{} {} seed {} fold {} is in the store twice; the {} record is used",
                    job.variant,
                    job.protocol,
                    job.seed,
                    job.fold,
                    if status_rank(job.status) < status_rank(kept.status) {
                        job.status
                    } else {
                        kept.status
                    }
                ));
                if status_rank(job.status) < status_rank(kept.status) {
                    by_key.insert(JobKey::of(job), job);
                }
            }
            None => {
                by_key.insert(JobKey::of(job), job);
            }
        }
    }
    by_key
}

/// The planned jobs: those of `by_key` and every one the stored configuration
/// asks for, with the configuration's sweep points. A configuration that does
/// not parse plans nothing (and no sweep point); `warnings` says so.
pub fn plan(
    config_toml: &str,
    by_key: &BTreeMap<JobKey, &JobRecord>,
    warnings: &mut Vec<String>,
) -> (BTreeSet<JobKey>, Vec<Configuration>) {
    let mut planned: BTreeSet<JobKey> = by_key.keys().copied().collect();
    let configs = match ExperimentConfig::from_toml_str(config_toml)
        .map_err(|e| e.to_string())
        .and_then(|c| configurations(&c).map_err(|e| e.to_string()))
    {
        Ok(configs) => configs,
        Err(e) => {
            warnings.push(format!(
                "the stored configuration does not parse ({e}); the plan is taken from the store's jobs only"
            ));
            return (planned, Vec::new());
        }
    };
    for (c, configuration) in configs.iter().enumerate() {
        let p = &configuration.config.protocol;
        for &variant in &p.variants {
            for &seed in &p.seeds {
                for fold in 0..p.kind.fold_count(p.folds) {
                    planned.insert(JobKey {
                        variant,
                        protocol: p.kind.as_str(),
                        configuration: c,
                        seed,
                        fold,
                    });
                }
            }
        }
    }
    (planned, configs)
}

/// How many jobs are in each state, against the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Jobs planned (from the configuration and the store together).
    pub planned: usize,
    /// Planned jobs the store does not hold at all.
    pub missing: usize,
    /// Jobs waiting for a worker.
    pub pending: usize,
    /// Jobs leased, no progress yet.
    pub leased: usize,
    /// Jobs running.
    pub running: usize,
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// Jobs that failed.
    pub failed: usize,
    /// Jobs cancelled.
    pub cancelled: usize,
    /// Jobs stopped by the sweep's pruner.
    pub pruned: usize,
    /// True when every planned job succeeded or was pruned.
    pub complete: bool,
}

/// The jobs of `by_key` in each state, against `planned`.
pub fn progress(planned: &BTreeSet<JobKey>, by_key: &BTreeMap<JobKey, &JobRecord>) -> Progress {
    let count = |s: JobStatus| by_key.values().filter(|j| j.status == s).count();
    let succeeded = count(JobStatus::Succeeded);
    Progress {
        planned: planned.len(),
        missing: planned.iter().filter(|k| !by_key.contains_key(k)).count(),
        pending: count(JobStatus::Pending),
        leased: count(JobStatus::Leased),
        running: count(JobStatus::Running),
        succeeded,
        failed: count(JobStatus::Failed),
        cancelled: count(JobStatus::Cancelled),
        pruned: count(JobStatus::Pruned),
        complete: succeeded + count(JobStatus::Pruned) == planned.len(),
    }
}

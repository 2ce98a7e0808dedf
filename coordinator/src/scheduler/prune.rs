//! Median pruning inside the scheduler: after a job's epoch is stored, its
//! sweep group (same experiment, variant, seed and fold; other
//! configurations) decides whether it, or a job already past that epoch, stops.
//! The rule itself is [`spikecv_common::experiment::prune`]; this module reads the store.
//! A job that reached its last epoch is never pruned: its result is
//! complete, pruning would only throw it away. Only the epochs of attempts
//! whose metrics may decide are compared (not those of failed attempts, nor
//! of released or lost ones nobody resumed); each decision keeps the
//! attempts it stood on, and [`undo_decisions_of`] puts the jobs a failed or
//! lost attempt's metrics pruned back in the queue.

use std::collections::HashMap;

use rusqlite::Connection;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::prune::verdict::PruneVerdict;
use spikecv_common::experiment::prune::{PruneRule, Pruner};

use super::SchedulerError;
use super::checkpoint_ops::drop_checkpoint;
use super::fence::to_json;
use crate::ids::AttemptId;
use crate::states::AttemptOutcome;
use crate::store::experiments;
use crate::store::metrics::{self, Peer};
use crate::store::{job_writes, jobs, lease_writes, prune_evidence};

type Result<T> = std::result::Result<T, SchedulerError>;

/// Pruning rules by experiment id, read once per process from the stored
/// config (`None`: the experiment does not prune), for the median rule here
/// and successive halving ([`super::asha`]).
#[derive(Debug, Default)]
pub(super) struct PruneRules(HashMap<String, Option<Pruner>>);

impl PruneRules {
    /// The rule of `experiment`, whose stored config is `config_toml`.
    pub(super) fn rule(&mut self, experiment: &str, config_toml: &str) -> Option<Pruner> {
        *self
            .0
            .entry(experiment.to_owned())
            .or_insert_with(|| match ExperimentConfig::from_toml_str(config_toml) {
                Ok(config) => config.pruning().ok().flatten(),
                Err(e) => {
                    tracing::warn!(experiment, error = %e, "stored config does not parse; its jobs are not pruned");
                    None
                }
            })
    }
}

/// One experiment a job belongs to, with its configuration and rule there.
struct Member {
    experiment: String,
    configuration: i64,
    rule: PruneRule,
}

/// The experiments `job` belongs to, if every one of them prunes (a job shared
/// with an experiment that does not prune runs to its end).
fn members(conn: &Connection, rules: &mut PruneRules, job: &JobId) -> Result<Option<Vec<Member>>> {
    let mut out = Vec::new();
    for m in experiments::memberships(conn, job)? {
        let Some(rule) = rules
            .rule(&m.experiment, &m.config_toml)
            .and_then(Pruner::median)
        else {
            return Ok(None);
        };
        out.push(Member {
            experiment: m.experiment,
            configuration: m.configuration,
            rule,
        });
    }
    Ok((!out.is_empty()).then_some(out))
}

fn val_accuracy(p: &Peer) -> Option<f64> {
    p.metrics
        .as_ref()
        .and_then(|m| m.val_accuracy)
        .filter(|v| v.is_finite())
}

/// The verdict on `candidate` at `epoch` from every experiment it belongs
/// to, with the attempts whose metrics made it.
fn judge(
    conn: &Connection,
    rules: &mut PruneRules,
    candidate: &JobId,
    epoch: u32,
) -> Result<Option<(PruneVerdict, Vec<AttemptId>)>> {
    let Some(members) = members(conn, rules, candidate)? else {
        return Ok(None);
    };
    // A job that reached its last epoch has nothing left to save (it may be
    // ahead of the epoch compared): its result stands.
    let (reached, planned) = metrics::reach(conn, candidate)?;
    if planned.is_some_and(|p| reached.unwrap_or(0).max(epoch) >= p) {
        return Ok(None);
    }
    for m in members {
        let peers = metrics::sweep_group(conn, &m.experiment, candidate, epoch)?;
        let Some(own) = peers
            .iter()
            .find(|p| p.job == *candidate)
            .and_then(val_accuracy)
        else {
            continue;
        };
        let used: Vec<&Peer> = peers
            .iter()
            .filter(|p| p.configuration != m.configuration)
            .filter(|p| val_accuracy(p).is_some())
            .collect();
        let others: Vec<f64> = used.iter().filter_map(|p| val_accuracy(p)).collect();
        if let Some(v) = m.rule.decide(epoch, own, &others) {
            let own_attempt = peers.iter().find(|p| p.job == *candidate);
            let evidence = used
                .iter()
                .copied()
                .chain(own_attempt)
                .filter_map(|p| p.attempt)
                .collect();
            return Ok(Some((v, evidence)));
        }
    }
    Ok(None)
}

/// Stops `job` as pruned: its attempt ends (the worker hears it in the answer
/// to its report or at its next heartbeat), the verdict is stored with the
/// attempts whose metrics made it (`evidence`), and its checkpoint dropped
/// (noted in `dropped`).
pub(super) fn mark_pruned(
    conn: &Connection,
    job: &JobId,
    verdict: &PruneVerdict,
    evidence: &[AttemptId],
    now: i64,
    dropped: &mut Vec<(JobId, String)>,
) -> Result<()> {
    if let Some(attempt) = jobs::job(conn, job)?.and_then(|j| j.current_attempt) {
        lease_writes::end_attempt(
            conn,
            attempt,
            now,
            AttemptOutcome::Cancelled,
            Some(&verdict.to_string()),
        )?;
    }
    job_writes::stop_job(conn, job, JobStatus::Pruned, Some(&to_json(verdict)?), now)?;
    prune_evidence::record(conn, job, evidence)?;
    drop_checkpoint(conn, job, dropped)?;
    tracing::info!(job = %job, %verdict, "job pruned");
    Ok(())
}

/// After `job` stored epoch `epoch`: prunes it, and any other live job of its
/// sweep groups that reported that epoch earlier and now loses against the
/// larger group. Returns whether `job` itself was pruned; the checkpoints of
/// pruned jobs are noted in `dropped`, their files to be removed after commit.
pub(super) fn prune_after_epoch(
    conn: &Connection,
    rules: &mut PruneRules,
    job: &JobId,
    epoch: u32,
    now: i64,
    dropped: &mut Vec<(JobId, String)>,
) -> Result<bool> {
    let Some(members) = members(conn, rules, job)? else {
        return Ok(false);
    };
    let mut candidates = vec![job.clone()];
    for m in &members {
        for p in metrics::sweep_group(conn, &m.experiment, job, epoch)? {
            let live = matches!(p.status, JobStatus::Leased | JobStatus::Running);
            if live && p.metrics.is_some() && !candidates.contains(&p.job) {
                candidates.push(p.job);
            }
        }
    }
    let mut self_pruned = false;
    for candidate in candidates {
        let live = jobs::job(conn, &candidate)?
            .is_some_and(|j| matches!(j.status, JobStatus::Leased | JobStatus::Running));
        if !live {
            continue;
        }
        if let Some((verdict, evidence)) = judge(conn, rules, &candidate, epoch)? {
            mark_pruned(conn, &candidate, &verdict, &evidence, now, dropped)?;
            self_pruned |= candidate == *job;
        }
    }
    Ok(self_pruned)
}

/// After `attempt` failed or was lost: every job still pruned on a decision
/// its metrics took part in goes back to pending (from epoch 0, its
/// checkpoint having been dropped when it was pruned). Returns those jobs.
pub(super) fn undo_decisions_of(
    conn: &Connection,
    attempt: AttemptId,
    now: i64,
) -> Result<Vec<JobId>> {
    let jobs = prune_evidence::pruned_on(conn, attempt)?;
    for (job, max_attempts) in &jobs {
        job_writes::requeue_job(conn, job, *max_attempts, now)?;
        tracing::warn!(job = %job, %attempt, "pruning undone: it stood on the metrics of an attempt that failed or was lost");
    }
    Ok(jobs.into_iter().map(|(job, _)| job).collect())
}

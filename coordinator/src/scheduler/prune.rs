//! Median pruning inside the scheduler: after a job's epoch is stored, its
//! sweep group (same experiment, variant, seed and fold; other
//! configurations) decides whether it, or a job already past that epoch, stops.
//! The rule itself is [`spikecv_common::prune`]; this module reads the store.
//! A job that reached its last epoch is never pruned: its result is
//! complete, pruning would only throw it away.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use spikecv_common::config::ExperimentConfig;
use spikecv_common::job::{EpochMetrics, JobStatus};
use spikecv_common::plan::JobId;
use spikecv_common::prune::{PruneRule, PruneVerdict, prune_rule};

use super::SchedulerError;
use super::ops::{end_attempt, exec, to_json};
use crate::store::{StoreError, reads};

type Result<T> = std::result::Result<T, SchedulerError>;

/// Pruning rules by experiment id, parsed once per process (`None`: the
/// experiment does not prune).
#[derive(Debug, Default)]
pub(super) struct PruneRules(HashMap<String, Option<PruneRule>>);

impl PruneRules {
    fn rule(&mut self, experiment: &str, config_toml: &str) -> Option<PruneRule> {
        *self
            .0
            .entry(experiment.to_owned())
            .or_insert_with(|| match ExperimentConfig::from_toml_str(config_toml) {
                Ok(config) => prune_rule(&config).ok().flatten(),
                Err(e) => {
                    tracing::warn!(experiment, error = %e, "stored config does not parse; its jobs are not pruned");
                    None
                }
            })
    }
}

/// One experiment a job belongs to, with its configuration there.
struct Membership {
    experiment: String,
    configuration: i64,
    rule: PruneRule,
}

/// The experiments `job` belongs to, if every one of them prunes (a job shared
/// with an experiment that does not prune runs to its end).
fn memberships(
    conn: &Connection,
    rules: &mut PruneRules,
    job: &JobId,
) -> Result<Option<Vec<Membership>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ej.experiment, ej.configuration, e.config_toml
         FROM experiment_jobs ej JOIN experiments e ON e.id = ej.experiment
         WHERE ej.job = ?1",
    )?;
    let rows = stmt
        .query_map([job.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (experiment, configuration, toml) in rows {
        let Some(rule) = rules.rule(&experiment, &toml) else {
            return Ok(None);
        };
        out.push(Membership {
            experiment,
            configuration,
            rule,
        });
    }
    Ok((!out.is_empty()).then_some(out))
}

/// A job of a sweep group with its validation accuracy at the epoch compared.
struct Peer {
    job: JobId,
    configuration: i64,
    status: JobStatus,
    val_accuracy: Option<f64>,
}

/// The jobs of `experiment` with `job`'s variant, seed and fold, each with
/// its validation accuracy at `epoch` (when reported).
fn group(conn: &Connection, experiment: &str, job: &JobId, epoch: u32) -> Result<Vec<Peer>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, ej.configuration, o.status, m.metrics_json
         FROM jobs me
         JOIN jobs o ON o.variant = me.variant AND o.seed = me.seed AND o.fold = me.fold
         JOIN experiment_jobs ej ON ej.job = o.id AND ej.experiment = ?2
         LEFT JOIN epoch_metrics m ON m.job = o.id AND m.epoch = ?3
         WHERE me.id = ?1",
    )?;
    let rows = stmt
        .query_map(params![job.as_str(), experiment, epoch], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, configuration, status, metrics)| {
            let status = status
                .parse()
                .map_err(
                    |e: spikecv_common::job::UnknownStatus| StoreError::Corrupt {
                        table: "jobs",
                        key: id.clone(),
                        column: "status",
                        message: e.to_string(),
                    },
                )?;
            let val_accuracy = match metrics {
                Some(json) => serde_json::from_str::<EpochMetrics>(&json)
                    .map_err(|e| StoreError::Corrupt {
                        table: "epoch_metrics",
                        key: format!("{id} epoch {epoch}"),
                        column: "metrics_json",
                        message: e.to_string(),
                    })?
                    .val_accuracy
                    .filter(|v| v.is_finite()),
                None => None,
            };
            Ok(Peer {
                job: JobId::new(id),
                configuration,
                status,
                val_accuracy,
            })
        })
        .collect()
}

/// The epochs `job` trains, from its stored config.
fn planned_epochs(conn: &Connection, job: &JobId) -> Result<u32> {
    let toml: String = conn.query_row(
        "SELECT config_toml FROM jobs WHERE id = ?1",
        [job.as_str()],
        |r| r.get(0),
    )?;
    let config = ExperimentConfig::from_toml_str(&toml).map_err(|e| StoreError::Corrupt {
        table: "jobs",
        key: job.as_str().to_owned(),
        column: "config_toml",
        message: e.to_string(),
    })?;
    Ok(config.training.epochs)
}

/// The verdict on `candidate` at `epoch` from every experiment it belongs to.
fn judge(
    conn: &Connection,
    rules: &mut PruneRules,
    candidate: &JobId,
    epoch: u32,
) -> Result<Option<PruneVerdict>> {
    let Some(members) = memberships(conn, rules, candidate)? else {
        return Ok(None);
    };
    // A job that reached its last epoch has nothing left to save (it may be
    // ahead of the epoch compared): its result stands.
    let reached: Option<u32> = conn.query_row(
        "SELECT max(epoch) FROM epoch_metrics WHERE job = ?1",
        [candidate.as_str()],
        |r| r.get(0),
    )?;
    if reached.unwrap_or(0).max(epoch) >= planned_epochs(conn, candidate)? {
        return Ok(None);
    }
    for m in members {
        let peers = group(conn, &m.experiment, candidate, epoch)?;
        let Some(own) = peers
            .iter()
            .find(|p| p.job == *candidate)
            .and_then(|p| p.val_accuracy)
        else {
            continue;
        };
        let others: Vec<f64> = peers
            .iter()
            .filter(|p| p.configuration != m.configuration)
            .filter_map(|p| p.val_accuracy)
            .collect();
        if let Some(v) = m.rule.decide(epoch, own, &others) {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Stops `job` as pruned: its attempt ends (the worker hears it in the answer
/// to its report or at its next heartbeat) and the verdict is stored.
fn mark_pruned(conn: &Connection, job: &JobId, verdict: &PruneVerdict, now: i64) -> Result<()> {
    let current: Option<u64> = conn
        .query_row(
            "SELECT current_attempt FROM jobs WHERE id = ?1",
            [job.as_str()],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(attempt) = current {
        end_attempt(
            conn,
            super::AttemptId(attempt),
            now,
            "cancelled",
            Some(&verdict.to_string()),
        )?;
    }
    exec(
        conn,
        "UPDATE jobs SET status = 'pruned', current_attempt = NULL, pruned_json = ?2,
             updated_ms = ?3, finished_ms = ?3
         WHERE id = ?1",
        params![job.as_str(), to_json(verdict)?, now],
    )?;
    tracing::info!(job = %job, %verdict, "job pruned");
    Ok(())
}

/// After `job` stored epoch `epoch`: prunes it, and any other live job of its
/// sweep groups that reported that epoch earlier and now loses against the
/// larger group. Returns whether `job` itself was pruned.
pub(super) fn prune_after_epoch(
    conn: &Connection,
    rules: &mut PruneRules,
    job: &JobId,
    epoch: u32,
    now: i64,
) -> Result<bool> {
    let Some(members) = memberships(conn, rules, job)? else {
        return Ok(false);
    };
    let mut candidates = vec![job.clone()];
    for m in &members {
        for p in group(conn, &m.experiment, job, epoch)? {
            let live = matches!(p.status, JobStatus::Leased | JobStatus::Running);
            if live && p.val_accuracy.is_some() && !candidates.contains(&p.job) {
                candidates.push(p.job);
            }
        }
    }
    let mut self_pruned = false;
    for candidate in candidates {
        let live = reads::job(conn, &candidate)?
            .is_some_and(|j| matches!(j.status, JobStatus::Leased | JobStatus::Running));
        if !live {
            continue;
        }
        if let Some(verdict) = judge(conn, rules, &candidate, epoch)? {
            mark_pruned(conn, &candidate, &verdict, now)?;
            self_pruned |= candidate == *job;
        }
    }
    Ok(self_pruned)
}

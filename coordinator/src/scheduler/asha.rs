//! Successive halving inside the scheduler: when a job stores a rung's epoch,
//! its configuration is judged on everything its experiment stored at that
//! epoch, and, when it falls below the cut, every unfinished job of it stops.
//! The rule itself is [`spikecv_common::experiment::prune::asha::AshaRule`]; this module reads
//! the store. A job that reached its last epoch is never stopped.

use rusqlite::Connection;
use spikecv_common::experiment::plan::JobId;
use spikecv_common::experiment::prune::Pruner;

use super::SchedulerError;
use super::prune::{PruneRules, mark_pruned};
use crate::ids::AttemptId;
use crate::store::{experiments, jobs, metrics};

type Result<T> = std::result::Result<T, SchedulerError>;

/// After `job` stored `epoch`: in each experiment it belongs to that uses
/// successive halving and has a rung there, judges its configuration and
/// stops its unfinished jobs if it lost. Returns whether `job` itself was
/// stopped; checkpoints of stopped jobs are noted in `dropped`.
pub(super) fn halve_after_epoch(
    conn: &Connection,
    rules: &mut PruneRules,
    job: &JobId,
    epoch: u32,
    now: i64,
    dropped: &mut Vec<(JobId, String)>,
) -> Result<bool> {
    let mut self_stopped = false;
    for m in experiments::memberships(conn, job)? {
        let Some(rule) = rules
            .rule(&m.experiment, &m.config_toml)
            .and_then(Pruner::asha)
        else {
            continue;
        };
        if !rule.is_rung(epoch) {
            continue;
        }
        let rung = metrics::rung_results(conn, &m.experiment, epoch)?;
        let evidence: Vec<AttemptId> = rung.iter().map(|(_, _, a)| *a).collect();
        let results: Vec<(usize, f64)> = rung
            .into_iter()
            .filter_map(|(c, accuracy, _)| Some((usize::try_from(c).ok()?, accuracy)))
            .collect();
        let Ok(configuration) = usize::try_from(m.configuration) else {
            continue;
        };
        let Some(verdict) = rule.judge(epoch, configuration, &results) else {
            continue;
        };
        for victim in jobs::unfinished_jobs(conn, &m.experiment, m.configuration)? {
            let (reached, planned) = metrics::reach(conn, &victim)?;
            if planned.is_some_and(|p| reached.unwrap_or(0) >= p) {
                continue;
            }
            // A job shared with an experiment that does not halve runs on.
            let mut shared_elsewhere = false;
            for other in experiments::memberships(conn, &victim)? {
                shared_elsewhere |= rules
                    .rule(&other.experiment, &other.config_toml)
                    .and_then(Pruner::asha)
                    .is_none();
            }
            if shared_elsewhere {
                continue;
            }
            mark_pruned(conn, &victim, &verdict, &evidence, now, dropped)?;
            self_stopped |= victim == *job;
        }
    }
    Ok(self_stopped)
}

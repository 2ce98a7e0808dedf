//! Median pruning of a sweep's hopeless configurations, decided on validation
//! accuracy only.
//!
//! ```toml
//! [sweep]
//! "training.lr" = [0.001, 0.000001]
//! prune = "median"
//! warmup_epochs = 2     # no pruning at epochs 1..=2 (default 1)
//! min_jobs = 1          # other configurations' jobs needed at that epoch (default 1)
//! ```
//!
//! When a job of configuration *c* reports epoch *e*, it is compared with the
//! jobs of the *other* configurations of the same experiment and the same
//! (variant, seed, fold) that have reported epoch *e*: if at least `min_jobs`
//! of them have, *e* is past the warm-up, and the job's validation accuracy at
//! *e* is strictly below their median, the job is pruned. Test accuracy is
//! never looked at; pruning needs the train-val-test protocol. (The
//! coordinator also never prunes a job that already reported its last epoch:
//! there is nothing left to save.)
//!
//! `prune = "asha"` stops whole configurations by successive halving: see
//! [`asha`]. The settings are read with `[sweep]` into [`PruneSettings`];
//! [`PruneSettings::rule`] checks them against the experiment's protocol and
//! epochs and gives the [`Pruner`] the coordinator applies. What a rule says
//! about a job it stops is a [`verdict::PruneVerdict`].

use serde::{Deserialize, Serialize};

use crate::experiment::error::{ConfigError, at_least_one, sweep_err};
use crate::experiment::prune::asha::AshaRule;
use crate::experiment::prune::verdict::{PruneKind, PruneVerdict};
use crate::experiment::sections::ProtocolKind;

pub mod asha;
pub mod verdict;

/// The `[sweep]` keys that configure pruning rather than name a swept value.
pub const PRUNE_KEYS: &[&str] = &[
    "prune",
    "warmup_epochs",
    "min_jobs",
    "reduction_factor",
    "first_rung",
];

/// An experiment's pruning settings (only with `prune = "median"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneRule {
    /// Epochs `1..=warmup_epochs` are never pruned.
    pub warmup_epochs: u32,
    /// How many other configurations' jobs must have reported the epoch.
    pub min_jobs: u32,
}

/// The pruning a `[sweep]` asks for (`prune` and its settings), as written;
/// [`PruneSettings::rule`] checks it against the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneSettings {
    /// `prune = "median"` with `warmup_epochs` and `min_jobs`.
    Median(PruneRule),
    /// `prune = "asha"` ([`asha`]).
    Asha {
        /// η: one configuration in η goes on at each rung.
        reduction_factor: u32,
        /// Epochs at the first rung.
        first_rung: u32,
    },
}

/// The rule an experiment prunes by: its [`PruneSettings`] checked against
/// its protocol and `training.epochs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruner {
    /// The median rule.
    Median(PruneRule),
    /// Successive halving.
    Asha(AshaRule),
}

impl Pruner {
    /// The median rule, `None` for another rule.
    pub fn median(self) -> Option<PruneRule> {
        match self {
            Pruner::Median(rule) => Some(rule),
            Pruner::Asha(_) => None,
        }
    }

    /// The successive-halving rule, `None` for another rule.
    pub fn asha(self) -> Option<AshaRule> {
        match self {
            Pruner::Asha(rule) => Some(rule),
            Pruner::Median(_) => None,
        }
    }
}

/// A setting of `[sweep]` as a count, `default` when absent.
fn count(table: &toml::Table, key: &str, default: u32) -> Result<u32, ConfigError> {
    match table.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(i)) => {
            u32::try_from(*i).map_err(|_| sweep_err(key, format!("{i} is not in 0..=4294967295")))
        }
        Some(_) => Err(sweep_err(key, "expected a whole number")),
    }
}

/// The first of `keys` present in `table`, refused with `message`.
fn refuse_present(table: &toml::Table, keys: &[&str], message: &str) -> Result<(), ConfigError> {
    match keys.iter().find(|k| table.contains_key(**k)) {
        Some(key) => Err(sweep_err(key, message)),
        None => Ok(()),
    }
}

impl PruneSettings {
    /// The pruning settings of a `[sweep]` table, `None` when it does not
    /// prune; what can be checked without the rest of the experiment is, and
    /// errors name the key.
    pub fn parse(table: &toml::Table) -> Result<Option<Self>, ConfigError> {
        let warmup_epochs = count(table, "warmup_epochs", 1)?;
        let min_jobs = count(table, "min_jobs", 1)?;
        match table.get("prune") {
            None => {
                refuse_present(
                    table,
                    &PRUNE_KEYS[1..],
                    "only means something with prune = \"median\" or \"asha\"",
                )?;
                Ok(None)
            }
            Some(toml::Value::String(s)) if s == "median" => {
                refuse_present(
                    table,
                    &["reduction_factor", "first_rung"],
                    "belongs to prune = \"asha\", not \"median\"",
                )?;
                at_least_one("sweep.min_jobs", min_jobs)?;
                Ok(Some(PruneSettings::Median(PruneRule {
                    warmup_epochs,
                    min_jobs,
                })))
            }
            Some(toml::Value::String(s)) if s == "asha" => {
                refuse_present(
                    table,
                    &["warmup_epochs", "min_jobs"],
                    "belongs to prune = \"median\", not \"asha\"",
                )?;
                let reduction_factor = count(table, "reduction_factor", 3)?;
                if reduction_factor < 2 {
                    return Err(sweep_err("reduction_factor", "must be at least 2"));
                }
                Ok(Some(PruneSettings::Asha {
                    reduction_factor,
                    first_rung: count(table, "first_rung", 1)?,
                }))
            }
            Some(other) => Err(sweep_err(
                "prune",
                format!("{other} is not a pruner (\"median\" or \"asha\")"),
            )),
        }
    }

    /// The rule for an experiment of protocol `protocol` and `epochs`
    /// training epochs: both rules decide on validation accuracy, and need
    /// an epoch to act at.
    pub fn rule(self, protocol: ProtocolKind, epochs: u32) -> Result<Pruner, ConfigError> {
        match self {
            PruneSettings::Median(rule) => {
                if protocol != ProtocolKind::TrainValTest {
                    return Err(sweep_err(
                        "prune",
                        "pruning decides on validation accuracy: it needs protocol.kind = \"train-val-test\"",
                    ));
                }
                if rule.warmup_epochs >= epochs {
                    return Err(sweep_err(
                        "warmup_epochs",
                        format!(
                            "{} leaves no epoch to prune at (training.epochs = {epochs})",
                            rule.warmup_epochs
                        ),
                    ));
                }
                Ok(Pruner::Median(rule))
            }
            PruneSettings::Asha {
                reduction_factor,
                first_rung,
            } => {
                if protocol != ProtocolKind::TrainValTest {
                    return Err(sweep_err(
                        "prune",
                        "successive halving decides on validation accuracy: it needs protocol.kind = \"train-val-test\"",
                    ));
                }
                if first_rung == 0 || first_rung >= epochs {
                    return Err(sweep_err(
                        "first_rung",
                        format!(
                            "{first_rung}: the first rung must be an epoch in 1..{epochs} (training.epochs)"
                        ),
                    ));
                }
                Ok(Pruner::Asha(AshaRule {
                    reduction_factor,
                    first_rung,
                    max_epochs: epochs,
                }))
            }
        }
    }
}

/// The median of `values` (mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

impl PruneRule {
    /// Whether a job with validation accuracy `own` at `epoch` is pruned,
    /// against `others` (the other configurations' jobs at that epoch).
    pub fn decide(&self, epoch: u32, own: f64, others: &[f64]) -> Option<PruneVerdict> {
        if epoch <= self.warmup_epochs || others.len() < self.min_jobs as usize {
            return None;
        }
        let m = median(others)?;
        (own < m).then_some(PruneVerdict {
            rule: PruneKind::Median,
            epoch,
            val_accuracy: own,
            median: m,
            compared_with: others.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> PruneRule {
        PruneRule {
            warmup_epochs: 2,
            min_jobs: 2,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.3]), Some(0.3));
        assert_eq!(median(&[0.9, 0.1, 0.5]), Some(0.5));
        assert_eq!(median(&[0.5, 0.125, 0.25, 1.0]), Some(0.375));
    }

    #[test]
    fn prunes_only_past_warmup_with_enough_jobs_and_strictly_below() {
        let r = rule();
        assert_eq!(r.decide(2, 0.0, &[0.5, 0.6]), None, "inside the warm-up");
        assert_eq!(r.decide(3, 0.0, &[0.5]), None, "too few jobs to compare");
        assert_eq!(r.decide(3, 0.55, &[0.5, 0.6]), None, "equal to the median");
        assert_eq!(r.decide(3, 0.7, &[0.5, 0.6]), None, "above the median");
        let v = r.decide(3, 0.2, &[0.5, 0.6]).expect("below the median");
        assert_eq!(
            (v.epoch, v.val_accuracy, v.median, v.compared_with),
            (3, 0.2, 0.55, 2)
        );
        assert!(v.to_string().contains("epoch 3"));
    }
}

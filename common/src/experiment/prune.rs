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

use serde::{Deserialize, Serialize};

use crate::experiment::config::ExperimentConfig;
use crate::experiment::error::ConfigError;
use crate::experiment::sections::ProtocolKind;

pub mod asha;

pub use asha::AshaRule;

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

/// Which rule stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneKind {
    /// The median rule, against the same (variant, seed, fold) of the other
    /// configurations.
    #[default]
    Median,
    /// Successive halving ([`asha`]), the whole configuration at a rung.
    Asha,
}

fn is_median(kind: &PruneKind) -> bool {
    *kind == PruneKind::Median
}

/// Why a job was pruned: what it was compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneVerdict {
    /// The rule (absent in records written before successive halving: the
    /// median rule).
    #[serde(default, skip_serializing_if = "is_median")]
    pub rule: PruneKind,
    /// The epoch compared.
    pub epoch: u32,
    /// The job's validation accuracy at that epoch (successive halving: its
    /// configuration's mean over the jobs at the rung).
    pub val_accuracy: f64,
    /// What it fell below: the median of the other configurations' jobs at
    /// that epoch, or (successive halving) the `1 − 1/η` quantile of the
    /// other configurations' means at the rung.
    pub median: f64,
    /// How many jobs (successive halving: configurations) it was compared with.
    pub compared_with: usize,
}

impl std::fmt::Display for PruneVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rule {
            PruneKind::Median => write!(
                f,
                "pruned at epoch {}: validation accuracy {:.4} below the median {:.4} of {} other configuration job(s)",
                self.epoch, self.val_accuracy, self.median, self.compared_with
            ),
            PruneKind::Asha => write!(
                f,
                "stopped by successive halving at epoch {}: mean validation accuracy {:.4} below the cutoff {:.4} of {} other configuration(s)",
                self.epoch, self.val_accuracy, self.median, self.compared_with
            ),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("sweep.{key}"),
        message: message.into(),
    }
}

/// The pruning settings of `config`'s `[sweep]`, `None` when it does not prune;
/// errors name the key.
pub fn prune_rule(config: &ExperimentConfig) -> Result<Option<PruneRule>, ConfigError> {
    let Some(spec) = config.sweep.as_ref() else {
        return Ok(None);
    };
    let table = &spec.0;
    let count = |key: &str, default: u32| -> Result<u32, ConfigError> {
        match table.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) => {
                u32::try_from(*i).map_err(|_| invalid(key, format!("{i} is not in 0..=4294967295")))
            }
            Some(_) => Err(invalid(key, "expected a whole number")),
        }
    };
    let warmup_epochs = count("warmup_epochs", 1)?;
    let min_jobs = count("min_jobs", 1)?;
    match table.get("prune") {
        None | Some(toml::Value::String(_)) if asha_rule(config)?.is_some() => Ok(None),
        None => {
            for key in [
                "warmup_epochs",
                "min_jobs",
                "reduction_factor",
                "first_rung",
            ] {
                if table.contains_key(key) {
                    return Err(invalid(
                        key,
                        "only means something with prune = \"median\" or \"asha\"",
                    ));
                }
            }
            Ok(None)
        }
        Some(toml::Value::String(s)) if s == "median" => {
            for key in ["reduction_factor", "first_rung"] {
                if table.contains_key(key) {
                    return Err(invalid(key, "belongs to prune = \"asha\", not \"median\""));
                }
            }
            if config.protocol.kind != ProtocolKind::TrainValTest {
                return Err(invalid(
                    "prune",
                    "pruning decides on validation accuracy: it needs protocol.kind = \"train-val-test\"",
                ));
            }
            if warmup_epochs >= config.training.epochs {
                return Err(invalid(
                    "warmup_epochs",
                    format!(
                        "{warmup_epochs} leaves no epoch to prune at (training.epochs = {})",
                        config.training.epochs
                    ),
                ));
            }
            if min_jobs == 0 {
                return Err(invalid("min_jobs", "must be at least 1"));
            }
            Ok(Some(PruneRule {
                warmup_epochs,
                min_jobs,
            }))
        }
        Some(other) => Err(invalid(
            "prune",
            format!("{other} is not a pruner (\"median\" or \"asha\")"),
        )),
    }
}

/// The successive-halving settings of `config`'s `[sweep]` (`prune =
/// "asha"`), `None` when it does not use them; errors name the key.
pub fn asha_rule(config: &ExperimentConfig) -> Result<Option<AshaRule>, ConfigError> {
    let Some(spec) = config.sweep.as_ref() else {
        return Ok(None);
    };
    let table = &spec.0;
    if !matches!(table.get("prune"), Some(toml::Value::String(s)) if s == "asha") {
        return Ok(None);
    }
    let count = |key: &str, default: u32| -> Result<u32, ConfigError> {
        match table.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) => {
                u32::try_from(*i).map_err(|_| invalid(key, format!("{i} is not in 0..=4294967295")))
            }
            Some(_) => Err(invalid(key, "expected a whole number")),
        }
    };
    for key in ["warmup_epochs", "min_jobs"] {
        if table.contains_key(key) {
            return Err(invalid(key, "belongs to prune = \"median\", not \"asha\""));
        }
    }
    if config.protocol.kind != ProtocolKind::TrainValTest {
        return Err(invalid(
            "prune",
            "successive halving decides on validation accuracy: it needs protocol.kind = \"train-val-test\"",
        ));
    }
    let reduction_factor = count("reduction_factor", 3)?;
    if reduction_factor < 2 {
        return Err(invalid("reduction_factor", "must be at least 2"));
    }
    let first_rung = count("first_rung", 1)?;
    if first_rung == 0 || first_rung >= config.training.epochs {
        return Err(invalid(
            "first_rung",
            format!(
                "{first_rung}: the first rung must be an epoch in 1..{} (training.epochs)",
                config.training.epochs
            ),
        ));
    }
    Ok(Some(AshaRule {
        reduction_factor,
        first_rung,
        max_epochs: config.training.epochs,
    }))
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

    fn config(sweep: &str, protocol: &str) -> Result<ExperimentConfig, ConfigError> {
        ExperimentConfig::from_toml_str(&format!(
            "[data]\nroot = \"d\"\n[protocol]\nkind = \"{protocol}\"\n[training]\nepochs = 4\n[sweep]\n\"training.lr\" = [0.1, 0.01]\n{sweep}"
        ))
    }

    #[test]
    fn settings_are_read_and_checked_naming_the_key() {
        let c = config(
            "prune = \"median\"\nwarmup_epochs = 2\nmin_jobs = 3",
            "train-val-test",
        )
        .expect("valid");
        assert_eq!(
            prune_rule(&c).expect("valid"),
            Some(PruneRule {
                warmup_epochs: 2,
                min_jobs: 3
            })
        );
        let none = config("", "train-val-test").expect("valid");
        assert_eq!(prune_rule(&none).expect("valid"), None);
        for (sweep, protocol, key) in [
            ("prune = \"median\"", "train-test", "sweep.prune"),
            ("prune = \"mean\"", "train-val-test", "sweep.prune"),
            (
                "prune = \"median\"\nwarmup_epochs = 4",
                "train-val-test",
                "sweep.warmup_epochs",
            ),
            (
                "prune = \"median\"\nmin_jobs = 0",
                "train-val-test",
                "sweep.min_jobs",
            ),
            (
                "prune = \"median\"\nmin_jobs = -1",
                "train-val-test",
                "sweep.min_jobs",
            ),
            ("warmup_epochs = 1", "train-val-test", "sweep.warmup_epochs"),
        ] {
            let err = config(sweep, protocol).expect_err(sweep).to_string();
            assert!(err.contains(key), "{sweep}: {err}");
        }
    }
}

//! What a pruning rule says about a job it stops: [`PruneVerdict`], stored
//! with the job and shown in reports, and which rule gave it ([`PruneKind`]).

use serde::{Deserialize, Serialize};

/// Which rule stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneKind {
    /// The median rule, against the same (variant, seed, fold) of the other
    /// configurations.
    #[default]
    Median,
    /// Successive halving (`prune = "asha"`), the whole configuration at a
    /// rung.
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

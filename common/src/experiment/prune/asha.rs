//! Asynchronous successive halving (ASHA) of a sweep's configurations, decided
//! on validation accuracy only.
//!
//! ```toml
//! [sweep]
//! "training.lr" = { log_uniform = [1e-5, 1e-2] }
//! mode = "random"
//! samples = 100
//! prune = "asha"
//! reduction_factor = 3   # η (default 3)
//! first_rung = 1         # epochs at the first rung (default 1)
//! ```
//!
//! Rungs are at `first_rung · η^k` epochs below `training.epochs`. When a job
//! of configuration *c* reports a rung's epoch, *c*'s score there is the mean
//! validation accuracy of its jobs that have reached the rung; it is compared
//! with the scores of the other configurations that have reached the rung so
//! far (no waiting for stragglers), and *c* stops, every job of it, if its
//! score is strictly below their `1 − 1/η` quantile (linear interpolation, as
//! numpy's `percentile`): only the top `1/η` go on. The first configuration
//! at a rung always goes on. This is the stopping form of ASHA (Li et al.,
//! 2020), as Ray Tune's `ASHAScheduler` applies it, with a configuration's
//! jobs (variants × seeds × folds) averaged.

use serde::{Deserialize, Serialize};

use crate::experiment::prune::verdict::{PruneKind, PruneVerdict};

/// An experiment's ASHA settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AshaRule {
    /// η: one configuration in η goes on at each rung.
    pub reduction_factor: u32,
    /// Epochs at the first rung.
    pub first_rung: u32,
    /// `training.epochs`: no rung at or past it.
    pub max_epochs: u32,
}

/// The `q` quantile (0..=1) of `values` with linear interpolation between
/// order statistics (numpy's default `percentile`); `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    let fraction = position - low as f64;
    Some(v[low] + (v[high] - v[low]) * fraction)
}

impl AshaRule {
    /// The rungs' epochs, ascending.
    pub fn rungs(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut epoch = u64::from(self.first_rung.max(1));
        let factor = u64::from(self.reduction_factor.max(2));
        while epoch < u64::from(self.max_epochs) {
            // Below max_epochs, so it fits a u32.
            out.push(u32::try_from(epoch).unwrap_or(u32::MAX));
            epoch *= factor;
        }
        out
    }

    /// Whether `epoch` is a rung.
    pub fn is_rung(&self, epoch: u32) -> bool {
        self.rungs().contains(&epoch)
    }

    /// Whether a configuration with score `own` at `epoch` stops, against the
    /// scores `others` of the other configurations that reached that rung.
    pub fn decide(&self, epoch: u32, own: f64, others: &[f64]) -> Option<PruneVerdict> {
        if !self.is_rung(epoch) || !own.is_finite() {
            return None;
        }
        let q = 1.0 - 1.0 / f64::from(self.reduction_factor.max(2));
        let cutoff = quantile(others, q)?;
        (own < cutoff).then_some(PruneVerdict {
            rule: PruneKind::Asha,
            epoch,
            val_accuracy: own,
            median: cutoff,
            compared_with: others.len(),
        })
    }

    /// The verdict on configuration `configuration` at `epoch`, from every
    /// result stored at that epoch: `(configuration, validation accuracy)`
    /// of each job that reached it (stopped configurations' included: they
    /// reached the rung). Scores are per-configuration means.
    pub fn judge(
        &self,
        epoch: u32,
        configuration: usize,
        results: &[(usize, f64)],
    ) -> Option<PruneVerdict> {
        let mut sums: std::collections::BTreeMap<usize, (f64, u32)> = Default::default();
        for &(c, accuracy) in results.iter().filter(|(_, a)| a.is_finite()) {
            let entry = sums.entry(c).or_insert((0.0, 0));
            entry.0 += accuracy;
            entry.1 += 1;
        }
        let mean = |(sum, n): (f64, u32)| sum / f64::from(n);
        let own = mean(*sums.get(&configuration)?);
        let others: Vec<f64> = sums
            .iter()
            .filter(|(c, _)| **c != configuration)
            .map(|(_, s)| mean(*s))
            .collect();
        self.decide(epoch, own, &others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AshaRule {
        AshaRule {
            reduction_factor: 3,
            first_rung: 1,
            max_epochs: 30,
        }
    }

    #[test]
    fn rungs_grow_by_the_reduction_factor_below_the_last_epoch() {
        assert_eq!(rule().rungs(), [1, 3, 9, 27]);
        let r = AshaRule {
            reduction_factor: 2,
            first_rung: 3,
            max_epochs: 12,
        };
        assert_eq!(r.rungs(), [3, 6]);
        assert!(r.is_rung(6) && !r.is_rung(12) && !r.is_rung(4));
    }

    #[test]
    fn quantiles_interpolate_as_numpy() {
        // numpy.percentile([0.1, 0.4, 0.2, 0.9], 66.666...) = 0.4 - 0.2/... :
        // positions 0..3, q·3 = 2 → the third smallest, 0.4.
        assert_eq!(quantile(&[0.1, 0.4, 0.2, 0.9], 2.0 / 3.0), Some(0.4));
        // q·(n−1) = 0.5 → halfway between 0.2 and 0.6.
        assert_eq!(quantile(&[0.6, 0.2], 0.5), Some(0.4));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[0.7], 0.9), Some(0.7));
    }

    #[test]
    fn the_first_at_a_rung_goes_on_and_only_the_top_third_after() {
        let r = rule();
        assert_eq!(r.decide(3, 0.1, &[]), None, "first at the rung");
        assert_eq!(r.decide(2, 0.0, &[0.9, 0.8]), None, "not a rung");
        // Cutoff of [0.3, 0.6, 0.9] at 2/3: a third of the way from 0.6 to 0.9.
        let v = r
            .decide(3, 0.6, &[0.3, 0.6, 0.9])
            .expect("below the cutoff");
        assert!((v.median - 0.7).abs() < 1e-12, "{}", v.median);
        assert_eq!((v.epoch, v.compared_with), (3, 3));
        assert_eq!(
            r.decide(3, 0.75, &[0.3, 0.6, 0.9]),
            None,
            "above the cutoff"
        );
        // η = 2 (rungs 1, 2, 4, ...): the median of the others; equal goes on.
        let halving = AshaRule {
            reduction_factor: 2,
            ..r
        };
        assert_eq!(
            halving.decide(4, 0.4, &[0.2, 0.6, 0.4]),
            None,
            "at the cutoff"
        );
        assert!(halving.decide(4, 0.3, &[0.2, 0.6, 0.4]).is_some());
        assert!(v.to_string().contains("epoch 3"));
    }
}

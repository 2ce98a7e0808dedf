//! Tests of cross-validated differences that allow for the correlation the
//! folds' overlapping training sets cause: the corrected resampled t-test
//! (Nadeau & Bengio 2003; for seeds × folds, Bouckaert & Frank 2004) and the
//! Bayesian correlated t-test with a region of practical equivalence (Corani
//! & Benavoli 2015).
//!
//! Both take the n paired differences `d` (candidate − baseline) and the
//! correlation `ρ` between two of them. With k folds `ρ = 1/k` (the test
//! set's share of the data; baycomp's convention, which makes `ρ/(1 − ρ) =
//! 1/(k − 1)`, the ratio of test to training set size of Nadeau and Bengio);
//! jobs that train on disjoint data (or all on one split, seeds only: the
//! `official` protocol) have `ρ = 0`, and the tests reduce to the plain
//! paired t-test and its posterior.
//!
//! - Corrected t: the variance of the differences (ddof = 1) times
//!   `1/n + ρ/(1 − ρ)` stands for `σ²/n`; `t = mean / sqrt(that)` with `n − 1`
//!   degrees of freedom, a two-sided p-value, and the 95 % interval
//!   `mean ± t₀.₉₇₅(n − 1) · sqrt(that)`.
//! - Bayesian: the posterior of the mean difference is Student t with `n − 1`
//!   degrees of freedom, location `mean` and scale `sqrt(that)`;
//!   `P(worse) = F(−rope)`, `P(better) = 1 − F(rope)`, `P(equivalent)` the rest
//!   (baycomp 1.0.3's `CorrelatedTTest.probs`, `x` the baseline, `y` the
//!   candidate). Without spread the posterior is a point at the mean.
//!
//! Checked against baycomp by `common/tests/correlated_baycomp.rs`.

use serde::{Deserialize, Serialize};

use crate::stats;
use crate::stats::special;

/// `ρ` for k-fold cross-validation: `1/k`; 0 for one split (`k <= 1`).
pub fn rho_for_folds(folds: u32) -> f64 {
    if folds <= 1 {
        0.0
    } else {
        1.0 / f64::from(folds)
    }
}

/// The corrected resampled t-test of one set of differences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorrectedT {
    /// The correlation assumed between two differences.
    pub rho: f64,
    /// The corrected t statistic.
    pub statistic: f64,
    /// Degrees of freedom, `n − 1`.
    pub dof: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// 95 % interval of the mean difference, percentage points.
    pub ci95_pp: [f64; 2],
}

/// The Bayesian correlated t-test's posterior probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Posterior {
    /// Half-width of the region of practical equivalence, percentage points.
    pub rope_pp: f64,
    /// `P(mean difference > rope)`: the candidate is better.
    pub p_better: f64,
    /// `P(|mean difference| <= rope)`: practically equivalent.
    pub p_equivalent: f64,
    /// `P(mean difference < −rope)`: the candidate is worse.
    pub p_worse: f64,
}

/// Mean, corrected variance of the mean and `n` of `d`; `None` for fewer than
/// two values or a `rho` outside `[0, 1)`.
fn corrected_moments(d: &[f64], rho: f64) -> Option<(f64, f64, usize)> {
    if !(0.0..1.0).contains(&rho) {
        return None;
    }
    let mean = stats::mean(d)?;
    let sd = stats::std_sample(d)?;
    let n = d.len() as f64;
    Some((mean, sd * sd * (1.0 / n + rho / (1.0 - rho)), d.len()))
}

/// The corrected resampled t-test of differences `d` (fractions; the interval
/// in percentage points); `None` for fewer than two values, differences
/// without spread, or `rho` outside `[0, 1)`.
pub fn corrected_t(d: &[f64], rho: f64) -> Option<CorrectedT> {
    let (mean, var, n) = corrected_moments(d, rho)?;
    if var <= 0.0 {
        return None;
    }
    let se = var.sqrt();
    let dof = (n - 1) as f64;
    let statistic = mean / se;
    let half = special::t_ppf(0.975, dof) * se;
    Some(CorrectedT {
        rho,
        statistic,
        dof,
        p_value: special::t_two_sided(statistic, dof),
        ci95_pp: [100.0 * (mean - half), 100.0 * (mean + half)],
    })
}

/// Student t CDF with `dof` degrees of freedom, location `loc`, scale `scale`.
fn t_cdf(x: f64, dof: f64, loc: f64, scale: f64) -> f64 {
    special::t_sf(-(x - loc) / scale, dof)
}

/// The posterior probabilities that the candidate is better, equivalent or
/// worse by more than `rope_pp`, for differences `d_pp` in percentage points;
/// `None` for fewer than two values, `rho` outside `[0, 1)` or a rope that is
/// negative or not finite.
pub fn posterior(d_pp: &[f64], rho: f64, rope_pp: f64) -> Option<Posterior> {
    if !(rope_pp.is_finite() && rope_pp >= 0.0) {
        return None;
    }
    let (mean, var, n) = corrected_moments(d_pp, rho)?;
    let (p_worse, p_better) = if var <= 0.0 {
        (
            f64::from(u8::from(mean < -rope_pp)),
            f64::from(u8::from(mean > rope_pp)),
        )
    } else {
        let (dof, scale) = ((n - 1) as f64, var.sqrt());
        (
            t_cdf(-rope_pp, dof, mean, scale),
            1.0 - t_cdf(rope_pp, dof, mean, scale),
        )
    };
    Some(Posterior {
        rope_pp,
        p_better,
        p_equivalent: 1.0 - p_worse - p_better,
        p_worse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rho_zero_is_the_plain_paired_t_test() {
        let d = [0.02, -0.01, 0.04, 0.03, 0.0, 0.05];
        let c = corrected_t(&d, 0.0).unwrap();
        let (t, p) = crate::stats::paired::t_test(&d).unwrap();
        assert!((c.statistic - t).abs() < 1e-12 && (c.p_value - p).abs() < 1e-12);
        assert_eq!(c.dof, 5.0);
    }

    #[test]
    fn correction_by_hand() {
        // d = 1, 2, 3 (pp as fractions): mean 0.02, variance 1e-4; k = 2 gives
        // rho = 0.5 and a factor 1/3 + 1 = 4/3, so t = 0.02 / sqrt(4/3 · 1e-4).
        let d = [0.01, 0.02, 0.03];
        let c = corrected_t(&d, rho_for_folds(2)).unwrap();
        let want = 0.02 / (4.0_f64 / 3.0 * 1e-4).sqrt();
        assert!((c.statistic - want).abs() < 1e-12, "{}", c.statistic);
        assert!(c.p_value > crate::stats::paired::t_test(&d).unwrap().1);
        assert_eq!(rho_for_folds(1), 0.0);
        assert_eq!(rho_for_folds(4), 0.25);
        assert!(corrected_t(&d, 1.0).is_none());
        assert!(corrected_t(&[0.01, 0.01], 0.5).is_none());
        assert!(corrected_t(&[0.01], 0.0).is_none());
    }

    #[test]
    fn posterior_sums_to_one_and_points_without_spread() {
        let p = posterior(&[1.0, 3.0, 2.0, 4.0], 0.25, 1.0).unwrap();
        assert!((p.p_better + p.p_equivalent + p.p_worse - 1.0).abs() < 1e-15);
        assert!(p.p_better > p.p_worse);
        let point = posterior(&[2.0, 2.0, 2.0], 0.25, 1.0).unwrap();
        assert_eq!(
            (point.p_better, point.p_equivalent, point.p_worse),
            (1.0, 0.0, 0.0)
        );
        let inside = posterior(&[0.5, 0.5], 0.0, 1.0).unwrap();
        assert_eq!(inside.p_equivalent, 1.0);
        assert!(posterior(&[1.0, 2.0], 0.0, -1.0).is_none());
        assert!(posterior(&[1.0, 2.0], 0.0, f64::NAN).is_none());
    }
}

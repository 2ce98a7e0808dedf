//! Paired comparison of two configurations over the same jobs (same variant,
//! seed and fold): the mean difference with its 95 % Student t interval, the
//! paired t-test, the Wilcoxon signed-rank test, and Holm's adjustment of a
//! family of p-values.
//!
//! Conventions:
//! - Inputs are per-job accuracies as fractions in [0, 1], `candidate[i]` and
//!   `baseline[i]` from the same job slot. Differences are `candidate -
//!   baseline` (scipy's `ttest_rel(candidate, baseline)` order). The mean
//!   difference and its interval are reported in **percentage points** (100 ×
//!   the fraction difference); p-values do not depend on the scale.
//! - The t-test and interval follow `scipy.stats.ttest_rel` and
//!   `scipy.stats.t.ppf(0.975, n - 1)`.
//! - The Wilcoxon p-value is what `scipy.stats.wilcoxon(candidate, baseline)`
//!   returns with its defaults in scipy 1.17.1 (`zero_method="wilcox"`,
//!   `correction=False`, two-sided, `method="auto"`): zero differences are
//!   dropped from the ranking; with more than 50 pairs the normal
//!   approximation (with tie correction, no continuity correction); with at
//!   most 50 pairs and neither ties nor zeros the exact distribution; with ties
//!   or zeros and at most 13 pairs the exact sign-flip permutation test (all
//!   2ⁿ flips, scipy's `PermutationMethod`); otherwise the normal
//!   approximation. "Pairs" there counts zero differences too, as scipy does.
//! - Where scipy gives NaN (or an infinite statistic), spikecv gives `None`:
//!   no interval or t-test for fewer than two pairs or for differences without
//!   spread (all equal, identical vectors included), no Wilcoxon test when
//!   every difference is zero. With no spread the interval is `None` too:
//!   it would be a single point that claims a certainty two jobs cannot give.
//!
//! Golden values: `common/tests/fixtures/make_paired_golden.py` (scipy 1.17.1)
//! writes `paired_golden.json`, checked by `common/tests/paired_golden.rs`.

use serde::{Deserialize, Serialize};

use crate::stats;
use crate::stats::special;

/// Which way the Wilcoxon p-value was computed (scipy's choice for `method="auto"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WilcoxonMethod {
    /// Exact null distribution of the rank sum (no ties, no zeros, n ≤ 50).
    Exact,
    /// Exact sign-flip permutation test (ties or zeros, n ≤ 13).
    Permutation,
    /// Normal approximation with tie correction.
    Asymptotic,
}

/// The Wilcoxon signed-rank test of one set of differences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Wilcoxon {
    /// `min(R+, R-)`, scipy's two-sided statistic.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// How the p-value was computed.
    pub method: WilcoxonMethod,
}

/// A candidate configuration against the baseline over the same jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Number of pairs.
    pub pairs: usize,
    /// Mean of `candidate - baseline`, in percentage points; `None` without pairs.
    pub mean_difference_pp: Option<f64>,
    /// 95 % Student t confidence interval of the mean difference, percentage points.
    pub ci95_pp: Option<[f64; 2]>,
    /// The paired t statistic.
    pub t_statistic: Option<f64>,
    /// Two-sided p-value of the paired t-test.
    pub t_test_p: Option<f64>,
    /// The Wilcoxon signed-rank test.
    pub wilcoxon: Option<Wilcoxon>,
}

/// Inputs that cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PairedError {
    /// The two vectors differ in length.
    #[error("paired comparison of {candidate} candidate values with {baseline} baseline values")]
    LengthMismatch {
        /// Candidate length.
        candidate: usize,
        /// Baseline length.
        baseline: usize,
    },
    /// A value is NaN or infinite.
    #[error("paired comparison: value {index} is not a finite number")]
    NotFinite {
        /// Position of the pair.
        index: usize,
    },
}

/// Compares `candidate` with `baseline`, pair by pair.
pub fn compare(candidate: &[f64], baseline: &[f64]) -> Result<PairedComparison, PairedError> {
    if candidate.len() != baseline.len() {
        return Err(PairedError::LengthMismatch {
            candidate: candidate.len(),
            baseline: baseline.len(),
        });
    }
    let mut diffs = Vec::with_capacity(candidate.len());
    for (index, (c, b)) in candidate.iter().zip(baseline).enumerate() {
        if !(c.is_finite() && b.is_finite()) {
            return Err(PairedError::NotFinite { index });
        }
        diffs.push(c - b);
    }
    let n = diffs.len();
    let mean = stats::mean(&diffs);
    let t = t_test(&diffs);
    let ci = match (mean, stats::std_sample(&diffs)) {
        (Some(m), Some(sd)) if sd > 0.0 => {
            let half = special::t_ppf(0.975, (n - 1) as f64) * sd / (n as f64).sqrt();
            Some([100.0 * (m - half), 100.0 * (m + half)])
        }
        _ => None,
    };
    Ok(PairedComparison {
        pairs: n,
        mean_difference_pp: mean.map(|m| 100.0 * m),
        ci95_pp: ci,
        t_statistic: t.map(|(t, _)| t),
        t_test_p: t.map(|(_, p)| p),
        wilcoxon: wilcoxon(&diffs),
    })
}

/// The paired t statistic and its two-sided p-value over differences `d`;
/// `None` for fewer than two values or no spread.
pub fn t_test(d: &[f64]) -> Option<(f64, f64)> {
    let mean = stats::mean(d)?;
    let sd = stats::std_sample(d)?;
    if sd <= 0.0 {
        return None;
    }
    let n = d.len() as f64;
    let t = mean / (sd / n.sqrt());
    Some((t, special::t_two_sided(t, n - 1.0)))
}

/// Wilcoxon signed-rank test of differences `d` as scipy 1.17.1's
/// `wilcoxon(d)` computes it (see the module notes); `None` when every
/// difference is zero (or there are none).
pub fn wilcoxon(d: &[f64]) -> Option<Wilcoxon> {
    let nonzero: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    if nonzero.is_empty() {
        return None;
    }
    let n_zero = d.len() - nonzero.len();
    let (ranks, tie_sizes) = average_ranks(&nonzero);
    let rank_sum = |positive: bool| -> f64 {
        let signed = nonzero
            .iter()
            .zip(&ranks)
            .filter(|(x, _)| (**x > 0.0) == positive);
        signed.map(|(_, r)| r).sum()
    };
    let (r_plus, r_minus) = (rank_sum(true), rank_sum(false));
    let has_ties = tie_sizes.iter().any(|&t| t > 1);
    let method = if d.len() > 50 {
        WilcoxonMethod::Asymptotic
    } else if !has_ties && n_zero == 0 {
        WilcoxonMethod::Exact
    } else if d.len() <= 13 {
        WilcoxonMethod::Permutation
    } else {
        WilcoxonMethod::Asymptotic
    };
    let p_value = match method {
        WilcoxonMethod::Exact => exact_p(nonzero.len(), r_plus),
        WilcoxonMethod::Permutation => permutation_p(d, &nonzero, &ranks, r_plus),
        WilcoxonMethod::Asymptotic => {
            let count = nonzero.len() as f64;
            let mn = count * (count + 1.0) * 0.25;
            let tie: f64 = tie_sizes.iter().map(|&t| (t * t * t - t) as f64).sum();
            let var = (count * (count + 1.0) * (2.0 * count + 1.0) - tie / 2.0) / 24.0;
            let se = var.sqrt();
            if se > 0.0 {
                special::normal_two_sided((r_plus - mn) / se)
            } else {
                return None;
            }
        }
    };
    Some(Wilcoxon {
        statistic: r_plus.min(r_minus),
        p_value,
        method,
    })
}

/// Average ranks (1-based) of `|x|` and the sizes of the tie groups.
fn average_ranks(x: &[f64]) -> (Vec<f64>, Vec<u64>) {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].abs().total_cmp(&x[b].abs()));
    let mut ranks = vec![0.0; x.len()];
    let mut ties = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]].abs() == x[order[start]].abs() {
            end += 1;
        }
        // Ranks start + 1 ..= end share their average.
        let avg = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = avg;
        }
        ties.push((end - start) as u64);
        start = end;
    }
    (ranks, ties)
}

/// Exact two-sided p-value of the rank sum `r_plus` over `n` untied nonzero
/// differences (scipy's `WilcoxonDistribution`).
fn exact_p(n: usize, r_plus: f64) -> f64 {
    // pmf[k] = P(R+ = k), by adding one rank at a time (scipy's `_get_wilcoxon_distr`).
    let mut pmf = vec![1.0];
    for k in 1..=n {
        let prev = pmf;
        let m = prev.len();
        pmf = vec![0.0; k * (k + 1) / 2 + 1];
        let len = pmf.len();
        for (i, p) in prev.iter().enumerate() {
            pmf[i] += p * 0.5;
            pmf[len - m + i] += p * 0.5;
        }
    }
    let mean = (n * (n + 1)) as f64 / 4.0;
    let cdf_raw = |k: i64| -> f64 {
        if k < 0 {
            0.0
        } else {
            pmf[..=(k as usize).min(pmf.len() - 1)].iter().sum()
        }
    };
    let sf_raw = |k: i64| -> f64 {
        let k = k.max(0) as usize;
        if k >= pmf.len() {
            0.0
        } else {
            pmf[k..].iter().sum()
        }
    };
    let cdf = |k: i64| {
        if (k as f64) <= mean {
            cdf_raw(k)
        } else {
            1.0 - sf_raw(k + 1)
        }
    };
    let sf = |k: i64| {
        if (k as f64) <= mean {
            sf_raw(k)
        } else {
            1.0 - cdf_raw(k - 1)
        }
    };
    let p = 2.0 * sf(r_plus.floor() as i64).min(cdf(r_plus.ceil() as i64));
    p.clamp(0.0, 1.0)
}

/// Exact sign-flip permutation p-value (scipy's `permutation_test` with
/// `permutation_type="samples"` over all 2ⁿ flips, `n = d.len() <= 13`).
/// Zero differences take part in the flips but never count as positive.
fn permutation_p(d: &[f64], nonzero: &[f64], ranks: &[f64], observed: f64) -> f64 {
    let n = d.len();
    let k = nonzero.len();
    let total = 1u64 << n;
    // Flipping a zero changes nothing, so each pattern of the nonzero signs
    // appears 2^(n - k) times.
    let weight = 1u64 << (n - k);
    let gamma = (observed * f64::EPSILON * 100.0).abs();
    let (mut less, mut greater) = (0u64, 0u64);
    for mask in 0u64..(1u64 << k) {
        let r: f64 = (0..k)
            .filter(|&i| mask & (1 << i) != 0)
            .map(|i| ranks[i])
            .sum();
        if r <= observed + gamma {
            less += weight;
        }
        if r >= observed - gamma {
            greater += weight;
        }
    }
    let p = 2.0 * (less.min(greater) as f64) / total as f64;
    p.clamp(0.0, 1.0)
}

/// Holm's step-down adjustment (statsmodels' `multipletests(method="holm")`):
/// the i-th smallest of m p-values times `m - i` (0-based), made monotone by a
/// running maximum and capped at 1. `None` entries (tests that could not be
/// made) are not part of the family and stay `None`.
pub fn holm(p_values: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut present: Vec<(usize, f64)> = p_values
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .collect();
    present.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = present.len();
    let mut out = vec![None; p_values.len()];
    let mut running: f64 = 0.0;
    for (rank, (i, p)) in present.into_iter().enumerate() {
        running = running.max((m - rank) as f64 * p);
        out[i] = Some(running.min(1.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_by_hand() {
        // m = 4: sorted 0.01, 0.02, 0.03, 0.04 times 4, 3, 2, 1 = 0.04, 0.06,
        // 0.06, 0.04; the running maximum makes the last 0.06.
        let p = [Some(0.03), Some(0.01), None, Some(0.04), Some(0.02)];
        let adj = holm(&p);
        let want = [Some(0.06), Some(0.04), None, Some(0.06), Some(0.06)];
        for (a, w) in adj.iter().zip(want) {
            match (a, w) {
                (Some(a), Some(w)) => assert!((a - w).abs() < 1e-15, "{a} vs {w}"),
                (None, None) => {}
                other => panic!("{other:?}"),
            }
        }
        // Capped at 1.
        assert_eq!(holm(&[Some(0.6), Some(0.7)]), vec![Some(1.0), Some(1.0)]);
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn edge_cases_give_none_not_nan() {
        let same = compare(&[0.5, 0.6, 0.7], &[0.5, 0.6, 0.7]).unwrap();
        assert_eq!(same.pairs, 3);
        assert_eq!(same.mean_difference_pp, Some(0.0));
        assert_eq!(
            (same.ci95_pp, same.t_test_p, same.wilcoxon),
            (None, None, None)
        );
        let one = compare(&[0.6], &[0.5]).unwrap();
        assert!((one.mean_difference_pp.unwrap() - 10.0).abs() < 1e-12);
        assert_eq!((one.ci95_pp, one.t_test_p), (None, None));
        let empty = compare(&[], &[]).unwrap();
        assert_eq!((empty.pairs, empty.mean_difference_pp), (0, None));
        assert!(matches!(
            compare(&[0.1], &[]),
            Err(PairedError::LengthMismatch { .. })
        ));
        assert!(matches!(
            compare(&[0.1, f64::NAN], &[0.1, 0.2]),
            Err(PairedError::NotFinite { index: 1 })
        ));
    }

    #[test]
    fn average_ranks_share_ties() {
        let (r, t) = average_ranks(&[0.2, -0.1, 0.1, 0.3]);
        assert_eq!(r, vec![3.0, 1.5, 1.5, 4.0]);
        assert_eq!(t, vec![2, 1, 1]);
    }
}

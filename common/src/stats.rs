//! Summary statistics for cross-validation results: mean, population standard
//! deviation (ddof = 0, what the reference prints), sample standard deviation
//! (ddof = 1) and the count of values behind them.
//!
//! The functions use Welford's single-pass update, which stays accurate when
//! the values are large relative to their spread. Empty input gives `None`
//! rather than NaN, and the sample standard deviation needs two values.

pub mod correlated;
pub mod paired;
pub mod special;

use serde::{Deserialize, Serialize};

/// Mean, spread and range of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation (divides by `count`, ddof = 0).
    pub std_population: f64,
    /// Sample standard deviation (divides by `count - 1`, ddof = 1); `None` for one value.
    pub std_sample: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Running state of Welford's algorithm.
#[derive(Debug, Clone, Copy, Default)]
struct Welford {
    count: usize,
    mean: f64,
    /// Sum of squared deviations from the running mean.
    m2: f64,
}

impl Welford {
    fn of(values: &[f64]) -> Self {
        let mut w = Welford::default();
        for &x in values {
            w.count += 1;
            let delta = x - w.mean;
            w.mean += delta / w.count as f64;
            w.m2 += delta * (x - w.mean);
        }
        w
    }

    fn variance(&self, ddof: usize) -> Option<f64> {
        if self.count <= ddof || self.count == 0 {
            return None;
        }
        // Rounding can leave a tiny negative m2 for identical values.
        Some(self.m2.max(0.0) / (self.count - ddof) as f64)
    }
}

/// The arithmetic mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    let w = Welford::of(values);
    (w.count > 0).then_some(w.mean)
}

/// Population standard deviation (ddof = 0); `None` for no values.
pub fn std_population(values: &[f64]) -> Option<f64> {
    Welford::of(values).variance(0).map(f64::sqrt)
}

/// Sample standard deviation (ddof = 1); `None` for fewer than two values.
pub fn std_sample(values: &[f64]) -> Option<f64> {
    Welford::of(values).variance(1).map(f64::sqrt)
}

/// Count, mean, both standard deviations and range; `None` for no values.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let w = Welford::of(values);
    let std_population = w.variance(0)?.sqrt();
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    Some(Summary {
        count: w.count,
        mean: w.mean,
        std_population,
        std_sample: w.variance(1).map(f64::sqrt),
        min,
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward two-pass formulas, independent of Welford's update.
    fn two_pass(values: &[f64], ddof: usize) -> f64 {
        let n = values.len() as f64;
        let m = values.iter().sum::<f64>() / n;
        let ss: f64 = values.iter().map(|x| (x - m) * (x - m)).sum();
        (ss / (n - ddof as f64)).sqrt()
    }

    #[test]
    fn matches_two_pass_formulas() {
        let xs = [0.5620, 0.7145, 0.609, 0.7803, 0.706, 0.776];
        let s = summarize(&xs).unwrap();
        assert_eq!(s.count, 6);
        assert!((s.mean - xs.iter().sum::<f64>() / 6.0).abs() < 1e-15);
        assert!((s.std_population - two_pass(&xs, 0)).abs() < 1e-15);
        assert!((s.std_sample.unwrap() - two_pass(&xs, 1)).abs() < 1e-15);
        assert_eq!((s.min, s.max), (0.5620, 0.7803));
    }

    #[test]
    fn numpy_reference_values() {
        // numpy: np.std([2,4,4,4,5,5,7,9]) == 2.0; ddof=1 gives sqrt(32/7).
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), Some(5.0));
        assert_eq!(std_population(&xs), Some(2.0));
        assert!((std_sample(&xs).unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn stays_accurate_with_a_large_offset() {
        let xs: Vec<f64> = [1.0, 2.0, 3.0, 4.0].iter().map(|x| x + 1e9).collect();
        assert!((std_population(&xs).unwrap() - 1.25f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(mean(&[]), None);
        assert_eq!(std_population(&[]), None);
        assert!(summarize(&[]).is_none());
        assert_eq!(std_sample(&[0.3]), None);
        let one = summarize(&[0.3]).unwrap();
        assert_eq!(
            (one.count, one.mean, one.std_population, one.std_sample),
            (1, 0.3, 0.0, None)
        );
        assert_eq!(std_population(&[0.1, 0.1, 0.1]), Some(0.0));
    }
}

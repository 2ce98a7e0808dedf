//! One figure of a report: mean and spread of a metric over the jobs that
//! have it, against the count planned; and the guard that keeps implausible
//! stored numbers out of every sum.

use serde::Serialize;
use spikecv_common::stats;

use crate::store::records::JobRecord;

/// One figure: mean and spread of a metric over the jobs that have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Values behind the figure.
    pub count: usize,
    /// Values there would be if every planned job had succeeded.
    pub planned: usize,
    /// Mean; `None` without values.
    pub mean: Option<f64>,
    /// Population standard deviation (ddof = 0).
    pub std_population: Option<f64>,
    /// Sample standard deviation (ddof = 1); needs two values.
    pub std_sample: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

impl Metric {
    /// Summarises `values` against `planned`.
    pub fn of(values: &[f64], planned: usize) -> Self {
        let s = stats::summarize(values);
        Self {
            count: values.len(),
            planned,
            mean: s.map(|s| s.mean),
            std_population: s.map(|s| s.std_population),
            std_sample: s.and_then(|s| s.std_sample),
            min: s.map(|s| s.min),
            max: s.map(|s| s.max),
        }
    }

    /// Whether fewer values than planned stand behind the figure.
    pub fn is_partial(&self) -> bool {
        self.count < self.planned
    }
}

/// Largest magnitude of a stored figure a report uses. The scheduler refuses
/// anything near it today; a store written before it checked may hold NaN,
/// infinities or 1e308, which would make sums infinite and `inf - inf` NaN.
/// Left out, every sum over a store's jobs stays finite.
const PLAUSIBLE: f64 = 1e12;

/// Whether a stored figure can enter a sum.
pub(crate) fn plausible(v: f64) -> bool {
    v.is_finite() && v.abs() <= PLAUSIBLE
}

/// A stored number of seconds, or 0 when it is not a plausible one.
pub(crate) fn seconds(v: f64) -> f64 {
    if plausible(v) && v >= 0.0 { v } else { 0.0 }
}

/// The plausible values `f` gives of `jobs`, in job order.
pub(crate) fn values(jobs: &[&JobRecord], f: impl Fn(&JobRecord) -> Option<f64>) -> Vec<f64> {
    jobs.iter()
        .filter_map(|j| f(j))
        .filter(|v| plausible(*v))
        .collect()
}

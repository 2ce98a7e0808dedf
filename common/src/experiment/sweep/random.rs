//! `mode = "random"`: configurations drawn from ranges.
//!
//! ```toml
//! [sweep]
//! mode = "random"
//! samples = 500
//! seed = 7
//! "training.lr" = { log_uniform = [1e-5, 1e-2] }
//! "simulation.vth" = { uniform = [0.1, 0.5] }
//! "simulation.steps" = { int_uniform = [16, 64] }
//! "training.batch" = [4, 8, 16]        # a list: a uniform choice
//! ```
//!
//! Configuration 0 is the experiment as written (with `baseline = {...}`
//! applied when given); then `samples` distinct draws, each key independently,
//! from a ChaCha8 generator seeded with `seed`, so a seed gives the same
//! configurations on every machine. Drawn floats are rounded to
//! [`SIGNIFICANT_DIGITS`] significant digits: readable labels, and no
//! dependence on the last bit of a platform's `ln`/`exp`.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::experiment::error::ConfigError;
use crate::experiment::sweep::keys::{Row, check_key, number, sweep_err};

/// Significant digits kept of a drawn float.
pub const SIGNIFICANT_DIGITS: i32 = 4;

/// Most configurations a random sweep may draw.
pub const MAX_SAMPLES: usize = 10_000;

/// The table keys that name a range.
pub const RANGE_KINDS: [&str; 3] = ["uniform", "log_uniform", "int_uniform"];

/// How one key's values are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Draw {
    /// Uniform on `[low, high)`.
    Uniform(f64, f64),
    /// `exp` of uniform on `[ln low, ln high)`.
    LogUniform(f64, f64),
    /// Uniform over the integers `low..=high`.
    IntUniform(i64, i64),
    /// One of the listed values, each equally likely.
    Choice(Vec<toml::Value>),
}

/// Whether `table` is a range (`{ uniform = [a, b] }` and the like).
pub fn is_range(table: &toml::Table) -> bool {
    table.len() == 1 && table.keys().all(|k| RANGE_KINDS.contains(&k.as_str()))
}

/// A key's draw from its `[sweep]` value: a range table or a list.
pub fn parse(key: &str, value: &toml::Value) -> Result<Draw, ConfigError> {
    let table = match value {
        toml::Value::Array(list) if !list.is_empty() => return Ok(Draw::Choice(list.clone())),
        toml::Value::Array(_) => return Err(sweep_err(key, "empty list")),
        toml::Value::Table(t) if is_range(t) => t,
        _ => {
            return Err(sweep_err(
                key,
                "expected a list of values or a range ({ uniform = [low, high] }, log_uniform, int_uniform)",
            ));
        }
    };
    let (kind, bounds) = table
        .iter()
        .next()
        .ok_or_else(|| sweep_err(key, "empty range"))?;
    let pair = match bounds {
        toml::Value::Array(b) if b.len() == 2 => (&b[0], &b[1]),
        _ => return Err(sweep_err(key, format!("{kind} needs [low, high]"))),
    };
    let (Some(low), Some(high)) = (number(pair.0), number(pair.1)) else {
        return Err(sweep_err(key, format!("{kind} bounds must be numbers")));
    };
    if !(low.is_finite() && high.is_finite() && low < high) {
        return Err(sweep_err(
            key,
            format!("{kind} needs finite low < high, got [{low}, {high}]"),
        ));
    }
    match kind.as_str() {
        "uniform" => Ok(Draw::Uniform(low, high)),
        "log_uniform" if low > 0.0 => Ok(Draw::LogUniform(low, high)),
        "log_uniform" => Err(sweep_err(key, "log_uniform needs low > 0")),
        _ => match (pair.0, pair.1) {
            (toml::Value::Integer(lo), toml::Value::Integer(hi)) => Ok(Draw::IntUniform(*lo, *hi)),
            _ => Err(sweep_err(key, "int_uniform bounds must be integers")),
        },
    }
}

/// `v` rounded to [`SIGNIFICANT_DIGITS`] significant digits.
pub fn round_significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let magnitude = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(SIGNIFICANT_DIGITS - 1 - magnitude);
    (v * scale).round() / scale
}

impl Draw {
    /// One value.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> toml::Value {
        match self {
            Draw::Uniform(low, high) => {
                let u: f64 = rng.random();
                toml::Value::Float(round_significant(low + (high - low) * u))
            }
            Draw::LogUniform(low, high) => {
                let u: f64 = rng.random();
                let (a, b) = (low.ln(), high.ln());
                toml::Value::Float(round_significant((a + (b - a) * u).exp()))
            }
            Draw::IntUniform(low, high) => toml::Value::Integer(rng.random_range(*low..=*high)),
            Draw::Choice(list) => list[rng.random_range(0..list.len())].clone(),
        }
    }
}

/// A row's identity, numbers compared by value (`100` = `100.0`).
fn row_key(row: &[toml::Value]) -> String {
    let mut key = String::new();
    for v in row {
        match v {
            toml::Value::Integer(i) => key.push_str(&format!("n{:?}|", *i as f64)),
            toml::Value::Float(f) => key.push_str(&format!("n{f:?}|")),
            other => key.push_str(&format!("{other}|")),
        }
    }
    key
}

/// `samples` rows of values (one per key of `axes`, in order), distinct from
/// each other and from `exclude` (the baseline's), drawn with `seed`.
pub fn draw_rows(
    axes: &[(String, Draw)],
    samples: usize,
    seed: u64,
    exclude: &[toml::Value],
) -> Result<Vec<Vec<toml::Value>>, ConfigError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows: Vec<Vec<toml::Value>> = Vec::with_capacity(samples);
    let mut seen = std::collections::HashSet::new();
    seen.insert(row_key(exclude));
    // Lists and integer ranges can run out of distinct rows: give up after
    // many repeats in a row rather than loop for ever.
    let mut repeats = 0usize;
    while rows.len() < samples {
        let row: Vec<toml::Value> = axes.iter().map(|(_, d)| d.sample(&mut rng)).collect();
        if !seen.insert(row_key(&row)) {
            repeats += 1;
            if repeats > 1000 {
                return Err(sweep_err(
                    "samples",
                    format!(
                        "only {} distinct configurations besides the baseline could be drawn, {samples} asked",
                        rows.len()
                    ),
                ));
            }
            continue;
        }
        repeats = 0;
        rows.push(row);
    }
    Ok(rows)
}

/// `mode = "random"`: `samples` draws with `seed`, each key drawn on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSearch {
    /// How many configurations are drawn (besides the baseline).
    pub samples: usize,
    /// The generator's seed.
    pub seed: u64,
    /// Each swept key with its draw, in key order.
    pub draws: Vec<(String, Draw)>,
}

impl RandomSearch {
    /// The random search of the swept keys `flat` (dotted key → range or
    /// list); `baseline` may only name swept keys.
    pub fn parse(
        flat: BTreeMap<String, toml::Value>,
        baseline: &BTreeMap<String, toml::Value>,
        samples: usize,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        if samples == 0 || samples > MAX_SAMPLES {
            return Err(sweep_err(
                "samples",
                format!("{samples}: a random sweep draws 1 to {MAX_SAMPLES} configurations"),
            ));
        }
        let mut draws = Vec::new();
        for (key, value) in &flat {
            check_key(key)?;
            draws.push((key.clone(), parse(key, value)?));
        }
        if draws.is_empty() {
            return Err(sweep_err("", "no keys to sweep"));
        }
        if let Some(key) = baseline.keys().find(|k| !flat.contains_key(*k)) {
            return Err(sweep_err(&format!("baseline.{key}"), "not a swept key"));
        }
        Ok(RandomSearch {
            samples,
            seed,
            draws,
        })
    }

    /// The values each key is checked with on its own: a range's bounds, a
    /// list's values.
    pub fn probes(&self) -> Vec<(&str, toml::Value)> {
        let mut out = Vec::new();
        for (key, draw) in &self.draws {
            let values = match draw {
                Draw::Uniform(lo, hi) | Draw::LogUniform(lo, hi) => {
                    vec![toml::Value::Float(*lo), toml::Value::Float(*hi)]
                }
                Draw::IntUniform(lo, hi) => {
                    vec![toml::Value::Integer(*lo), toml::Value::Integer(*hi)]
                }
                Draw::Choice(list) => list.clone(),
            };
            out.extend(values.into_iter().map(|v| (key.as_str(), v)));
        }
        out
    }

    /// The configurations: the baseline first (the experiment's own value
    /// of each key, from `base`, unless `baseline` names one), then the draws.
    pub fn rows(
        &self,
        base: &toml::Table,
        baseline: &BTreeMap<String, toml::Value>,
    ) -> Result<Vec<Row>, ConfigError> {
        let written = |key: &str| {
            let (section, field) = key.split_once('.')?;
            base.get(section)?.as_table()?.get(field).cloned()
        };
        let base_row: Vec<toml::Value> = self
            .draws
            .iter()
            .map(|(k, _)| {
                baseline
                    .get(k)
                    .cloned()
                    .or_else(|| written(k))
                    .unwrap_or_else(|| toml::Value::String("(default)".into()))
            })
            .collect();
        let drawn = draw_rows(&self.draws, self.samples, self.seed, &base_row)?;
        let mut out = Vec::with_capacity(self.samples + 1);
        for (r, row) in std::iter::once(&base_row).chain(&drawn).enumerate() {
            let pairs: Vec<(&str, &toml::Value)> = self
                .draws
                .iter()
                .zip(row)
                .filter(|(_, v)| r > 0 || !matches!(v, toml::Value::String(s) if s == "(default)"))
                .map(|((k, _), v)| (k.as_str(), v))
                .collect();
            out.push(Row::new(&pairs, r == 0)?);
        }
        Ok(out)
    }
}

//! `[sweep]`: several configurations of one experiment, compared fold for fold.
//!
//! ```toml
//! [sweep]
//! "training.lr" = [0.001, 0.0003]     # or, unquoted: training.lr = [...]
//! "simulation.steps" = [50, 100]
//! mode = "grid"                       # default; "zip" pairs the lists up
//! baseline = { "training.lr" = 0.0003 }
//! ```
//!
//! Keys are dotted config paths: every scalar key of `[simulation]` and
//! `[training]` (except `training.checkpoint_every`, which does not change a
//! result) and `data.downscale`; each takes a non-empty list of values.
//! `network.blocks` (whole block lists) and `network.blocks.<i>.<field>` (one
//! value of one block) compare networks: see [`network`].
//! `mode = "grid"` (the default) makes the cartesian product, the first key
//! (in sorted order) varying slowest; `mode = "zip"` takes the i-th value of
//! every list together (the lists must be equally long). Each combination is a
//! [`Configuration`] labelled `lr=0.0003 steps=100` (last path segment, keys in
//! sorted order). The baseline is the combination of every list's first value,
//! unless `baseline` (a table of key = value) names one: in grid mode the keys
//! it leaves out take their first value; in zip mode the first row matching
//! every named value is the baseline.
//!
//! `mode = "random"` draws `samples` configurations from ranges and lists with
//! a `seed`, after the experiment as written (configuration 0, the baseline):
//! see [`random`].
//!
//! `prune = "median"` (with `warmup_epochs`, `min_jobs`) stops hopeless
//! configurations early: see [`crate::experiment::prune`].
//!
//! Everything is checked when the experiment loads ([`ExperimentConfig::validate`]):
//! unknown keys, values of the wrong type, empty lists, repeated values, and
//! every combination applied to the config and validated; errors name the key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::experiment::config::ExperimentConfig;
use crate::experiment::error::{ConfigError, bounds};
use crate::experiment::prune::{PRUNE_KEYS, prune_rule};

pub mod network;
pub mod random;

/// The raw `[sweep]` table as written (checked by [`configurations`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SweepSpec(pub toml::Table);

/// The keys a sweep may vary.
pub const SWEEP_KEYS: &[&str] = &[
    "data.downscale",
    "simulation.steps",
    "simulation.dt_ms",
    "simulation.a",
    "simulation.vth",
    "simulation.tau",
    "training.batch",
    "training.test_batch",
    "training.epochs",
    "training.optimizer",
    "training.lr",
    "training.momentum",
    "training.lr_decay_every",
    "training.lr_decay",
    "training.bin_mode",
    "training.random_crop",
    "training.test_steps",
    "training.shuffle",
    "training.deterministic",
    network::BLOCKS_KEY,
];

/// How the lists combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepMode {
    /// Cartesian product.
    Grid,
    /// The i-th values of all lists together.
    Zip,
    /// Draws from ranges and lists ([`random`]).
    Random,
}

/// One combination of swept values, applied to the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// Readable label, e.g. `lr=0.0003 steps=100`; empty without a sweep.
    pub label: String,
    /// The swept values by dotted key.
    pub values: BTreeMap<String, toml::Value>,
    /// Whether this is the configuration the others are compared with.
    pub baseline: bool,
    /// The experiment with these values applied and without `[sweep]`.
    pub config: ExperimentConfig,
}

fn sweep_err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("sweep.{key}"),
        message: message.into(),
    }
}

/// Flattens nested tables (`training.lr = [...]` written unquoted) into dotted
/// keys; a range (`{ uniform = [a, b] }`) stays a key's value.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) if !random::is_range(t) => flatten(&key, t, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

/// A value as a label shows it (a block list by its compact name).
fn show(v: &toml::Value) -> String {
    if let Some(name) = network::show(v) {
        return name;
    }
    match v {
        toml::Value::String(s) => s.clone(),
        // Very small or large numbers in exponent form (`1e-12`, not 0.000000000001).
        toml::Value::Float(f) if *f != 0.0 && (f.abs() < 1e-4 || f.abs() >= 1e15) => {
            format!("{f:e}")
        }
        toml::Value::Float(f) => format!("{f}"),
        other => other.to_string(),
    }
}

/// Equality with integers and floats compared by value (`100` = `100.0`).
fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    let num = |v: &toml::Value| match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `base` (without `[sweep]`) with `values` applied, validated; the error names `key`.
fn apply(
    base: &toml::Table,
    values: &[(&str, &toml::Value)],
    key_for_errors: &str,
) -> Result<ExperimentConfig, ConfigError> {
    let mut table = base.clone();
    for (key, value) in values {
        let set = network::set(&mut table, key, value).map_err(|m| sweep_err(key_for_errors, m))?;
        if set {
            continue;
        }
        let (section, field) = key.split_once('.').unwrap_or(("", key));
        let entry = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            t.insert(field.to_owned(), (*value).clone());
        }
    }
    let shown = values
        .iter()
        .map(|(_, v)| show(v))
        .collect::<Vec<_>>()
        .join(", ");
    let config: ExperimentConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| sweep_err(key_for_errors, format!("value {shown}: {e}")))?;
    config
        .validate()
        .map_err(|e| sweep_err(key_for_errors, format!("value {shown}: {e}")))?;
    Ok(config)
}

/// The configurations of `config`: one (empty label, baseline) without
/// `[sweep]`, else every combination, checked.
pub fn configurations(config: &ExperimentConfig) -> Result<Vec<Configuration>, ConfigError> {
    let mut base = config.clone();
    let Some(SweepSpec(spec)) = base.sweep.take() else {
        return Ok(vec![Configuration {
            label: String::new(),
            values: BTreeMap::new(),
            baseline: true,
            config: base,
        }]);
    };
    let base_table = toml::Table::try_from(&base).map_err(|e| sweep_err("", e.to_string()))?;

    let mut mode = SweepMode::Grid;
    let mut baseline = BTreeMap::new();
    let mut flat = BTreeMap::new();
    let (mut samples, mut seed) = (None, 0u64);
    for (k, v) in &spec {
        match (k.as_str(), v) {
            ("mode", toml::Value::String(m)) => {
                mode = match m.as_str() {
                    "grid" => SweepMode::Grid,
                    "zip" => SweepMode::Zip,
                    "random" => SweepMode::Random,
                    other => {
                        return Err(sweep_err(
                            "mode",
                            format!("{other:?} is not grid, zip or random"),
                        ));
                    }
                }
            }
            ("mode", _) => {
                return Err(sweep_err("mode", "must be \"grid\", \"zip\" or \"random\""));
            }
            ("samples", toml::Value::Integer(n)) => {
                samples = Some(
                    usize::try_from(*n)
                        .map_err(|_| sweep_err("samples", format!("{n} is not a count")))?,
                );
            }
            ("samples", _) => return Err(sweep_err("samples", "must be an integer")),
            ("seed", toml::Value::Integer(n)) => {
                seed =
                    u64::try_from(*n).map_err(|_| sweep_err("seed", format!("{n} is negative")))?;
            }
            ("seed", _) => return Err(sweep_err("seed", "must be an integer")),
            ("baseline", toml::Value::Table(t)) => flatten("", t, &mut baseline),
            ("baseline", _) => {
                return Err(sweep_err("baseline", "must be a table of key = value"));
            }
            // Pruning settings, read by `crate::experiment::prune`.
            (k, _) if PRUNE_KEYS.contains(&k) => {}
            (_, toml::Value::Table(t)) if !random::is_range(t) => flatten(k, t, &mut flat),
            _ => {
                flat.insert(k.clone(), v.clone());
            }
        }
    }

    match (mode, samples) {
        (SweepMode::Random, Some(samples)) => {
            return random::configurations(&base_table, flat, &baseline, samples, seed);
        }
        (SweepMode::Random, None) => {
            return Err(sweep_err("samples", "mode = \"random\" needs samples = N"));
        }
        (_, Some(_)) => {
            return Err(sweep_err("samples", "only mode = \"random\" draws samples"));
        }
        _ => {}
    }

    // Axes: sorted by key (BTreeMap), each a non-empty list of scalars.
    let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
    for (key, value) in flat {
        check_key(&key)?;
        let toml::Value::Array(list) = value else {
            let hint = if matches!(&value, toml::Value::Table(t) if random::is_range(t)) {
                "a range needs mode = \"random\""
            } else {
                "expected a list of values"
            };
            return Err(sweep_err(&key, hint));
        };
        if list.is_empty() {
            return Err(sweep_err(&key, "empty list"));
        }
        if list.len() > bounds::CONFIGURATIONS {
            return Err(too_many(&format!("sweep.{key}"), list.len() as u64));
        }
        for (i, v) in list.iter().enumerate() {
            let block_list = network::takes_lists(&key) && v.is_array();
            if !block_list
                && matches!(
                    v,
                    toml::Value::Array(_) | toml::Value::Table(_) | toml::Value::Datetime(_)
                )
            {
                return Err(sweep_err(
                    &key,
                    format!("value {i} is not a number, string or boolean"),
                ));
            }
            // Each value on its own: the error names this key.
            apply(&base_table, &[(key.as_str(), v)], &key)?;
        }
        axes.push((key, list));
    }
    if axes.is_empty() {
        return Err(sweep_err("", "no keys to sweep"));
    }
    // Counted before anything is expanded: a grid of 4 keys x 1000 values is
    // 10^12 rows.
    if mode == SweepMode::Grid {
        let count = axes
            .iter()
            .fold(1u64, |n, (_, l)| n.saturating_mul(l.len() as u64));
        if count > bounds::CONFIGURATIONS as u64 {
            return Err(too_many("sweep", count));
        }
    }

    let rows = combinations(&axes, mode)?;
    let base_row = baseline_row(&axes, &rows, &baseline, mode)?;
    let mut out = Vec::with_capacity(rows.len());
    for (r, row) in rows.iter().enumerate() {
        let pairs: Vec<(&str, &toml::Value)> = axes
            .iter()
            .zip(row)
            .map(|((k, list), &i)| (k.as_str(), &list[i]))
            .collect();
        out.push(configuration(&base_table, &pairs, r == base_row)?);
    }
    Ok(out)
}

/// Refuses a key a sweep cannot vary.
fn check_key(key: &str) -> Result<(), ConfigError> {
    if SWEEP_KEYS.contains(&key) || network::is_block_field_key(key) {
        return Ok(());
    }
    Err(sweep_err(
        key,
        format!(
            "not a key a sweep can vary (one of {}, network.blocks.<i>.<{}>)",
            SWEEP_KEYS.join(", "),
            network::BLOCK_FIELDS.join("|")
        ),
    ))
}

/// The configuration of `pairs` (its label `k=v ...`), applied and checked.
fn configuration(
    base_table: &toml::Table,
    pairs: &[(&str, &toml::Value)],
    baseline: bool,
) -> Result<Configuration, ConfigError> {
    let label = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", label_key(k), show(v)))
        .collect::<Vec<_>>()
        .join(" ");
    crate::names::check_no_control(&label)
        .map_err(|m| sweep_err("label", format!("{label:?}: {m}")))?;
    let config = apply(base_table, pairs, &label)?;
    Ok(Configuration {
        values: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).clone()))
            .collect(),
        label,
        baseline,
        config,
    })
}

/// The key part of a label: the last path segment (`lr`), or for network
/// keys `network` / `blocks.<i>.<field>`.
fn label_key(key: &str) -> &str {
    network::label_key(key).unwrap_or_else(|| key.rsplit('.').next().unwrap_or(key))
}

/// Rows of value indices, one per configuration; distinct rows only.
fn combinations(
    axes: &[(String, Vec<toml::Value>)],
    mode: SweepMode,
) -> Result<Vec<Vec<usize>>, ConfigError> {
    let rows: Vec<Vec<usize>> = match mode {
        SweepMode::Grid => {
            for (key, list) in axes {
                for (i, v) in list.iter().enumerate() {
                    if list[..i].iter().any(|w| same_value(v, w)) {
                        return Err(sweep_err(key, format!("value {} is listed twice", show(v))));
                    }
                }
            }
            let mut rows = vec![Vec::new()];
            for (_, list) in axes {
                rows = rows
                    .into_iter()
                    .flat_map(|row| {
                        (0..list.len()).map(move |i| {
                            let mut r = row.clone();
                            r.push(i);
                            r
                        })
                    })
                    .collect();
            }
            rows
        }
        SweepMode::Zip => {
            let n = axes[0].1.len();
            if let Some((key, list)) = axes.iter().find(|(_, l)| l.len() != n) {
                return Err(sweep_err(
                    key,
                    format!(
                        "zip mode needs lists of one length: {} has {n} values, {key} {}",
                        axes[0].0,
                        list.len()
                    ),
                ));
            }
            let rows: Vec<Vec<usize>> = (0..n).map(|i| vec![i; axes.len()]).collect();
            for i in 0..n {
                for j in 0..i {
                    if axes.iter().all(|(_, l)| same_value(&l[i], &l[j])) {
                        return Err(sweep_err(
                            "mode",
                            format!("zip rows {j} and {i} are the same"),
                        ));
                    }
                }
            }
            rows
        }
        // Drawn by `random::configurations`, never combined.
        SweepMode::Random => {
            return Err(sweep_err("mode", "a random sweep is drawn, not combined"));
        }
    };
    Ok(rows)
}

/// The row `baseline` names (every list's first value when it names nothing).
fn baseline_row(
    axes: &[(String, Vec<toml::Value>)],
    rows: &[Vec<usize>],
    baseline: &BTreeMap<String, toml::Value>,
    mode: SweepMode,
) -> Result<usize, ConfigError> {
    for (key, value) in baseline {
        let Some((_, list)) = axes.iter().find(|(k, _)| k == key) else {
            return Err(sweep_err(&format!("baseline.{key}"), "not a swept key"));
        };
        if !list.iter().any(|v| same_value(v, value)) {
            return Err(sweep_err(
                &format!("baseline.{key}"),
                format!("{} is not one of the swept values", show(value)),
            ));
        }
    }
    let matches = |a: usize, i: usize| match baseline.get(&axes[a].0) {
        Some(v) => same_value(&axes[a].1[i], v),
        // Grid: an unnamed key takes its first value; zip: any.
        None => mode == SweepMode::Zip || i == 0,
    };
    rows.iter()
        .position(|row| row.iter().enumerate().all(|(a, &i)| matches(a, i)))
        .ok_or_else(|| sweep_err("baseline", "names no row of the zip"))
}

/// The error for a sweep of `count` configurations (or values of one key).
fn too_many(key: &str, count: u64) -> ConfigError {
    ConfigError::TooLarge {
        key: key.to_owned(),
        what: "configurations",
        count,
        limit: bounds::CONFIGURATIONS as u64,
    }
}

impl ExperimentConfig {
    /// Checks `[sweep]` when there is one (every key, value and combination),
    /// and that the experiment plans at most [`bounds::JOBS`] jobs.
    pub fn validate_sweep(&self) -> Result<(), ConfigError> {
        let configurations = match &self.sweep {
            Some(_) => {
                let n = configurations(self)?.len();
                prune_rule(self)?;
                n
            }
            None => 1,
        };
        let p = &self.protocol;
        let jobs = [configurations, p.seeds.len(), p.variants.len()]
            .into_iter()
            .fold(u64::from(p.folds), |n, k| n.saturating_mul(k as u64));
        if jobs > bounds::JOBS {
            return Err(ConfigError::TooLarge {
                key: "protocol".to_owned(),
                what: "jobs (configurations x seeds x variants x folds)",
                count: jobs,
                limit: bounds::JOBS,
            });
        }
        Ok(())
    }
}

//! The keys a sweep may vary and what it does with their values: the
//! errors naming `sweep.<key>`, equality and display of values, labels, and
//! setting values into an experiment's table.

use crate::experiment::error::ConfigError;
pub use crate::experiment::error::sweep_err;
use crate::experiment::sweep::network;

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
    "training.tf32",
    "training.precision",
    "trainer.name",
    "trainer.frames",
    network::BLOCKS_KEY,
];

/// The prefix of the keys of a training script's own settings
/// (`trainer.params.<key>`), all sweepable.
pub const TRAINER_PARAMS_PREFIX: &str = "trainer.params.";

/// The script setting a key names, when it is `trainer.params.<key>`.
fn trainer_param(key: &str) -> Option<&str> {
    key.strip_prefix(TRAINER_PARAMS_PREFIX)
        .filter(|k| !k.is_empty() && !k.contains('.'))
}

/// Refuses a key a sweep cannot vary.
pub fn check_key(key: &str) -> Result<(), ConfigError> {
    if SWEEP_KEYS.contains(&key) || network::is_block_field_key(key) || trainer_param(key).is_some()
    {
        return Ok(());
    }
    Err(sweep_err(
        key,
        format!(
            "not a key a sweep can vary (one of {}, trainer.params.<key>, network.blocks.<i>.<{}>)",
            SWEEP_KEYS.join(", "),
            network::BLOCK_FIELDS.join("|")
        ),
    ))
}

/// A value as a label shows it (a block list by its compact name).
pub fn show(v: &toml::Value) -> String {
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

/// An integer or float value as `f64`, `None` for other values.
pub fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Equality with integers and floats compared by value (`100` = `100.0`).
pub fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The key part of a label: the last path segment (`lr`), or for network
/// keys `network` / `blocks.<i>.<field>`.
fn label_key(key: &str) -> &str {
    network::label_key(key).unwrap_or_else(|| key.rsplit('.').next().unwrap_or(key))
}

/// One configuration of a sweep before it is applied: its label, values and
/// whether it is the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Readable label, e.g. `lr=0.0003 steps=100`.
    pub label: String,
    /// The swept values by dotted key, in the sweep's key order.
    pub values: Vec<(String, toml::Value)>,
    /// Whether this is the configuration the others are compared with.
    pub baseline: bool,
}

impl Row {
    /// The row of `pairs` (its label `k=v ...` in their order); a label with
    /// a control character is refused.
    pub fn new(pairs: &[(&str, &toml::Value)], baseline: bool) -> Result<Self, ConfigError> {
        let label = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", label_key(k), show(v)))
            .collect::<Vec<_>>()
            .join(" ");
        crate::names::check_no_control(&label)
            .map_err(|m| sweep_err("label", format!("{label:?}: {m}")))?;
        Ok(Row {
            label,
            values: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).clone()))
                .collect(),
            baseline,
        })
    }

    /// The values as `(key, value)` pairs.
    pub fn pairs(&self) -> Vec<(&str, &toml::Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v)).collect()
    }
}

/// `base` (an experiment's table without `[sweep]`) with `values` set at
/// their dotted keys; the error names `sweep.<key_for_errors>`.
pub fn set_values(
    base: &toml::Table,
    values: &[(&str, &toml::Value)],
    key_for_errors: &str,
) -> Result<toml::Table, ConfigError> {
    let mut table = base.clone();
    for (key, value) in values {
        let set = network::set(&mut table, key, value).map_err(|m| sweep_err(key_for_errors, m))?;
        if set {
            continue;
        }
        // `trainer.params.<param>` goes into `[trainer.params]`.
        let (target, field) = match trainer_param(key) {
            Some(param) => {
                let trainer = sub_table(&mut table, "trainer");
                (trainer.and_then(|t| sub_table(t, "params")), param)
            }
            None => {
                let (section, field) = key.split_once('.').unwrap_or(("", key));
                (sub_table(&mut table, section), field)
            }
        };
        if let Some(t) = target {
            t.insert(field.to_owned(), (*value).clone());
        }
    }
    Ok(table)
}

/// The table at `key` of `table` (an empty one put there when absent);
/// `None` when `key` holds another value.
fn sub_table<'a>(table: &'a mut toml::Table, key: &str) -> Option<&'a mut toml::Table> {
    table
        .entry(key.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
}

/// `values` as an error message shows them: `0.1, SUM`.
pub fn show_values(values: &[(&str, &toml::Value)]) -> String {
    values
        .iter()
        .map(|(_, v)| show(v))
        .collect::<Vec<_>>()
        .join(", ")
}

//! `mode = "grid"` and `mode = "zip"`: configurations combined from lists of
//! values, one list a key.

use std::collections::BTreeMap;

use crate::experiment::error::{ConfigError, bounds};
use crate::experiment::sweep::keys::{Row, check_key, same_value, show, sweep_err};
use crate::experiment::sweep::network;
use crate::experiment::sweep::random::is_range;

/// How the lists combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Cartesian product, the first key (in sorted order) varying slowest.
    Grid,
    /// The i-th values of all lists together (the lists equally long).
    Zip,
}

/// One swept key with its listed values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The dotted key, e.g. `training.lr`.
    pub key: String,
    /// Its values, in the order written.
    pub values: Vec<toml::Value>,
}

/// The axis of `key` from its `[sweep]` value: a key a sweep can vary and a
/// non-empty list of numbers, strings or booleans (block lists for
/// `network.blocks`).
pub fn axis(key: String, value: toml::Value) -> Result<Axis, ConfigError> {
    check_key(&key)?;
    let toml::Value::Array(values) = value else {
        let hint = if matches!(&value, toml::Value::Table(t) if is_range(t)) {
            "a range needs mode = \"random\""
        } else {
            "expected a list of values"
        };
        return Err(sweep_err(&key, hint));
    };
    if values.is_empty() {
        return Err(sweep_err(&key, "empty list"));
    }
    for (i, v) in values.iter().enumerate() {
        let block_list = key == network::BLOCKS_KEY && v.is_array();
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
    }
    Ok(Axis { key, values })
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

/// Refuses a list longer than [`bounds::CONFIGURATIONS`] and, counted
/// before anything is expanded, a grid of more configurations (4 keys x
/// 1000 values is 10^12 rows).
pub fn check_size(axes: &[Axis], combine: Combine) -> Result<(), ConfigError> {
    if let Some(a) = axes
        .iter()
        .find(|a| a.values.len() > bounds::CONFIGURATIONS)
    {
        return Err(too_many(&format!("sweep.{}", a.key), a.values.len() as u64));
    }
    if combine == Combine::Grid {
        let count = axes
            .iter()
            .fold(1u64, |n, a| n.saturating_mul(a.values.len() as u64));
        if count > bounds::CONFIGURATIONS as u64 {
            return Err(too_many("sweep", count));
        }
    }
    Ok(())
}

/// The configurations of `axes` combined by `combine`, the one `baseline`
/// names marked (every list's first value when it names nothing).
pub fn rows(
    axes: &[Axis],
    combine: Combine,
    baseline: &BTreeMap<String, toml::Value>,
) -> Result<Vec<Row>, ConfigError> {
    check_size(axes, combine)?;
    let indices = match combine {
        Combine::Grid => grid_indices(axes)?,
        Combine::Zip => zip_indices(axes)?,
    };
    let base_row = baseline_row(axes, &indices, baseline, combine)?;
    indices
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let pairs: Vec<(&str, &toml::Value)> = axes
                .iter()
                .zip(row)
                .map(|(a, &i)| (a.key.as_str(), &a.values[i]))
                .collect();
            Row::new(&pairs, r == base_row)
        })
        .collect()
}

/// The grid's rows of value indices; a value listed twice is refused.
fn grid_indices(axes: &[Axis]) -> Result<Vec<Vec<usize>>, ConfigError> {
    for a in axes {
        for (i, v) in a.values.iter().enumerate() {
            if a.values[..i].iter().any(|w| same_value(v, w)) {
                return Err(sweep_err(
                    &a.key,
                    format!("value {} is listed twice", show(v)),
                ));
            }
        }
    }
    let mut rows = vec![Vec::new()];
    for a in axes {
        let n = a.values.len();
        rows = rows
            .iter()
            .flat_map(|row: &Vec<usize>| (0..n).map(|i| [row.as_slice(), &[i]].concat()))
            .collect();
    }
    Ok(rows)
}

/// The zip's rows of value indices; lists of other lengths and two equal
/// rows are refused.
fn zip_indices(axes: &[Axis]) -> Result<Vec<Vec<usize>>, ConfigError> {
    let Some(first) = axes.first() else {
        return Err(sweep_err("", "no keys to sweep"));
    };
    let n = first.values.len();
    if let Some(a) = axes.iter().find(|a| a.values.len() != n) {
        return Err(sweep_err(
            &a.key,
            format!(
                "zip mode needs lists of one length: {} has {n} values, {} {}",
                first.key,
                a.key,
                a.values.len()
            ),
        ));
    }
    for i in 0..n {
        for j in 0..i {
            if axes.iter().all(|a| same_value(&a.values[i], &a.values[j])) {
                return Err(sweep_err(
                    "mode",
                    format!("zip rows {j} and {i} are the same"),
                ));
            }
        }
    }
    Ok((0..n).map(|i| vec![i; axes.len()]).collect())
}

/// The row `baseline` names (every list's first value when it names nothing).
fn baseline_row(
    axes: &[Axis],
    rows: &[Vec<usize>],
    baseline: &BTreeMap<String, toml::Value>,
    combine: Combine,
) -> Result<usize, ConfigError> {
    for (key, value) in baseline {
        let Some(a) = axes.iter().find(|a| a.key == *key) else {
            return Err(sweep_err(&format!("baseline.{key}"), "not a swept key"));
        };
        if !a.values.iter().any(|v| same_value(v, value)) {
            return Err(sweep_err(
                &format!("baseline.{key}"),
                format!("{} is not one of the swept values", show(value)),
            ));
        }
    }
    let matches = |a: usize, i: usize| match baseline.get(&axes[a].key) {
        Some(v) => same_value(&axes[a].values[i], v),
        // Grid: an unnamed key takes its first value; zip: any.
        None => combine == Combine::Zip || i == 0,
    };
    rows.iter()
        .position(|row| row.iter().enumerate().all(|(a, &i)| matches(a, i)))
        .ok_or_else(|| sweep_err("baseline", "names no row of the zip"))
}

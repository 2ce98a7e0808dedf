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
//! result) and `data.downscale` ([`keys::SWEEP_KEYS`]); each takes a
//! non-empty list of values. `network.blocks` (whole block lists) and
//! `network.blocks.<i>.<field>` (one value of one block) compare networks:
//! see [`network`].
//! `mode = "grid"` (the default) makes the cartesian product, the first key
//! (in sorted order) varying slowest; `mode = "zip"` takes the i-th value of
//! every list together (the lists must be equally long): see [`grid`]. Each
//! combination is a [`Row`] labelled `lr=0.0003 steps=100` (last path
//! segment, keys in sorted order). The baseline is the combination of every
//! list's first value, unless `baseline` (a table of key = value) names one:
//! in grid mode the keys it leaves out take their first value; in zip mode
//! the first row matching every named value is the baseline.
//!
//! `mode = "random"` draws `samples` configurations from ranges and lists with
//! a `seed`, after the experiment as written (configuration 0, the baseline):
//! see [`random`].
//!
//! `prune = "median"` (with `warmup_epochs`, `min_jobs`) or `prune = "asha"`
//! stops hopeless configurations early: see [`crate::experiment::prune`].
//!
//! The table is read once, when the experiment is parsed, into a
//! [`SweepSpec`]: the mode with its keys and values ([`Search`]), the
//! baseline and the pruning settings; unknown keys, values of the wrong type
//! and empty lists are refused there, naming the key. The table as written
//! is kept too: it is what the experiment serialises (and so what its
//! identity hashes). What needs the rest of the experiment (sizes, every
//! value and combination applied and validated, pruning against the
//! protocol) is checked when the experiment is validated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::experiment::error::ConfigError;
use crate::experiment::prune::{PRUNE_KEYS, PruneSettings};
use crate::experiment::sweep::grid::{Axis, Combine};
use crate::experiment::sweep::keys::{Row, sweep_err};
use crate::experiment::sweep::random::{RandomSearch, is_range};

pub mod grid;
pub mod keys;
pub mod network;
pub mod random;

/// How a sweep makes its configurations.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    /// `mode = "grid"` (the default) or `mode = "zip"`: lists of values
    /// combined ([`grid`]).
    Lists {
        /// Product or zip.
        combine: Combine,
        /// The swept keys with their values, in key order.
        axes: Vec<Axis>,
    },
    /// `mode = "random"`: draws from ranges and lists ([`random`]).
    Random(RandomSearch),
}

/// `[sweep]`, read: the table as written (what serialises) and its typed
/// values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "toml::Table", into = "toml::Table")]
pub struct SweepSpec {
    written: toml::Table,
    search: Search,
    baseline: BTreeMap<String, toml::Value>,
    prune: Option<PruneSettings>,
    rope: f64,
}

/// `rope` when `[sweep]` does not set it: half-width of the region of
/// practical equivalence, in percentage points of accuracy.
pub const DEFAULT_ROPE_PP: f64 = 1.0;

/// `rope = x`: a finite number of percentage points, at least 0 (an integer
/// is taken as that many points).
fn rope(table: &toml::Table) -> Result<f64, ConfigError> {
    let value = match table.get("rope") {
        None => return Ok(DEFAULT_ROPE_PP),
        Some(toml::Value::Float(x)) => *x,
        Some(toml::Value::Integer(n)) => *n as f64,
        Some(other) => {
            return Err(sweep_err(
                "rope",
                format!("{other} is not a number of percentage points"),
            ));
        }
    };
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(sweep_err(
            "rope",
            format!("{value} percentage points: must be finite and at least 0"),
        ))
    }
}

impl TryFrom<toml::Table> for SweepSpec {
    type Error = ConfigError;

    /// Reads a `[sweep]` table; errors name the key (`sweep.training.lr`).
    fn try_from(table: toml::Table) -> Result<Self, ConfigError> {
        let (search, baseline) = search(&table)?;
        let prune = PruneSettings::parse(&table)?;
        let rope = rope(&table)?;
        Ok(SweepSpec {
            written: table,
            search,
            baseline,
            prune,
            rope,
        })
    }
}

impl From<SweepSpec> for toml::Table {
    fn from(spec: SweepSpec) -> Self {
        spec.written
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
            toml::Value::Table(t) if !is_range(t) => flatten(&key, t, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

/// The search `[sweep]` asks for, with its baseline: the settings read, the
/// swept keys flattened, then checked together.
fn search(table: &toml::Table) -> Result<(Search, BTreeMap<String, toml::Value>), ConfigError> {
    // `None`: mode = "random".
    let mut combine = Some(Combine::Grid);
    let (mut samples, mut seed) = (None, 0);
    let (mut baseline, mut swept) = (BTreeMap::new(), BTreeMap::new());
    for (k, v) in table {
        match (k.as_str(), v) {
            ("mode", _) => {
                combine = match v.as_str() {
                    Some("grid") => Some(Combine::Grid),
                    Some("zip") => Some(Combine::Zip),
                    Some("random") => None,
                    Some(other) => {
                        let message = format!("{other:?} is not grid, zip or random");
                        return Err(sweep_err("mode", message));
                    }
                    None => {
                        return Err(sweep_err("mode", "must be \"grid\", \"zip\" or \"random\""));
                    }
                }
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
            // The comparisons' region of practical equivalence, read by `rope`.
            ("rope", _) => {}
            // Pruning settings, read by `PruneSettings::parse`.
            (k, _) if PRUNE_KEYS.contains(&k) => {}
            (_, toml::Value::Table(t)) if !is_range(t) => flatten(k, t, &mut swept),
            _ => {
                swept.insert(k.clone(), v.clone());
            }
        }
    }
    let search = match (combine, samples) {
        (None, Some(samples)) => {
            Search::Random(RandomSearch::parse(swept, &baseline, samples, seed)?)
        }
        (None, None) => return Err(sweep_err("samples", "mode = \"random\" needs samples = N")),
        (Some(_), Some(_)) => {
            return Err(sweep_err("samples", "only mode = \"random\" draws samples"));
        }
        (Some(combine), None) => {
            let axes = swept
                .into_iter()
                .map(|(key, value)| grid::axis(key, value))
                .collect::<Result<Vec<_>, _>>()?;
            if axes.is_empty() {
                return Err(sweep_err("", "no keys to sweep"));
            }
            Search::Lists { combine, axes }
        }
    };
    Ok((search, baseline))
}

impl SweepSpec {
    /// The pruning settings, `None` when the sweep does not prune.
    pub fn prune(&self) -> Option<PruneSettings> {
        self.prune
    }

    /// Half-width of the region of practical equivalence of the Bayesian
    /// comparisons with the baseline, percentage points (`rope`, default
    /// [`DEFAULT_ROPE_PP`]).
    pub fn rope(&self) -> f64 {
        self.rope
    }

    /// Refuses a sweep of more configurations than
    /// [`crate::experiment::error::bounds::CONFIGURATIONS`], counted before
    /// anything is expanded.
    pub fn check_size(&self) -> Result<(), ConfigError> {
        match &self.search {
            Search::Lists { combine, axes } => grid::check_size(axes, *combine),
            // `samples` is bounded when read.
            Search::Random(_) => Ok(()),
        }
    }

    /// Every value that is checked on its own (applied alone, its error
    /// naming its key): each listed value, a range's bounds.
    pub fn probes(&self) -> Vec<(&str, toml::Value)> {
        match &self.search {
            Search::Lists { axes, .. } => axes
                .iter()
                .flat_map(|a| a.values.iter().map(|v| (a.key.as_str(), v.clone())))
                .collect(),
            Search::Random(random) => random.probes(),
        }
    }

    /// The configurations, in sweep order, one the baseline; `base` is the
    /// experiment's table without `[sweep]` (a random sweep's baseline takes
    /// its values from it).
    pub fn rows(&self, base: &toml::Table) -> Result<Vec<Row>, ConfigError> {
        match &self.search {
            Search::Lists { combine, axes } => grid::rows(axes, *combine, &self.baseline),
            Search::Random(random) => random.rows(base, &self.baseline),
        }
    }
}

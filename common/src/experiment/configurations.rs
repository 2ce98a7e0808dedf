//! A sweep's configurations: each row of `[sweep]` ([`SweepSpec::rows`])
//! applied to the experiment and validated, what a plan runs.
//!
//! [`SweepSpec::rows`]: crate::experiment::sweep::SweepSpec::rows

use std::collections::BTreeMap;

use crate::experiment::config::ExperimentConfig;
use crate::experiment::error::ConfigError;

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

/// The configurations of `config`: one (empty label, baseline) without
/// `[sweep]`, else every row of the sweep, applied and checked.
pub fn configurations(config: &ExperimentConfig) -> Result<Vec<Configuration>, ConfigError> {
    let Some(spec) = &config.sweep else {
        return Ok(vec![Configuration {
            label: String::new(),
            values: BTreeMap::new(),
            baseline: true,
            config: config.clone(),
        }]);
    };
    let base = config.sweep_base()?;
    spec.rows(&base)?
        .into_iter()
        .map(|row| {
            let config = ExperimentConfig::with_sweep_values(&base, &row.pairs(), &row.label)?;
            Ok(Configuration {
                label: row.label,
                values: row.values.into_iter().collect(),
                baseline: row.baseline,
                config,
            })
        })
        .collect()
}

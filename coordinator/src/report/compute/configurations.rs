//! The experiment's configurations: one per sweep point (one, unlabelled,
//! without a sweep), each with its epochs and its network in brief.

use std::collections::BTreeMap;

use serde::Serialize;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::Configuration;

/// A configuration's network in brief: its compact name and its size.
///
/// The counts are [`spikecv_common::experiment::network::Network`]'s: parameters are the
/// conv and linear layers' weights plus biases; FLOPs are 2 × the
/// multiply-accumulates of the conv and linear layers per time step × the
/// steps, for one sample's forward pass (no biases, LIF updates, pooling,
/// backward pass, nor the savings of sparse spikes). The worker runs a
/// training sample for `simulation.steps` time steps and a validation or test
/// sample for `training.test_steps`, so both figures are given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSummary {
    /// Compact name, e.g. `c20k3-p2a-c50k3-p2a-f200-f19`.
    pub name: String,
    /// Whether it is the default network (no `[network]`: SLANIMALSNet with
    /// the reference's parameter names).
    pub reference: bool,
    /// Trainable parameters (weights and biases).
    pub parameters: u64,
    /// FLOPs of one training sample's forward pass (`simulation.steps` steps).
    pub flops_per_sample: u64,
    /// `simulation.steps`.
    pub steps: u32,
    /// FLOPs of one validation or test sample's forward pass
    /// (`training.test_steps` steps).
    pub test_flops_per_sample: u64,
    /// `training.test_steps`.
    pub test_steps: u32,
}

impl NetworkSummary {
    /// The network of `config` on a data set of `classes` classes; `None`
    /// when it does not resolve (e.g. a last layer of another class count).
    pub fn of(config: &ExperimentConfig, classes: u32) -> Option<Self> {
        let network = config.network(classes).ok()?;
        let (steps, test_steps) = (config.simulation.steps, config.training.test_steps);
        Some(Self {
            name: network.compact_name(),
            reference: config.network.is_none(),
            parameters: network.param_count(),
            flops_per_sample: network.flops_per_sample(steps),
            steps,
            test_flops_per_sample: network.flops_per_sample(test_steps),
            test_steps,
        })
    }
}

/// One configuration of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigurationInfo {
    /// Its index (jobs' `configuration`).
    pub index: usize,
    /// Readable label, e.g. `lr=0.0003 steps=100` (empty without a sweep).
    pub label: String,
    /// The swept values by dotted key.
    pub values: BTreeMap<String, toml::Value>,
    /// Whether the others are compared with this one.
    pub baseline: bool,
    /// Epochs a job of it trains (`None` when the config did not parse).
    pub epochs: Option<u32>,
    /// Its network: compact name, parameters, FLOPs per sample (`None` when
    /// the config did not parse or its network does not resolve).
    pub network: Option<NetworkSummary>,
}

impl ConfigurationInfo {
    /// The experiment's configurations, each network resolved for `classes`
    /// classes; when its config did not parse, one unnamed entry per index
    /// `planned` mentions, none of them a baseline, without a network.
    pub fn list(
        configs: &[Configuration],
        planned: impl Iterator<Item = usize>,
        classes: u32,
    ) -> Vec<Self> {
        if !configs.is_empty() {
            return configs
                .iter()
                .enumerate()
                .map(|(index, c)| Self {
                    index,
                    label: c.label.clone(),
                    values: c.values.clone(),
                    baseline: c.baseline,
                    epochs: Some(c.config.training.epochs),
                    network: NetworkSummary::of(&c.config, classes),
                })
                .collect();
        }
        let max = planned.max().unwrap_or(0);
        (0..=max)
            .map(|index| Self {
                index,
                label: if max == 0 {
                    String::new()
                } else {
                    format!("#{index}")
                },
                values: BTreeMap::new(),
                baseline: max == 0,
                epochs: None,
                network: None,
            })
            .collect()
    }
}

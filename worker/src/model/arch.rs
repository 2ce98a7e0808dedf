//! What a [`Net`](super::Net) is built from: its layers in order, with their
//! sizes, parameter names and neurons ([`Architecture`]).
//!
//! Both come from common's resolved network ([`NetworkSpec::resolve`]) on a
//! [`NetConfig`]'s input, classes and neuron parameters: a [`NetConfig`]
//! alone gives the reference SLANIMALSNet ([`NetworkSpec::reference`],
//! [`Architecture::reference`], its parameters named `conv1.*` … `fc2.*`); the
//! experiment's `[network]` gives any other ([`Architecture::from_spec`],
//! parameters named `blocks.<i>.*`).

use std::borrow::Cow;

use spikecv_common::experiment::network::{
    InputShape, Layer, LayerOp, LifSettings, NetworkError, NetworkSpec,
};

use crate::lif::{LifParams, SpikeFn};
use crate::model::NetConfig;

/// What a layer computes, with its sizes as libtorch takes them: common's
/// resolved [`LayerOp`] in `i64`.
pub type Op = LayerOp<i64>;

/// One layer of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDef {
    /// The parameters' prefix: `conv1` … `fc2` for the reference network,
    /// `blocks.<i>` otherwise (also for layers without parameters).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Values of one sample's output at one time step.
    pub output_values: i64,
    /// The LIF after the operation, if any.
    pub lif: Option<LifParams>,
}

impl LayerDef {
    /// The worker's form of a resolved layer: its sizes in `i64`, its LIF
    /// with the spike function `spike`.
    fn resolved(layer: &Layer, spike: SpikeFn) -> Result<Self, ArchitectureError> {
        let int = |v: u64| {
            i64::try_from(v).map_err(|_| ArchitectureError::TooLarge {
                name: layer.name.clone(),
            })
        };
        Ok(Self {
            name: layer.name.clone(),
            op: layer.op.try_map(int)?,
            output_values: int(layer.output.numel())?,
            lif: layer.lif.map(|s| LifParams {
                tau: s.tau,
                vth: s.vth,
                a: s.a,
                spike,
            }),
        })
    }

    /// `<name>.weight` and `<name>.bias` for conv and linear layers.
    pub fn param_names(&self) -> Option<(String, String)> {
        self.op.weight_dims().map(|_| {
            (
                format!("{}.weight", self.name),
                format!("{}.bias", self.name),
            )
        })
    }
}

/// A network the worker can build: input, classes, neuron parameters and
/// layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    /// Input shape, classes and the network-wide neuron parameters (those of
    /// `[simulation]`; a block may have its own).
    pub config: NetConfig,
    /// The block list, for a network other than the reference (saved beside
    /// the weights); `None` for the reference.
    pub network: Option<NetworkSpec>,
    /// The layers in order.
    pub layers: Vec<LayerDef>,
}

/// A network that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ArchitectureError {
    /// The block list does not fit the input or the classes.
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    /// The input or class count is not a size a network can have.
    #[error("network input {what} = {value} is out of range")]
    Input {
        /// Which value.
        what: &'static str,
        /// The value.
        value: i64,
    },
    /// A resolved size does not fit an `i64`.
    #[error("network layer {name}: a size does not fit in 64 bits")]
    TooLarge {
        /// The layer.
        name: String,
    },
}

impl From<NetConfig> for Architecture {
    fn from(config: NetConfig) -> Self {
        Self::reference(config)
    }
}

/// `value` as a `u32` size of the network's input, or the error naming it.
fn narrow(what: &'static str, value: i64) -> Result<u32, ArchitectureError> {
    u32::try_from(value).map_err(|_| ArchitectureError::Input { what, value })
}

impl Architecture {
    /// The reference SLANIMALSNet ([`NetworkSpec::reference`]) on `config`'s
    /// input and classes: conv 20 k3 → LIF → avg-pool 2 → conv 50 k3 → LIF →
    /// avg-pool 2 → flatten → linear 200 → LIF → linear classes → LIF, named
    /// as the reference names it.
    ///
    /// # Panics
    /// When the reference network does not fit `config` (an input under
    /// 10 × 10, no classes); [`Architecture::of`] gives that as an error.
    pub fn reference(config: NetConfig) -> Self {
        match Self::of(config, None) {
            Ok(arch) => arch,
            Err(e) => panic!("the reference network on {config:?}: {e}"),
        }
    }

    /// The network `spec` on `config`'s input (`in_channels × width ×
    /// height`) and classes, each LIF with `config.lif` unless its block
    /// gives its own `tau`, `vth`, `a` (the spike function is always
    /// `config.lif`'s). The block list is checked as when an experiment
    /// loads ([`NetworkSpec::resolve`]).
    pub fn from_spec(config: NetConfig, spec: &NetworkSpec) -> Result<Self, ArchitectureError> {
        let input = InputShape {
            channels: narrow("in_channels", config.in_channels)?,
            x: narrow("width", config.width)?,
            y: narrow("height", config.height)?,
        };
        let classes = narrow("classes", config.classes)?;
        let base = LifSettings {
            tau: config.lif.tau,
            vth: config.lif.vth,
            a: config.lif.a,
        };
        let layers = spec
            .resolve(input, classes, base)?
            .layers
            .iter()
            .map(|layer| LayerDef::resolved(layer, config.lif.spike))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            config,
            network: (!spec.is_reference()).then(|| spec.clone()),
            layers,
        })
    }

    /// The experiment's network: `spec` when it has one (`[network]`), else
    /// the reference ([`NetworkSpec::reference`] for `config`'s classes), on
    /// `config`'s input.
    pub fn of(config: NetConfig, spec: Option<&NetworkSpec>) -> Result<Self, ArchitectureError> {
        let spec = match spec {
            Some(spec) => Cow::Borrowed(spec),
            None => Cow::Owned(NetworkSpec::reference(narrow("classes", config.classes)?)),
        };
        Self::from_spec(config, &spec)
    }

    /// Parameter names in PyTorch state-dict order (and creation order).
    pub fn param_names(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter_map(LayerDef::param_names)
            .flat_map(|(w, b)| [w, b])
            .collect()
    }

    /// The most values one sample's layer output holds at one time step (the
    /// first conv's output for the reference network): what sizes an
    /// evaluation pass.
    pub fn peak_values(&self) -> i64 {
        self.layers
            .iter()
            .map(|l| l.output_values)
            .max()
            .unwrap_or(1)
            .max(1)
    }
}

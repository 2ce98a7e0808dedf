//! What a [`Net`](super::Net) is built from: its layers in order, with their
//! sizes, parameter names and neurons ([`Architecture`]).
//!
//! Two sources: a [`NetConfig`] alone gives the reference SLANIMALSNet
//! ([`Architecture::reference`], its parameters named `conv1.*` … `fc2.*`);
//! a [`NetworkSpec`] (the experiment's `[network]`) resolved on a
//! [`NetConfig`]'s input, classes and neuron parameters gives any other
//! ([`Architecture::from_spec`], parameters named `blocks.<i>.*`).

use spikecv_common::experiment::network::{
    InputShape, LayerOp, LifSettings, NetworkError, NetworkSpec, PoolKind,
};

use crate::lif::LifParams;
use crate::model::{CONV1_CHANNELS, CONV2_CHANNELS, HIDDEN, NetConfig};

/// What a layer computes, with its sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `Conv2d(in_channels, out_channels, kernel, stride, padding)` with a bias.
    Conv {
        /// Input channels.
        in_channels: i64,
        /// Output channels.
        out_channels: i64,
        /// Kernel side.
        kernel: i64,
        /// Stride.
        stride: i64,
        /// Zero padding on every side.
        padding: i64,
    },
    /// `MaxPool2d(size)` / `AvgPool2d(size)`: stride = size, no padding, floor.
    Pool {
        /// Max or average.
        kind: PoolKind,
        /// Window side and stride.
        size: i64,
    },
    /// Channel-major flatten of each sample.
    Flatten,
    /// `Linear(in_features, out_features)` with a bias.
    Linear {
        /// Input features.
        in_features: i64,
        /// Output features.
        out_features: i64,
    },
}

impl Op {
    /// The weight's dimensions in PyTorch's order (`[out, in, k, k]` or
    /// `[out, in]`); `None` for layers without parameters.
    pub fn weight_dims(&self) -> Option<Vec<i64>> {
        match *self {
            Op::Conv {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some(vec![out_channels, in_channels, kernel, kernel]),
            Op::Linear {
                in_features,
                out_features,
            } => Some(vec![out_features, in_features]),
            Op::Pool { .. } | Op::Flatten => None,
        }
    }

    /// Whether the layer is a 2×2 average pooling, which the LIF kernels run
    /// fused with the LIF layer before it.
    pub fn is_avg_pool_2(&self) -> bool {
        matches!(
            self,
            Op::Pool {
                kind: PoolKind::Avg,
                size: 2
            }
        )
    }
}

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

impl Architecture {
    /// The reference SLANIMALSNet on `config`'s input: conv 20 k3 → LIF →
    /// avg-pool 2 → conv 50 k3 → LIF → avg-pool 2 → flatten → linear 200 →
    /// LIF → linear classes → LIF, named as the reference names it. Sizes are
    /// not checked ([`NetConfig::is_valid`] says whether they are positive).
    pub fn reference(config: NetConfig) -> Self {
        let (w, h) = (config.width, config.height);
        let c1 = (w - 2) * (h - 2);
        let p1 = ((w - 2) / 2) * ((h - 2) / 2);
        let c2 = ((w - 2) / 2 - 2) * ((h - 2) / 2 - 2);
        let flat = config.flat_features();
        let lif = Some(config.lif);
        let conv = |in_channels, out_channels| Op::Conv {
            in_channels,
            out_channels,
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        let pool = Op::Pool {
            kind: PoolKind::Avg,
            size: 2,
        };
        let layer = |name: &str, op, output_values, lif| LayerDef {
            name: name.to_owned(),
            op,
            output_values,
            lif,
        };
        let layers = vec![
            layer(
                "conv1",
                conv(config.in_channels, CONV1_CHANNELS),
                CONV1_CHANNELS * c1,
                lif,
            ),
            layer("pool1", pool, CONV1_CHANNELS * p1, None),
            layer(
                "conv2",
                conv(CONV1_CHANNELS, CONV2_CHANNELS),
                CONV2_CHANNELS * c2,
                lif,
            ),
            layer("pool2", pool, flat, None),
            layer("flatten", Op::Flatten, flat, None),
            layer(
                "fc1",
                Op::Linear {
                    in_features: flat,
                    out_features: HIDDEN,
                },
                HIDDEN,
                lif,
            ),
            layer(
                "fc2",
                Op::Linear {
                    in_features: HIDDEN,
                    out_features: config.classes,
                },
                config.classes,
                lif,
            ),
        ];
        Self {
            config,
            network: None,
            layers,
        }
    }

    /// The network `spec` on `config`'s input (`in_channels × width ×
    /// height`) and classes, each LIF with `config.lif` unless its block
    /// gives its own `tau`, `vth`, `a` (the spike function is always
    /// `config.lif`'s). The block list is checked as when an experiment
    /// loads ([`NetworkSpec::resolve`]).
    pub fn from_spec(config: NetConfig, spec: &NetworkSpec) -> Result<Self, ArchitectureError> {
        let narrow = |what: &'static str, value: i64| {
            u32::try_from(value).map_err(|_| ArchitectureError::Input { what, value })
        };
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
        let network = spec.resolve(input, classes, base)?;
        let layers = network
            .layers
            .iter()
            .map(|layer| {
                let too_large = || ArchitectureError::TooLarge {
                    name: layer.name.clone(),
                };
                let int = |v: u64| i64::try_from(v).map_err(|_| too_large());
                let op = match layer.op {
                    LayerOp::Conv {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                    } => Op::Conv {
                        in_channels: int(in_channels)?,
                        out_channels: int(out_channels)?,
                        kernel: int(kernel)?,
                        stride: int(stride)?,
                        padding: int(padding)?,
                    },
                    LayerOp::Pool { kind, size } => Op::Pool {
                        kind,
                        size: int(size)?,
                    },
                    LayerOp::Flatten => Op::Flatten,
                    LayerOp::Linear {
                        in_features,
                        out_features,
                    } => Op::Linear {
                        in_features: int(in_features)?,
                        out_features: int(out_features)?,
                    },
                };
                Ok(LayerDef {
                    name: layer.name.clone(),
                    op,
                    output_values: int(layer.output.numel())?,
                    lif: layer.lif.map(|s| LifParams {
                        tau: s.tau,
                        vth: s.vth,
                        a: s.a,
                        spike: config.lif.spike,
                    }),
                })
            })
            .collect::<Result<Vec<_>, ArchitectureError>>()?;
        Ok(Self {
            config,
            network: (!spec.is_reference()).then(|| spec.clone()),
            layers,
        })
    }

    /// The experiment's network: `spec` when it has one (`[network]`), else
    /// the reference, on `config`'s input.
    pub fn of(config: NetConfig, spec: Option<&NetworkSpec>) -> Result<Self, ArchitectureError> {
        match spec {
            Some(spec) => Self::from_spec(config, spec),
            None => Ok(Self::reference(config)),
        }
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

//! Shapes through the network: [`NetworkSpec::resolve`] walks the blocks from
//! the input, checks each one fits, and gives a [`Network`] whose [`Layer`]s
//! carry everything a model builder needs (operation, shapes, parameter names
//! and dimensions, neuron settings), with the parameter and FLOP counts.

use serde::{Deserialize, Serialize};

use crate::experiment::sections::SimulationConfig;

use super::block::{Block, BlockKind};
use super::error::{NetworkError, Problem};
use super::limits;
use super::pool::PoolKind;
use super::spec::NetworkSpec;

/// The input of the network for one time step: `[channels, x, y]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputShape {
    /// Input channels (2: the polarities).
    pub channels: u32,
    /// Size along x (the first spatial axis).
    pub x: u32,
    /// Size along y.
    pub y: u32,
}

/// DVS128's side in pixels.
pub const DVS128_SIDE: u32 = 128;

impl InputShape {
    /// DVS128 frames down-scaled by `downscale` (`data.downscale`):
    /// 2 × `128 / k` × `128 / k`, as the worker computes it (a factor of 0 is
    /// taken as 1).
    pub fn dvs128(downscale: u32) -> Self {
        let side = DVS128_SIDE / downscale.max(1);
        Self {
            channels: 2,
            x: side,
            y: side,
        }
    }
}

/// The shape of one sample at one time step between blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shape {
    /// An image: `[channels, x, y]`.
    Image {
        /// Channels.
        channels: u64,
        /// Size along x.
        x: u64,
        /// Size along y.
        y: u64,
    },
    /// A vector of features (after flatten).
    Flat {
        /// Features.
        features: u64,
    },
}

impl Shape {
    /// Values per sample and time step.
    pub fn numel(&self) -> u64 {
        match *self {
            Shape::Image { channels, x, y } => channels.saturating_mul(x).saturating_mul(y),
            Shape::Flat { features } => features,
        }
    }
}

impl From<InputShape> for Shape {
    fn from(i: InputShape) -> Self {
        Shape::Image {
            channels: u64::from(i.channels),
            x: u64::from(i.x),
            y: u64::from(i.y),
        }
    }
}

/// A LIF layer's neuron parameters (`[simulation]`'s, or the block's own).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifSettings {
    /// Membrane decay factor τ.
    pub tau: f64,
    /// Firing threshold.
    pub vth: f64,
    /// Width of the rectangular surrogate gradient.
    pub a: f64,
}

impl From<&SimulationConfig> for LifSettings {
    fn from(s: &SimulationConfig) -> Self {
        Self {
            tau: s.tau,
            vth: s.vth,
            a: s.a,
        }
    }
}

/// A block with its sizes resolved: what a model builder makes its layer
/// from. The sizes are `u64` as resolved; [`LayerOp::try_map`] gives them in
/// another integer type (the worker's `i64`, as libtorch takes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerOp<N = u64> {
    /// `Conv2d(in_channels, out_channels, kernel, stride, padding)`.
    Conv {
        /// Input channels.
        in_channels: N,
        /// Output channels.
        out_channels: N,
        /// Kernel side.
        kernel: N,
        /// Stride.
        stride: N,
        /// Zero padding on every side.
        padding: N,
    },
    /// `MaxPool2d(size)` / `AvgPool2d(size)`.
    Pool {
        /// Max or average.
        kind: PoolKind,
        /// Window side and stride.
        size: N,
    },
    /// Channel-major flatten.
    Flatten,
    /// `Linear(in_features, out_features)`.
    Linear {
        /// Input features.
        in_features: N,
        /// Output features.
        out_features: N,
    },
}

impl<N: Copy> LayerOp<N> {
    /// Whether the layer has a weight and a bias (conv and linear).
    pub fn has_parameters(&self) -> bool {
        matches!(self, LayerOp::Conv { .. } | LayerOp::Linear { .. })
    }

    /// The weight's dimensions in PyTorch's order: `[out, in, k, k]` for a
    /// conv, `[out, in]` for a linear; `None` for layers without parameters.
    pub fn weight_dims(&self) -> Option<Vec<N>> {
        match *self {
            LayerOp::Conv {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some(vec![out_channels, in_channels, kernel, kernel]),
            LayerOp::Linear {
                in_features,
                out_features,
            } => Some(vec![out_features, in_features]),
            LayerOp::Pool { .. } | LayerOp::Flatten => None,
        }
    }

    /// The same operation with every size converted by `f`, or `f`'s first
    /// error.
    pub fn try_map<M, E>(self, f: impl Fn(N) -> Result<M, E>) -> Result<LayerOp<M>, E> {
        Ok(match self {
            LayerOp::Conv {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
            } => LayerOp::Conv {
                in_channels: f(in_channels)?,
                out_channels: f(out_channels)?,
                kernel: f(kernel)?,
                stride: f(stride)?,
                padding: f(padding)?,
            },
            LayerOp::Pool { kind, size } => LayerOp::Pool {
                kind,
                size: f(size)?,
            },
            LayerOp::Flatten => LayerOp::Flatten,
            LayerOp::Linear {
                in_features,
                out_features,
            } => LayerOp::Linear {
                in_features: f(in_features)?,
                out_features: f(out_features)?,
            },
        })
    }
}

/// One block of a resolved network.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Index in `network.blocks`.
    pub index: usize,
    /// The parameter and LIF prefix: `blocks.<index>`, or for the reference
    /// network `conv1`, `conv2`, `fc1`, `fc2` (`pool1`, `pool2`, `flatten`
    /// for its blocks without parameters).
    pub name: String,
    /// The operation with its sizes.
    pub op: LayerOp,
    /// Shape of one sample at one time step before the block.
    pub input: Shape,
    /// ... and after it.
    pub output: Shape,
    /// The LIF after the operation, if any, with its settings resolved.
    pub lif: Option<LifSettings>,
}

impl Layer {
    /// `<name>.weight` for conv and linear layers.
    pub fn weight_name(&self) -> Option<String> {
        self.has_parameters()
            .then(|| format!("{}.weight", self.name))
    }

    /// `<name>.bias` for conv and linear layers.
    pub fn bias_name(&self) -> Option<String> {
        self.has_parameters().then(|| format!("{}.bias", self.name))
    }

    /// Whether the layer has a weight and a bias.
    pub fn has_parameters(&self) -> bool {
        self.op.has_parameters()
    }

    /// The weight's dimensions in PyTorch's order: `[out, in, k, k]` for a
    /// conv, `[out, in]` for a linear.
    pub fn weight_dims(&self) -> Option<Vec<u64>> {
        self.op.weight_dims()
    }

    /// The bias's dimensions: `[out]`.
    pub fn bias_dims(&self) -> Option<Vec<u64>> {
        self.weight_dims().map(|d| vec![d[0]])
    }

    /// Weights plus biases.
    pub fn param_count(&self) -> u64 {
        match self.weight_dims() {
            Some(d) => d.iter().fold(1u64, |n, &k| n.saturating_mul(k)) + d[0],
            None => 0,
        }
    }

    /// Multiply-accumulates of one sample at one time step (conv: each
    /// output value × `in_channels · k²`; linear: `in · out`; none for pool
    /// and flatten).
    pub fn macs_per_step(&self) -> u64 {
        match self.op {
            LayerOp::Conv {
                in_channels,
                kernel,
                ..
            } => self
                .output
                .numel()
                .saturating_mul(in_channels.saturating_mul(kernel * kernel)),
            LayerOp::Linear {
                in_features,
                out_features,
            } => in_features.saturating_mul(out_features),
            _ => 0,
        }
    }
}

/// A checked network on a given input: its layers in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// The block list it was made from.
    pub spec: NetworkSpec,
    /// The input it was resolved for.
    pub input: InputShape,
    /// The class count (the last layer's width).
    pub classes: u32,
    /// One per block, in order.
    pub layers: Vec<Layer>,
}

impl Network {
    /// `(input, output)` shape of every block, in order.
    pub fn shapes(&self) -> Vec<(Shape, Shape)> {
        self.layers.iter().map(|l| (l.input, l.output)).collect()
    }

    /// The shape the network outputs per time step (`[classes]`).
    pub fn output(&self) -> Shape {
        self.layers
            .last()
            .map(|l| l.output)
            .unwrap_or_else(|| self.input.into())
    }

    /// The features entering the first linear layer (45000 for the reference
    /// network at 128×128).
    pub fn flat_features(&self) -> Option<u64> {
        self.layers.iter().find_map(|l| match l.op {
            LayerOp::Flatten => Some(l.output.numel()),
            _ => None,
        })
    }

    /// Parameter names in PyTorch state-dict order ([`NetworkSpec::param_names`]).
    pub fn param_names(&self) -> Vec<String> {
        self.spec.param_names()
    }

    /// Parameters of every layer.
    pub fn param_count(&self) -> u64 {
        self.layers
            .iter()
            .fold(0u64, |n, l| n.saturating_add(l.param_count()))
    }

    /// Floating-point operations of one sample's forward pass over `steps`
    /// time steps: 2 × the multiply-accumulates of every conv and linear per
    /// step × `steps`. Biases, LIF updates, pooling, the backward pass and
    /// the spikes' sparsity are not counted.
    pub fn flops_per_sample(&self, steps: u32) -> u64 {
        self.layers
            .iter()
            .fold(0u64, |n, l| n.saturating_add(l.macs_per_step()))
            .saturating_mul(2)
            .saturating_mul(u64::from(steps))
    }

    /// The layers followed by a LIF, in order (their names are what firing
    /// rates are reported under: `blocks.0`, or `conv1` ... for the reference).
    pub fn lif_layers(&self) -> Vec<&Layer> {
        self.layers.iter().filter(|l| l.lif.is_some()).collect()
    }

    /// The compact name ([`NetworkSpec::compact_name`]).
    pub fn compact_name(&self) -> String {
        self.spec.compact_name()
    }
}

/// `(input + 2·padding − kernel) / stride + 1` along one axis, or the
/// error when the kernel does not fit.
fn conv_out(size: u64, kernel: u64, stride: u64, padding: u64) -> Option<u64> {
    let padded = size + 2 * padding;
    (padded >= kernel).then(|| (padded - kernel) / stride + 1)
}

impl NetworkSpec {
    /// Walks the blocks from `input`, checking every block (its own values,
    /// then that it fits the shape before it) and the list (a flatten before
    /// the first linear, a linear of width `classes` last, at most
    /// [`limits::PARAMETERS`] parameters). The first problem found is the
    /// error, naming its block. `lif` gives the neuron settings of blocks
    /// without their own (`[simulation]`'s).
    pub fn resolve(
        &self,
        input: InputShape,
        classes: u32,
        lif: LifSettings,
    ) -> Result<Network, NetworkError> {
        check_length(&self.blocks)?;
        let mut shape = Shape::from(input);
        let mut layers = Vec::with_capacity(self.blocks.len());
        for (index, block) in self.blocks.iter().enumerate() {
            block.check(index)?;
            let (op, output) =
                layer_op(block.kind, shape).map_err(|p| NetworkError::at(index, p))?;
            layers.push(Layer {
                index,
                name: self.block_name(index),
                op,
                input: shape,
                output,
                lif: block_lif(block, lif),
            });
            shape = output;
        }
        check_last(&self.blocks, shape, classes)?;
        let network = Network {
            spec: self.clone(),
            input,
            classes,
            layers,
        };
        check_parameters(&network)?;
        Ok(network)
    }
}

/// The list has blocks, at most [`limits::BLOCKS`].
fn check_length(blocks: &[Block]) -> Result<(), NetworkError> {
    if blocks.is_empty() {
        return Err(NetworkError::whole(Problem::Empty));
    }
    if blocks.len() > limits::BLOCKS {
        return Err(NetworkError::whole(Problem::TooManyBlocks {
            count: blocks.len(),
            limit: limits::BLOCKS,
        }));
    }
    Ok(())
}

/// The operation of a block of `kind` on `input`, with its output shape, or
/// why the block does not fit its input.
fn layer_op(kind: BlockKind, input: Shape) -> Result<(LayerOp, Shape), Problem> {
    match (kind, input) {
        (BlockKind::Conv { .. } | BlockKind::Pool { .. }, Shape::Flat { .. }) => {
            Err(Problem::SpatialAfterFlatten { kind: kind.name() })
        }
        (
            BlockKind::Conv {
                channels,
                kernel,
                stride,
                padding,
            },
            Shape::Image {
                channels: c_in,
                x,
                y,
            },
        ) => conv_op(c_in, (x, y), channels, kernel, stride, padding),
        (BlockKind::Pool { kind, size }, Shape::Image { channels, x, y }) => {
            let n = u64::from(size);
            if x < n || y < n {
                return Err(Problem::PoolTooLarge { kind, size, x, y });
            }
            let output = Shape::Image {
                channels,
                x: x / n,
                y: y / n,
            };
            Ok((LayerOp::Pool { kind, size: n }, output))
        }
        (BlockKind::Flatten, Shape::Flat { .. }) => Err(Problem::SecondFlatten),
        (BlockKind::Flatten, image) => Ok((
            LayerOp::Flatten,
            Shape::Flat {
                features: image.numel(),
            },
        )),
        (BlockKind::Linear { .. }, Shape::Image { .. }) => Err(Problem::LinearBeforeFlatten),
        (BlockKind::Linear { features }, Shape::Flat { features: f_in }) => {
            let out = u64::from(features);
            let op = LayerOp::Linear {
                in_features: f_in,
                out_features: out,
            };
            Ok((op, Shape::Flat { features: out }))
        }
    }
}

/// A conv block of `channels` outputs on a `c_in`-channel image of `(x, y)`,
/// or [`Problem::KernelTooLarge`].
fn conv_op(
    c_in: u64,
    (x, y): (u64, u64),
    channels: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
) -> Result<(LayerOp, Shape), Problem> {
    let (k, s, p) = (u64::from(kernel), u64::from(stride), u64::from(padding));
    let (Some(ox), Some(oy)) = (conv_out(x, k, s, p), conv_out(y, k, s, p)) else {
        return Err(Problem::KernelTooLarge {
            kernel,
            x: x + 2 * p,
            y: y + 2 * p,
        });
    };
    let out = u64::from(channels);
    let op = LayerOp::Conv {
        in_channels: c_in,
        out_channels: out,
        kernel: k,
        stride: s,
        padding: p,
    };
    let output = Shape::Image {
        channels: out,
        x: ox,
        y: oy,
    };
    Ok((op, output))
}

/// The settings of the LIF after `block`, if any: its own `tau`, `vth`, `a`
/// where given, `base`'s otherwise.
fn block_lif(block: &Block, base: LifSettings) -> Option<LifSettings> {
    block.has_lif().then(|| LifSettings {
        tau: block.lif.tau.unwrap_or(base.tau),
        vth: block.lif.vth.unwrap_or(base.vth),
        a: block.lif.a.unwrap_or(base.a),
    })
}

/// The list ends with a flat output from a linear block of width `classes`
/// (`shape`: the last block's output).
fn check_last(blocks: &[Block], shape: Shape, classes: u32) -> Result<(), NetworkError> {
    let Some(block) = blocks.last() else {
        return Err(NetworkError::whole(Problem::Empty));
    };
    let last = blocks.len() - 1;
    match (block.kind, shape) {
        (_, Shape::Image { .. }) => Err(NetworkError::at(last, Problem::NoFlatten)),
        (BlockKind::Linear { features }, _) if features != classes => Err(NetworkError::at(
            last,
            Problem::WrongClassCount {
                width: u64::from(features),
                classes,
            },
        )),
        (BlockKind::Linear { .. }, _) => Ok(()),
        _ => Err(NetworkError::at(last, Problem::LastNotLinear { classes })),
    }
}

/// The network has at most [`limits::PARAMETERS`] parameters.
fn check_parameters(network: &Network) -> Result<(), NetworkError> {
    let count = network.param_count();
    if count > limits::PARAMETERS {
        return Err(NetworkError::whole(Problem::TooManyParameters {
            count,
            limit: limits::PARAMETERS,
        }));
    }
    Ok(())
}

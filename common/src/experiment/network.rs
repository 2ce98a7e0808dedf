//! `[network]`: the spiking CNN a job trains, as an ordered list of blocks.
//!
//! ```toml
//! [network]
//! blocks = [
//!   { conv = 8, kernel = 5, stride = 2 },     # stride 1, padding 0 unless given
//!   { pool = "max", size = 2 },               # or "avg"; stride = size
//!   { conv = 16, kernel = 3, padding = 1, tau = 0.5 },
//!   { pool = "avg", size = 2 },
//!   { flatten = true },                       # channel-major
//!   { linear = 64 },
//!   { linear = 19, lif = true },              # the class count
//! ]
//! ```
//!
//! A LIF follows every conv and linear block; `lif = false` turns it off for
//! that block, and `tau`, `vth`, `a` replace `[simulation]`'s for it (same
//! ranges). The network's output is the spike rate of its last layer over the
//! time steps. Unknown keys, and keys of another kind of block (`kernel` on a
//! pool), are refused naming the block (`network.blocks[2]`).
//!
//! **Shapes** are inferred from the input, 2 polarities × `128 / k` × `128 / k`
//! with `k = data.downscale` ([`InputShape::dvs128`]), and checked when the
//! experiment loads ([`NetworkSpec::resolve`]): a kernel or pool larger than
//! its input, a conv or pool after flatten, a linear before flatten, a list
//! ending without flatten, a last layer that is not a linear of the class
//! count, zero sizes and sizes over the [`limits`] are refused naming the
//! block and the reason ([`NetworkError`]).
//!
//! **The default.** Without `[network]` the network is the reference
//! SLANIMALSNet, [`NetworkSpec::reference`]: `conv 20 k3 → LIF → avg-pool 2 →
//! conv 50 k3 → LIF → avg-pool 2 → flatten → linear 200 → LIF → linear
//! classes → LIF`, with the reference's parameter names (`conv1.weight`,
//! `conv1.bias`, `conv2.*`, `fc1.*`, `fc2.*`). A written list names its
//! parameters `blocks.<i>.weight` / `blocks.<i>.bias` (i: the block's index,
//! the names PyTorch gives an `nn.ModuleList` called `blocks`), even when it
//! lists the reference's blocks. Job ids hash the block list only when
//! `[network]` is written, so experiments without it keep their ids.
//!
//! **Compact name** ([`NetworkSpec::compact_name`]): the blocks' tokens joined
//! by `-`, flatten left out (its place is forced: after the last conv or pool,
//! before the first linear):
//!
//! - conv: `c<C>k<K>`, then `s<S>` when the stride is not 1 and `p<P>` when
//!   the padding is not 0 (`c16k3p1`);
//! - pool: `p<N>a` (average) or `p<N>m` (max);
//! - linear: `f<N>`;
//! - then, on conv and linear tokens: `n` when `lif = false`, and `t<τ>`,
//!   `v<vth>`, `a<a>` for the block's own neuron values (`f64` as Rust
//!   prints it: `c8k3v0.2`, `f19n`).
//!
//! The reference is `c20k3-p2a-c50k3-p2a-f200-f19` (19 classes).
//!
//! **Counts** ([`Network`]): parameters are weights plus biases of the conv and
//! linear layers; FLOPs per sample are 2 × the multiply-accumulates of the conv
//! and linear layers per time step × the steps (no biases, LIF updates,
//! pooling, backward pass, nor the savings of sparse spikes).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod block;
mod error;
mod shape;

pub use block::{Block, BlockKind, LifOverride, PoolKind};
pub use error::{NetworkError, Problem};
pub use shape::{DVS128_SIDE, InputShape, Layer, LayerOp, LifSettings, Network, Shape};

/// Sanity limits of a network: far above any network that trains on an event
/// camera's frames, low enough that a typo cannot ask a worker for terabytes.
pub mod limits {
    /// Blocks in the list.
    pub const BLOCKS: usize = 32;
    /// Output channels of a conv block.
    pub const CHANNELS: u32 = 4096;
    /// Output features of a linear block.
    pub const FEATURES: u32 = 65_536;
    /// Kernel side (and stride) of a conv block.
    pub const KERNEL: u32 = 31;
    /// Window side of a pool block.
    pub const POOL: u32 = 128;
    /// Parameters of the whole network.
    pub const PARAMETERS: u64 = 100_000_000;
}

/// Which names the parameters and LIF layers get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Naming {
    /// `blocks.<i>`: a network written in `[network]`.
    #[default]
    Blocks,
    /// `conv1`, `conv2`, `fc1`, `fc2`: the default network (no `[network]`),
    /// whose names the reference's weight files and checkpoints use.
    Reference,
}

/// The network of an experiment: its blocks in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// The blocks, in order.
    pub blocks: Vec<Block>,
    /// Which names its parameters get (never written to the file: a written
    /// list always has `blocks.<i>` names).
    pub naming: Naming,
}

impl NetworkSpec {
    /// A written list (its parameters named `blocks.<i>`).
    pub fn new(blocks: Vec<Block>) -> Self {
        Self {
            blocks,
            naming: Naming::Blocks,
        }
    }

    /// The reference SLANIMALSNet for `classes` classes, with the reference's
    /// names: the network of an experiment without `[network]`.
    pub fn reference(classes: u32) -> Self {
        Self {
            blocks: vec![
                Block::conv(20, 3),
                Block::pool(PoolKind::Avg, 2),
                Block::conv(50, 3),
                Block::pool(PoolKind::Avg, 2),
                Block::flatten(),
                Block::linear(200),
                Block::linear(classes),
            ],
            naming: Naming::Reference,
        }
    }

    /// Whether this is the default network with the reference's names.
    pub fn is_reference(&self) -> bool {
        self.naming == Naming::Reference
    }

    /// The name of block `index`: `blocks.<index>`, or for the reference
    /// naming `conv<n>` / `fc<n>` (n counting that kind from 1), `pool<n>`,
    /// `flatten`.
    pub fn block_name(&self, index: usize) -> String {
        if self.naming == Naming::Blocks {
            return format!("blocks.{index}");
        }
        let Some(block) = self.blocks.get(index) else {
            return format!("blocks.{index}");
        };
        let nth = self.blocks[..=index]
            .iter()
            .filter(|b| b.kind.name() == block.kind.name())
            .count();
        match block.kind {
            BlockKind::Conv { .. } => format!("conv{nth}"),
            BlockKind::Pool { .. } => format!("pool{nth}"),
            BlockKind::Flatten => "flatten".to_owned(),
            BlockKind::Linear { .. } => format!("fc{nth}"),
        }
    }

    /// Parameter names in PyTorch state-dict order: each conv and linear
    /// block's `<name>.weight` then `<name>.bias`, in block order
    /// (`conv1.weight`, `conv1.bias`, ... `fc2.bias` for the reference).
    pub fn param_names(&self) -> Vec<String> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind.has_parameters())
            .flat_map(|(i, _)| {
                let name = self.block_name(i);
                [format!("{name}.weight"), format!("{name}.bias")]
            })
            .collect()
    }

    /// Names of the blocks followed by a LIF, in order (what firing rates are
    /// reported under).
    pub fn lif_layer_names(&self) -> Vec<String> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.has_lif())
            .map(|(i, _)| self.block_name(i))
            .collect()
    }

    /// The compact name (grammar in the [module docs](self)), e.g.
    /// `c20k3-p2a-c50k3-p2a-f200-f19`.
    pub fn compact_name(&self) -> String {
        self.blocks
            .iter()
            .map(Block::compact_token)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Reads a block list from its TOML value (an array of tables); the error
    /// names the block.
    pub fn from_blocks_value(value: &toml::Value) -> Result<Self, NetworkError> {
        let toml::Value::Array(list) = value else {
            return Err(NetworkError::whole(Problem::BadKey(
                "blocks must be a list of block tables".to_owned(),
            )));
        };
        let blocks = list
            .iter()
            .enumerate()
            .map(|(i, v)| block::parse_block(i, v.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(blocks))
    }

    /// The written form of the blocks (what `[network] blocks = ...` holds).
    pub fn blocks_value(&self) -> toml::Value {
        let list = self
            .blocks
            .iter()
            .map(|b| toml::Value::try_from(block::RawBlock::from(b)))
            .collect::<Result<Vec<_>, _>>()
            // A table of integers, strings, booleans and floats always converts.
            .unwrap_or_default();
        toml::Value::Array(list)
    }
}

/// `[network]` as written: `blocks` only.
#[derive(Serialize)]
struct WrittenSpec {
    blocks: Vec<block::RawBlock>,
}

/// `[network]` as read: the blocks kept as values, so that each one's error
/// names its index.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadSpec {
    blocks: Vec<toml::Value>,
}

impl Serialize for NetworkSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WrittenSpec {
            blocks: self.blocks.iter().map(block::RawBlock::from).collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NetworkSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let read = ReadSpec::deserialize(deserializer)?;
        let blocks = read
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, v)| block::parse_block(i, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(D::Error::custom)?;
        Ok(Self::new(blocks))
    }
}

/// The compact name of a written block list (a `[sweep]` value of
/// `network.blocks`), or `None` when it is not one.
pub fn compact_name_of(value: &toml::Value) -> Option<String> {
    NetworkSpec::from_blocks_value(value)
        .ok()
        .map(|s| s.compact_name())
}

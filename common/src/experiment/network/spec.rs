//! The network of an experiment as written: its blocks in order
//! ([`NetworkSpec`]), the names its parameters get ([`Naming`]), the reference
//! SLANIMALSNet, the compact name, and how `[network]` is read and written.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::block::{self, Block};
use super::error::{NetworkError, Problem};
use super::pool::PoolKind;

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
        block.kind.reference_name(nth)
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

    /// The compact name (grammar in the [module docs](super)), e.g.
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
        Self::from_blocks_value(&toml::Value::Array(read.blocks)).map_err(D::Error::custom)
    }
}

/// The compact name of a written block list (a `[sweep]` value of
/// `network.blocks`), or `None` when it is not one.
pub fn compact_name_of(value: &toml::Value) -> Option<String> {
    NetworkSpec::from_blocks_value(value)
        .ok()
        .map(|s| s.compact_name())
}

//! One entry of `network.blocks`: its typed form ([`Block`]), how it is read
//! from and written to a TOML table, the checks that need no shapes, and its
//! token of the compact name.

use serde::{Deserialize, Serialize};

use super::error::{NetworkError, Problem};
use super::limits;
use super::pool::PoolKind;

/// What a block computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// `{ conv = C, kernel = K, stride = S, padding = P }`: a 2-D convolution
    /// to `C` channels with a `K`×`K` kernel and a bias.
    Conv {
        /// Output channels.
        channels: u32,
        /// Kernel side.
        kernel: u32,
        /// Stride (1 unless given).
        stride: u32,
        /// Zero padding on every side (0 unless given).
        padding: u32,
    },
    /// `{ pool = "max" | "avg", size = N }`: pooling over `N`×`N` windows with
    /// stride `N`.
    Pool {
        /// Max or average.
        kind: PoolKind,
        /// Window side (and stride).
        size: u32,
    },
    /// `{ flatten = true }`: image to vector, channel-major (PyTorch's
    /// `reshape(batch, -1)` of `[C, X, Y]`).
    Flatten,
    /// `{ linear = N }`: a fully connected layer to `N` features with a bias.
    Linear {
        /// Output features.
        features: u32,
    },
}

impl BlockKind {
    /// `conv`, `pool`, `flatten` or `linear`.
    pub fn name(&self) -> &'static str {
        match self {
            BlockKind::Conv { .. } => "conv",
            BlockKind::Pool { .. } => "pool",
            BlockKind::Flatten => "flatten",
            BlockKind::Linear { .. } => "linear",
        }
    }

    /// Whether the block has a weight and a bias (conv and linear), and so a
    /// LIF after it unless turned off.
    pub fn has_parameters(&self) -> bool {
        matches!(self, BlockKind::Conv { .. } | BlockKind::Linear { .. })
    }

    /// The block's name in the reference naming, for the `nth` block of its
    /// kind (from 1): `conv<n>`, `pool<n>`, `flatten`, `fc<n>`.
    pub fn reference_name(&self, nth: usize) -> String {
        match self {
            BlockKind::Flatten => "flatten".to_owned(),
            BlockKind::Linear { .. } => format!("fc{nth}"),
            BlockKind::Conv { .. } | BlockKind::Pool { .. } => format!("{}{nth}", self.name()),
        }
    }
}

/// The neuron settings of a conv or linear block: a LIF follows the layer
/// unless `lif = false`; `tau`, `vth`, `a` replace `[simulation]`'s for this
/// block when given.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LifOverride {
    /// `lif = false` turns the LIF off: the layer's output goes on as it is.
    pub off: bool,
    /// Membrane decay factor, in [0, 1].
    pub tau: Option<f64>,
    /// Firing threshold, finite.
    pub vth: Option<f64>,
    /// Surrogate gradient width, > 0.
    pub a: Option<f64>,
}

/// One block of the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    /// What it computes.
    pub kind: BlockKind,
    /// Its neurons (always the default for pool and flatten blocks).
    pub lif: LifOverride,
}

impl Block {
    /// A conv block with stride 1, no padding and a default LIF.
    pub fn conv(channels: u32, kernel: u32) -> Self {
        Self::plain(BlockKind::Conv {
            channels,
            kernel,
            stride: 1,
            padding: 0,
        })
    }

    /// A pooling block.
    pub fn pool(kind: PoolKind, size: u32) -> Self {
        Self::plain(BlockKind::Pool { kind, size })
    }

    /// The flatten block.
    pub fn flatten() -> Self {
        Self::plain(BlockKind::Flatten)
    }

    /// A linear block with a default LIF.
    pub fn linear(features: u32) -> Self {
        Self::plain(BlockKind::Linear { features })
    }

    fn plain(kind: BlockKind) -> Self {
        Self {
            kind,
            lif: LifOverride::default(),
        }
    }

    /// Whether a LIF follows this block (conv and linear blocks without
    /// `lif = false`).
    pub fn has_lif(&self) -> bool {
        self.kind.has_parameters() && !self.lif.off
    }

    /// The block's token of the compact name (`NetworkSpec::compact_name`);
    /// empty for flatten.
    pub fn compact_token(&self) -> String {
        let mut s = match self.kind {
            BlockKind::Conv {
                channels,
                kernel,
                stride,
                padding,
            } => {
                let mut s = format!("c{channels}k{kernel}");
                if stride != 1 {
                    s.push_str(&format!("s{stride}"));
                }
                if padding != 0 {
                    s.push_str(&format!("p{padding}"));
                }
                s
            }
            BlockKind::Pool { kind, size } => {
                let k = match kind {
                    PoolKind::Max => 'm',
                    PoolKind::Avg => 'a',
                };
                format!("p{size}{k}")
            }
            BlockKind::Flatten => return String::new(),
            BlockKind::Linear { features } => format!("f{features}"),
        };
        if self.lif.off {
            s.push('n');
        }
        for (tag, value) in [('t', self.lif.tau), ('v', self.lif.vth), ('a', self.lif.a)] {
            if let Some(v) = value {
                s.push_str(&format!("{tag}{v}"));
            }
        }
        s
    }

    /// Checks that need no shapes: zero sizes, limits, padding, the LIF
    /// overrides.
    pub fn check(&self, index: usize) -> Result<(), NetworkError> {
        let err = |p| Err(NetworkError::at(index, p));
        let positive = |key: &'static str, v: u32, limit: u32| {
            if v == 0 {
                return Err(NetworkError::at(index, Problem::Zero { key }));
            }
            if v > limit {
                return Err(NetworkError::at(
                    index,
                    Problem::OverLimit {
                        key,
                        value: u64::from(v),
                        limit: u64::from(limit),
                    },
                ));
            }
            Ok(())
        };
        match self.kind {
            BlockKind::Conv {
                channels,
                kernel,
                stride,
                padding,
            } => {
                positive("conv", channels, limits::CHANNELS)?;
                positive("kernel", kernel, limits::KERNEL)?;
                positive("stride", stride, limits::KERNEL)?;
                if padding >= kernel {
                    return err(Problem::PaddingTooLarge { padding, kernel });
                }
            }
            BlockKind::Pool { size, .. } => positive("size", size, limits::POOL)?,
            BlockKind::Flatten => {}
            BlockKind::Linear { features } => positive("linear", features, limits::FEATURES)?,
        }
        let l = &self.lif;
        for (key, value) in [("tau", l.tau), ("vth", l.vth), ("a", l.a)] {
            let Some(value) = value else { continue };
            if l.off {
                return err(Problem::OverrideWithoutLif { key });
            }
            let reason = match key {
                "tau" if !(value.is_finite() && (0.0..=1.0).contains(&value)) => {
                    Some("the decay must be in [0, 1]")
                }
                "vth" if !value.is_finite() => Some("the threshold must be a finite number"),
                "a" if !(value.is_finite() && value > 0.0) => {
                    Some("the surrogate width must be > 0")
                }
                _ => None,
            };
            if let Some(reason) = reason {
                return err(Problem::BadNeuron { key, value, reason });
            }
        }
        Ok(())
    }
}

/// A block as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conv: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stride: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    padding: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<PoolKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flatten: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    linear: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lif: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tau: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vth: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<f64>,
}

const CONV_KEYS: &str = "conv, kernel, stride, padding, lif, tau, vth, a";
const POOL_KEYS: &str = "pool, size";
const FLATTEN_KEYS: &str = "flatten";
const LINEAR_KEYS: &str = "linear, lif, tau, vth, a";

impl RawBlock {
    /// The keys given, by name, in the order written above.
    fn given(&self) -> Vec<&'static str> {
        let keys = [
            ("conv", self.conv.is_some()),
            ("kernel", self.kernel.is_some()),
            ("stride", self.stride.is_some()),
            ("padding", self.padding.is_some()),
            ("pool", self.pool.is_some()),
            ("size", self.size.is_some()),
            ("flatten", self.flatten.is_some()),
            ("linear", self.linear.is_some()),
            ("lif", self.lif.is_some()),
            ("tau", self.tau.is_some()),
            ("vth", self.vth.is_some()),
            ("a", self.a.is_some()),
        ];
        keys.iter().filter(|(_, g)| *g).map(|(k, _)| *k).collect()
    }

    /// The typed block (no range checks: [`Block::check`]).
    pub(super) fn into_block(self, index: usize) -> Result<Block, NetworkError> {
        let err = |p| NetworkError::at(index, p);
        let given = self.given();
        let kinds: Vec<&str> = given
            .iter()
            .copied()
            .filter(|k| ["conv", "pool", "flatten", "linear"].contains(k))
            .collect();
        let (kind_name, allowed) = match kinds.as_slice() {
            [] => return Err(err(Problem::NoKind)),
            ["conv"] => ("conv", CONV_KEYS),
            ["pool"] => ("pool", POOL_KEYS),
            ["flatten"] => ("flatten", FLATTEN_KEYS),
            ["linear"] => ("linear", LINEAR_KEYS),
            several => return Err(err(Problem::SeveralKinds(several.join(", ")))),
        };
        if let Some(key) = given
            .iter()
            .find(|k| !allowed.split(", ").any(|a| a == **k))
        {
            return Err(err(Problem::KeyNotForKind {
                kind: kind_name,
                key,
                allowed,
            }));
        }
        let missing = |key| {
            err(Problem::Missing {
                kind: kind_name,
                key,
            })
        };
        let kind = match (self.conv, self.pool, self.flatten, self.linear) {
            (Some(channels), ..) => BlockKind::Conv {
                channels,
                kernel: self.kernel.ok_or_else(|| missing("kernel"))?,
                stride: self.stride.unwrap_or(1),
                padding: self.padding.unwrap_or(0),
            },
            (_, Some(kind), ..) => BlockKind::Pool {
                kind,
                size: self.size.ok_or_else(|| missing("size"))?,
            },
            (_, _, Some(true), _) => BlockKind::Flatten,
            (_, _, Some(false), _) => return Err(err(Problem::FlattenFalse)),
            (_, _, _, Some(features)) => BlockKind::Linear { features },
            (None, None, None, None) => return Err(err(Problem::NoKind)),
        };
        Ok(Block {
            kind,
            lif: LifOverride {
                off: self.lif == Some(false),
                tau: self.tau,
                vth: self.vth,
                a: self.a,
            },
        })
    }
}

impl From<&Block> for RawBlock {
    /// The written form: defaults (stride 1, padding 0, `lif = true`) left out.
    fn from(b: &Block) -> Self {
        let mut raw = RawBlock {
            lif: b.lif.off.then_some(false),
            tau: b.lif.tau,
            vth: b.lif.vth,
            a: b.lif.a,
            ..RawBlock::default()
        };
        match b.kind {
            BlockKind::Conv {
                channels,
                kernel,
                stride,
                padding,
            } => {
                raw.conv = Some(channels);
                raw.kernel = Some(kernel);
                raw.stride = (stride != 1).then_some(stride);
                raw.padding = (padding != 0).then_some(padding);
            }
            BlockKind::Pool { kind, size } => {
                raw.pool = Some(kind);
                raw.size = Some(size);
            }
            BlockKind::Flatten => raw.flatten = Some(true),
            BlockKind::Linear { features } => raw.linear = Some(features),
        }
        raw
    }
}

/// Reads block `index` from its TOML value; the error names the block.
pub(super) fn parse_block(index: usize, value: toml::Value) -> Result<Block, NetworkError> {
    if !value.is_table() {
        return Err(NetworkError::at(index, Problem::NotATable));
    }
    let raw = RawBlock::deserialize(value)
        .map_err(|e| NetworkError::at(index, Problem::BadKey(e.message().trim().to_owned())))?;
    raw.into_block(index)
}

//! Why a `[network]` block list is refused: [`NetworkError`], naming the
//! block (`network.blocks[3]`) and the [`Problem`].

use super::pool::PoolKind;

/// A refused network: the block at fault (none when the problem is the list
/// as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {problem}", self.key())]
pub struct NetworkError {
    /// Index of the block in `network.blocks`; `None` for the whole list.
    pub block: Option<usize>,
    /// What is wrong.
    pub problem: Problem,
}

impl NetworkError {
    /// An error at block `index`.
    pub fn at(index: usize, problem: Problem) -> Self {
        Self {
            block: Some(index),
            problem,
        }
    }

    /// An error of the whole list.
    pub fn whole(problem: Problem) -> Self {
        Self {
            block: None,
            problem,
        }
    }

    /// The dotted key an experiment-file error names: `network.blocks[3]`,
    /// or `network.blocks` for the whole list.
    pub fn key(&self) -> String {
        match self.block {
            Some(i) => format!("network.blocks[{i}]"),
            None => "network.blocks".to_owned(),
        }
    }
}

/// What is wrong with a block or the list.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The block is not a table of keys (a number, a string, ...).
    #[error("a block must be a table such as {{ conv = 8, kernel = 3 }}")]
    NotATable,
    /// A key of the wrong type or an unknown key (the parser's message).
    #[error("{0}")]
    BadKey(String),
    /// None of `conv`, `pool`, `flatten`, `linear`.
    #[error("no block kind: give one of conv, pool, flatten, linear")]
    NoKind,
    /// More than one of `conv`, `pool`, `flatten`, `linear`.
    #[error("more than one block kind ({0}); give exactly one")]
    SeveralKinds(String),
    /// A key that exists but does not belong to this kind of block.
    #[error("a {kind} block takes {allowed}; {key} is not one of them")]
    KeyNotForKind {
        /// The block's kind (`conv`, `pool`, ...).
        kind: &'static str,
        /// The offending key.
        key: &'static str,
        /// The keys this kind takes.
        allowed: &'static str,
    },
    /// A conv block without `kernel`, or a pool block without `size`.
    #[error("a {kind} block needs {key}")]
    Missing {
        /// The block's kind.
        kind: &'static str,
        /// The key it needs.
        key: &'static str,
    },
    /// `flatten = false`.
    #[error("flatten = false is not a block; leave it out or write flatten = true")]
    FlattenFalse,
    /// `tau`, `vth` or `a` on a block whose LIF is off.
    #[error("{key} is given but lif = false turns this block's neurons off")]
    OverrideWithoutLif {
        /// The override key.
        key: &'static str,
    },
    /// A `tau`, `vth` or `a` out of the range `[simulation]` accepts.
    #[error("{key} = {value}: {reason}")]
    BadNeuron {
        /// `tau`, `vth` or `a`.
        key: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range.
        reason: &'static str,
    },
    /// A channel count, width, kernel, stride or size of zero.
    #[error("{key} must be at least 1")]
    Zero {
        /// The key.
        key: &'static str,
    },
    /// A value over its sanity limit ([`super::limits`]).
    #[error("{key} = {value} is more than the limit {limit}")]
    OverLimit {
        /// The key.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// `padding` not below `kernel`.
    #[error("padding {padding} must be less than the kernel {kernel}")]
    PaddingTooLarge {
        /// The padding.
        padding: u32,
        /// The kernel.
        kernel: u32,
    },
    /// A kernel that does not fit its (padded) input.
    #[error("kernel {kernel} is larger than its input {x}x{y} (padding included)")]
    KernelTooLarge {
        /// The kernel.
        kernel: u32,
        /// Padded input size along x.
        x: u64,
        /// Padded input size along y.
        y: u64,
    },
    /// A pooling window larger than its input (the output would be empty).
    #[error("{kind} pool of size {size} does not fit its input {x}x{y}")]
    PoolTooLarge {
        /// Max or average.
        kind: PoolKind,
        /// The window.
        size: u32,
        /// Input size along x.
        x: u64,
        /// Input size along y.
        y: u64,
    },
    /// A conv or pool block after `flatten`.
    #[error("a {kind} block after flatten: the input is no longer an image")]
    SpatialAfterFlatten {
        /// `conv` or `pool`.
        kind: &'static str,
    },
    /// A linear block before `flatten`.
    #[error("a linear block before flatten: put {{ flatten = true }} before the first linear")]
    LinearBeforeFlatten,
    /// A second `flatten`.
    #[error("a second flatten")]
    SecondFlatten,
    /// The list has no blocks.
    #[error("no blocks")]
    Empty,
    /// More blocks than [`super::limits::BLOCKS`].
    #[error("{count} blocks; the limit is {limit}")]
    TooManyBlocks {
        /// Blocks given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The list ends before `flatten` (its output is still an image).
    #[error("the network ends without flatten and a linear layer of the class count")]
    NoFlatten,
    /// The last block is not a linear one.
    #[error("the last block must be a linear layer of the class count ({classes})")]
    LastNotLinear {
        /// The class count.
        classes: u32,
    },
    /// The last linear's width is not the class count.
    #[error("the last layer has {width} outputs but there are {classes} classes")]
    WrongClassCount {
        /// The last layer's width.
        width: u64,
        /// The class count.
        classes: u32,
    },
    /// More parameters than [`super::limits::PARAMETERS`].
    #[error("{count} parameters; the limit is {limit}")]
    TooManyParameters {
        /// Parameters of the network.
        count: u64,
        /// The limit.
        limit: u64,
    },
}

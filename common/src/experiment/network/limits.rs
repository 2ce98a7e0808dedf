//! Sanity limits of a network: far above any network that trains on an event
//! camera's frames, low enough that a typo cannot ask a worker for terabytes.

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

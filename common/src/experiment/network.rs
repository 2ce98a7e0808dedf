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

mod block;
mod error;
pub mod limits;
mod pool;
mod shape;
mod spec;

pub use block::{Block, BlockKind, LifOverride};
pub use error::{NetworkError, Problem};
pub use pool::PoolKind;
pub use shape::{DVS128_SIDE, InputShape, Layer, LayerOp, LifSettings, Network, Shape};
pub use spec::{Naming, NetworkSpec, compact_name_of};

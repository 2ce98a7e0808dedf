//! The spiking CNN a job trains, built from a list of layers
//! ([`Architecture`]): by default SLANIMALSNet, the reference (DESIGN.md,
//! "STBP semantics"): conv 2→20 3×3 → LIF → avg-pool 2 → conv 20→50 3×3 →
//! LIF → avg-pool 2 → flatten (channel-major) → linear →200 → LIF → linear
//! 200→19 → LIF → rate; otherwise the experiment's `[network]`.
//!
//! Time is folded into the batch for every layer (one call per layer per batch);
//! only the LIF recurrence loops over time.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use spikecv_common::experiment::network::PoolKind;
use spikecv_common::experiment::sections::Precision;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::lif::LifParams;
use crate::lif::fused::LifKernels;

mod arch;
mod autograd;
mod rates;
mod staged;

pub use arch::{Architecture, ArchitectureError, LayerDef, Op};
pub use rates::SpikeTally;
pub use staged::EVAL_PASS_VALUES;

/// The reference network's parameter names in PyTorch state-dict order (and
/// creation order); [`Net::param_names`] gives any network's.
pub const PARAM_NAMES: [&str; 8] = [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
];

/// The network's input, classes and neuron parameters (saved as JSON beside
/// weights); alone, the reference network's whole shape
/// ([`Architecture::reference`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Input channels (the two polarities).
    pub in_channels: i64,
    /// Input size along x (the first spatial axis); 128 for DVS128.
    pub width: i64,
    /// Input size along y; 128 for DVS128.
    pub height: i64,
    /// Output classes.
    pub classes: i64,
    /// LIF neuron parameters.
    pub lif: LifParams,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            in_channels: 2,
            width: 128,
            height: 128,
            classes: 19,
            lif: LifParams::default(),
        }
    }
}

/// The STBP spiking CNN: the layers of an [`Architecture`] with their
/// parameters.
#[derive(Debug)]
pub struct Net {
    arch: Architecture,
    /// Weight and bias of each layer that has them, aligned with
    /// `arch.layers`.
    params: Vec<Option<(Tensor, Tensor)>>,
    /// Parameter names in creation (state-dict) order.
    names: Vec<String>,
    /// Which kernels run the LIF layers of the fast paths.
    lif_kernels: LifKernels,
    /// The number format of the convolutions and linear layers.
    precision: Precision,
    /// How the convolutions store their values.
    conv_layout: ConvLayout,
}

/// How a convolution's input, weight and output are stored while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvLayout {
    /// As the network holds them, `[N, C, H, W]` contiguous (libtorch's
    /// default; on the CPU oneDNN reorders them to its blocked layout and
    /// back).
    #[default]
    Contiguous,
    /// Input and weight copied channels last (`[N, H, W, C]` in memory) for
    /// the convolution, whose output is stored so: on the CPU oneDNN's NHWC
    /// kernels, faster than its reorders and blocked kernels (a job on the
    /// CPU uses it; `scripts/bench-epoch.sh`). The CPU LIF kernels read and
    /// pool it as it is; other paths copy it to `[N, C, H, W]` first.
    ChannelsLast,
}

/// Serialises seeding and initialisation: libtorch's CPU generator is global to
/// the process, and several jobs may start at once on different threads.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` with libtorch's global CPU generator seeded with `seed`, holding
/// the lock [`Net::seeded`] holds, so that no other seeded draw of this
/// process (another job's initialisation, a test on another thread) comes
/// between the seed and `f`'s draws.
pub fn with_seed<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    f()
}

/// PyTorch's `kaiming_uniform_(w, a=√5)` bound, computed with its formula so the
/// same seed gives the same bits.
fn kaiming_bound(fan_in: i64) -> f64 {
    let slope = 5f64.sqrt();
    let gain = (2.0 / (1.0 + slope.powi(2))).sqrt();
    let std = gain / (fan_in as f64).sqrt();
    3f64.sqrt() * std
}

/// Creates a layer's weight then bias under `name` (dotted: `blocks.3`), as
/// PyTorch's `reset_parameters` does.
fn layer(vs: &nn::Path<'_>, name: &str, dims: &[i64]) -> (Tensor, Tensor) {
    let fan_in: i64 = dims[1..].iter().product();
    let path = name.split('.').fold(vs.clone(), |p, part| p.sub(part));
    let wb = kaiming_bound(fan_in);
    let w = path.var("weight", dims, Init::Uniform { lo: -wb, up: wb });
    let bb = 1.0 / (fan_in as f64).sqrt();
    let b = path.var("bias", &dims[..1], Init::Uniform { lo: -bb, up: bb });
    (w, b)
}

impl Net {
    /// Creates the layers under `vs` with PyTorch's default initialisation
    /// (`kaiming_uniform_(a=√5)` weights, `uniform(±1/√fan_in)` biases), drawing
    /// from libtorch's generator in PyTorch's order: built on the CPU after
    /// `tch::manual_seed(s)`, the parameters equal `torch.manual_seed(s);
    /// SLANIMALSNet()`'s bit for bit (or those of the PyTorch model built from
    /// the same block list). A [`NetConfig`] gives the reference network.
    /// Its LIF layers run on [`LifKernels::Auto`] until
    /// [`Net::set_lif_kernels`] chooses others.
    ///
    /// # Panics
    /// When `arch` is a [`NetConfig`] the reference network does not fit
    /// ([`Architecture::reference`]); an [`Architecture`] is checked.
    pub fn new(vs: &nn::Path<'_>, arch: impl Into<Architecture>) -> Net {
        let arch = arch.into();
        let mut names = Vec::new();
        let params = arch
            .layers
            .iter()
            .map(|l| {
                let dims = l.op.weight_dims()?;
                let (w, b) = l.param_names()?;
                let created = layer(vs, &l.name, &dims);
                names.extend([w, b]);
                Some(created)
            })
            .collect();
        Net {
            arch,
            params,
            names,
            lif_kernels: LifKernels::default(),
            precision: Precision::F32,
            conv_layout: ConvLayout::Contiguous,
        }
    }

    /// Builds the network in a fresh CPU var store seeded with `seed` (holding a
    /// process-wide lock, so concurrent jobs do not interleave their draws), then
    /// moves it to `device`.
    pub fn seeded(arch: impl Into<Architecture>, seed: u64, device: Device) -> (nn::VarStore, Net) {
        let arch = arch.into();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = with_seed(seed as i64, || Net::new(&vs.root(), arch));
        if device != Device::Cpu {
            vs.set_device(device);
        }
        (vs, net)
    }

    /// The network's input, classes and network-wide neuron parameters.
    pub fn config(&self) -> &NetConfig {
        &self.arch.config
    }

    /// The network's layers.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// Which kernels run the LIF layers ([`LifKernels::Auto`] when built).
    pub fn lif_kernels(&self) -> LifKernels {
        self.lif_kernels
    }

    /// Chooses the kernels that run the LIF layers (a job's settings, tests,
    /// benches, the operation count).
    pub fn set_lif_kernels(&mut self, kernels: LifKernels) {
        self.lif_kernels = kernels;
    }

    /// The number format of the convolutions and linear layers (float32 when
    /// built).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Chooses the number format of the convolutions and linear layers (a
    /// job's `[training] precision`); parameters stay float32 either way.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// How the convolutions store their values ([`ConvLayout::Contiguous`]
    /// when built).
    pub fn conv_layout(&self) -> ConvLayout {
        self.conv_layout
    }

    /// Chooses how the convolutions store their values: a job on the CPU
    /// takes [`ConvLayout::ChannelsLast`]. The values computed may differ in
    /// the last bits (another summation order).
    pub fn set_conv_layout(&mut self, layout: ConvLayout) {
        self.conv_layout = layout;
    }

    /// Parameter names in PyTorch state-dict order ([`PARAM_NAMES`] for the
    /// reference network, `blocks.<i>.weight` / `.bias` otherwise).
    pub fn param_names(&self) -> &[String] {
        &self.names
    }

    /// Parameters with their state-dict names, in [`Net::param_names`] order.
    pub fn named_parameters(&self) -> Vec<(&str, &Tensor)> {
        let tensors = self.params.iter().flatten().flat_map(|(w, b)| [w, b]);
        self.names.iter().map(String::as_str).zip(tensors).collect()
    }

    /// Handles to the parameters (shallow clones: the same storage and
    /// gradients), in [`Net::param_names`] order, for an optimiser to own.
    pub fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p.shallow_clone())
            .collect()
    }

    /// Firing rates `[N, classes]` for an input batch `[N, C, X, Y, T]`.
    ///
    /// Without `train`, the fast path ([`Net::forward_fast`]: no gradients, LIF
    /// layers outside autograd). With `train`, the autograd reference
    /// ([`Net::forward_autograd`]), whose rates carry the surrogate gradient;
    /// training itself uses [`Net::forward_backward`], which gives the same
    /// gradients far faster.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            self.forward_autograd(xs, true)
        } else {
            self.forward_fast(xs)
        }
    }

    /// Layer `index`'s operation on a time-folded `[T·N, ...]` tensor (no
    /// LIF), its result contiguous.
    fn apply(&self, index: usize, h: &Tensor) -> Tensor {
        let out = self.apply_in_layout(index, h);
        if self.conv_layout == ConvLayout::ChannelsLast && !out.is_contiguous() {
            out.contiguous()
        } else {
            out
        }
    }

    /// [`Net::apply`] with a convolution's result as it computed it: stored
    /// channels last under [`ConvLayout::ChannelsLast`], which the staged
    /// path's CPU LIF kernels read as is.
    fn apply_in_layout(&self, index: usize, h: &Tensor) -> Tensor {
        let Some(layer) = self.arch.layers.get(index) else {
            return h.shallow_clone();
        };
        let params = self.params.get(index).and_then(Option::as_ref);
        match (layer.op, params) {
            (Op::Conv { .. } | Op::Linear { .. }, Some((w, b)))
                if self.precision == Precision::Bf16 =>
            {
                // PyTorch's autocast: input, weight and bias cast to bfloat16,
                // the product in bfloat16; the result back to float32 for the
                // LIF layer (float32 arithmetic with a bfloat16 operand
                // promotes it exactly, as the reference's LIF does).
                let cast = |t: &Tensor| t.to_kind(Kind::BFloat16);
                affine(
                    layer.op,
                    self.conv_layout,
                    &cast(h),
                    &cast(w),
                    Some(&cast(b)),
                )
                .to_kind(Kind::Float)
            }
            (Op::Conv { .. } | Op::Linear { .. }, Some((w, b))) => {
                affine(layer.op, self.conv_layout, h, w, Some(b))
            }
            (Op::Pool { kind, size }, _) => pool(h, kind, size),
            (Op::Flatten, _) => h.reshape([h.size().first().copied().unwrap_or(1), -1]),
            (Op::Conv { .. } | Op::Linear { .. }, None) => h.shallow_clone(),
        }
    }
}

impl Net {
    /// The bias of layer `index` when it is a float32 convolution whose bias
    /// the fused LIF kernels can add (and sum the gradient of) instead of
    /// the convolution: see [`Net::apply_without_bias`].
    pub(crate) fn fusable_conv_bias(&self, index: usize) -> Option<&Tensor> {
        let layer = self.arch.layers.get(index)?;
        let (_, b) = self.params.get(index)?.as_ref()?;
        let conv = matches!(layer.op, Op::Conv { .. }) && layer.lif.is_some();
        (conv && self.precision == Precision::F32).then_some(b)
    }

    /// Layer `index`, a convolution, without its bias (as
    /// [`Net::apply_in_layout`] computes it otherwise).
    pub(crate) fn apply_without_bias(&self, index: usize, h: &Tensor) -> Tensor {
        match (self.arch.layers.get(index), self.params.get(index)) {
            (Some(layer), Some(Some((w, _)))) => affine(layer.op, self.conv_layout, h, w, None),
            _ => h.shallow_clone(),
        }
    }
}

impl ConvLayout {
    /// The faster layout on `device`: channels last on the CPU, contiguous on
    /// a GPU (cuDNN's float32 kernels there are tuned for it).
    pub fn for_device(device: Device) -> ConvLayout {
        match device {
            Device::Cpu => ConvLayout::ChannelsLast,
            _ => ConvLayout::Contiguous,
        }
    }
}

/// A convolution's or linear layer's product with its weight `w` plus its
/// bias `b`, if any (any other operation returns `h`), the convolution
/// computed in `layout` (its result stored so).
fn affine(op: Op, layout: ConvLayout, h: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    match op {
        Op::Conv {
            stride, padding, ..
        } if layout == ConvLayout::ChannelsLast => channels_last(h).conv2d(
            &channels_last(w),
            b,
            [stride, stride],
            [padding, padding],
            [1, 1],
            1,
        ),
        Op::Conv {
            stride, padding, ..
        } => h.conv2d(w, b, [stride, stride], [padding, padding], [1, 1], 1),
        Op::Linear { .. } => h.linear(w, b),
        _ => h.shallow_clone(),
    }
}

/// `t` (`[N, C, H, W]`) with its values stored channels last (`[N, H, W, C]`
/// in memory), the logical shape unchanged: libtorch then runs a CPU
/// convolution in oneDNN's NHWC kernels, without reordering to and from its
/// blocked layout.
fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// `MaxPool2d(size)` / `AvgPool2d(size)` (stride = size, no padding, floor) on
/// `[B, C, H, W]`.
fn pool(h: &Tensor, kind: PoolKind, size: i64) -> Tensor {
    match kind {
        PoolKind::Avg => h.avg_pool2d([size, size], [size, size], [0, 0], false, true, None),
        PoolKind::Max => h.max_pool2d([size, size], [size, size], [0, 0], [1, 1], false),
    }
}

//! SLANIMALSNet, the reference spiking CNN (DESIGN.md, "STBP semantics"):
//! conv 2→20 3×3 → LIF → avg-pool 2 → conv 20→50 3×3 → LIF → avg-pool 2 →
//! flatten (channel-major) → linear →200 → LIF → linear 200→19 → LIF → rate.
//!
//! Time is folded into the batch for every layer (one call per layer per batch);
//! only the LIF recurrence loops over time.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Device, Tensor};

use crate::lif::fused::{LifKernels, default_kernels};
use crate::lif::{LifParams, rate};

mod staged;

pub use staged::EVAL_PASS_VALUES;

/// Channels of the first convolution's output.
pub const CONV1_CHANNELS: i64 = 20;
/// Channels of the second convolution's output.
pub const CONV2_CHANNELS: i64 = 50;
/// Width of the hidden fully connected layer.
pub const HIDDEN: i64 = 200;
/// Parameter names in PyTorch state-dict order (and creation order).
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

/// The network's shape and neuron parameters (saved as JSON beside weights).
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

impl NetConfig {
    /// Spatial size after conv1 → pool → conv2 → pool, as `(x, y)`.
    pub fn feature_size(&self) -> (i64, i64) {
        let f = |s: i64| ((s - 2) / 2 - 2) / 2;
        (f(self.width), f(self.height))
    }

    /// Inputs of `fc1` (45000 for 128×128).
    pub fn flat_features(&self) -> i64 {
        let (x, y) = self.feature_size();
        CONV2_CHANNELS * x * y
    }

    /// Whether the input is large enough for the two conv/pool stages.
    pub fn is_valid(&self) -> bool {
        let (x, y) = self.feature_size();
        x >= 1 && y >= 1 && self.in_channels >= 1 && self.classes >= 1
    }
}

/// The STBP spiking CNN.
#[derive(Debug)]
pub struct Net {
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    fc1_w: Tensor,
    fc1_b: Tensor,
    fc2_w: Tensor,
    fc2_b: Tensor,
    config: NetConfig,
    /// Which kernels run the LIF layers of the fast paths.
    lif_kernels: LifKernels,
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

/// Creates a layer's weight then bias, as PyTorch's `reset_parameters` does.
fn layer(vs: &nn::Path<'_>, name: &str, dims: &[i64]) -> (Tensor, Tensor) {
    let fan_in: i64 = dims[1..].iter().product();
    let path = vs / name;
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
    /// SLANIMALSNet()`'s bit for bit.
    pub fn new(vs: &nn::Path<'_>, config: NetConfig) -> Net {
        let k = 3;
        let (conv1_w, conv1_b) = layer(vs, "conv1", &[CONV1_CHANNELS, config.in_channels, k, k]);
        let (conv2_w, conv2_b) = layer(vs, "conv2", &[CONV2_CHANNELS, CONV1_CHANNELS, k, k]);
        let (fc1_w, fc1_b) = layer(vs, "fc1", &[HIDDEN, config.flat_features()]);
        let (fc2_w, fc2_b) = layer(vs, "fc2", &[config.classes, HIDDEN]);
        Net {
            conv1_w,
            conv1_b,
            conv2_w,
            conv2_b,
            fc1_w,
            fc1_b,
            fc2_w,
            fc2_b,
            config,
            lif_kernels: default_kernels(),
        }
    }

    /// Builds the network in a fresh CPU var store seeded with `seed` (holding a
    /// process-wide lock, so concurrent jobs do not interleave their draws), then
    /// moves it to `device`.
    pub fn seeded(config: NetConfig, seed: u64, device: Device) -> (nn::VarStore, Net) {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = with_seed(seed as i64, || Net::new(&vs.root(), config));
        if device != Device::Cpu {
            vs.set_device(device);
        }
        (vs, net)
    }

    /// The network's configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Which kernels run the LIF layers ([`default_kernels`] when built).
    pub fn lif_kernels(&self) -> LifKernels {
        self.lif_kernels
    }

    /// Chooses the kernels that run the LIF layers (tests, benches, the
    /// operation count).
    pub fn set_lif_kernels(&mut self, kernels: LifKernels) {
        self.lif_kernels = kernels;
    }

    /// Parameters with their state-dict names, in [`PARAM_NAMES`] order.
    pub fn named_parameters(&self) -> Vec<(&'static str, &Tensor)> {
        let all = [
            &self.conv1_w,
            &self.conv1_b,
            &self.conv2_w,
            &self.conv2_b,
            &self.fc1_w,
            &self.fc1_b,
            &self.fc2_w,
            &self.fc2_b,
        ];
        PARAM_NAMES.into_iter().zip(all).collect()
    }

    /// Handles to the parameters (shallow clones: the same storage and
    /// gradients), in [`PARAM_NAMES`] order, for an optimiser to own.
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

    /// The reference implementation: the whole network under autograd, the LIF
    /// layers through [`LifParams::run`] (one small graph per time step; its
    /// backward is quadratic in T). Kept to check the fast paths against and as
    /// the benchmarks' baseline. With `train` the spikes carry the surrogate
    /// gradient.
    pub fn forward_autograd(&self, xs: &Tensor, train: bool) -> Tensor {
        let size = xs.size();
        let (n, c, x, y, t) = (size[0], size[1], size[2], size[3], size[4]);
        // [N, C, X, Y, T] → [T·N, C, X, Y]: time folded into the batch.
        let h = xs.permute([4, 0, 1, 2, 3]).reshape([t * n, c, x, y]);
        let h = self.conv_block(&h, &self.conv1_w, &self.conv1_b, t, train);
        let h = self.conv_block(&h, &self.conv2_w, &self.conv2_b, t, train);
        let h = h
            .reshape([t * n, -1])
            .linear(&self.fc1_w, Some(&self.fc1_b));
        let h = self.spike_folded(&h, t, train);
        let h = h.linear(&self.fc2_w, Some(&self.fc2_b));
        let spikes = self.config.lif.run(&h.reshape([t, n, -1]), train);
        rate(&spikes)
    }

    /// The same network written the reference's way: every layer called once per
    /// time step. Slow; kept to check that folding time into the batch changes
    /// nothing.
    pub fn forward_per_step(&self, xs: &Tensor, train: bool) -> Tensor {
        let t = xs.size()[4];
        let per_step = |inputs: &[Tensor], f: &dyn Fn(&Tensor) -> Tensor| -> Vec<Tensor> {
            inputs.iter().map(f).collect()
        };
        let lif = |inputs: Vec<Tensor>| -> Vec<Tensor> {
            let spikes = self.config.lif.run(&Tensor::stack(&inputs, 0), train);
            (0..t).map(|i| spikes.select(0, i)).collect()
        };
        let pool = |h: &Tensor| h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None);
        let steps: Vec<Tensor> = (0..t).map(|i| xs.select(4, i)).collect();
        let h = per_step(&steps, &|x| {
            x.conv2d(
                &self.conv1_w,
                Some(&self.conv1_b),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            )
        });
        let h = per_step(&lif(h), &pool);
        let h = per_step(&h, &|x| {
            x.conv2d(
                &self.conv2_w,
                Some(&self.conv2_b),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            )
        });
        let h = per_step(&lif(h), &pool);
        let h = per_step(&h, &|x| {
            x.flatten(1, -1).linear(&self.fc1_w, Some(&self.fc1_b))
        });
        let h = per_step(&lif(h), &|x| x.linear(&self.fc2_w, Some(&self.fc2_b)));
        let spikes = Tensor::stack(&lif(h), 0);
        rate(&spikes)
    }

    /// conv → LIF → avg-pool 2 on time-folded `[T·N, C, X, Y]`.
    fn conv_block(&self, h: &Tensor, w: &Tensor, b: &Tensor, t: i64, train: bool) -> Tensor {
        let h = h.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1);
        let h = self.spike_folded(&h, t, train);
        h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
    }

    /// LIF over a time-folded `[T·N, ...]` tensor; returns the same layout.
    fn spike_folded(&self, h: &Tensor, t: i64, train: bool) -> Tensor {
        let size = h.size();
        let mut split = vec![t, size[0] / t];
        split.extend_from_slice(&size[1..]);
        self.config
            .lif
            .run(&h.reshape(split.as_slice()), train)
            .reshape(size.as_slice())
    }
}

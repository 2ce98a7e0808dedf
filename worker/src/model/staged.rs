//! The network's fast paths: a forward pass whose LIF layers run outside
//! autograd, and a training pass whose backward is staged.
//!
//! The network is cut at every LIF layer into stages, each a small autograd
//! graph from a detached input to the LIF layer's input: for the reference
//! network `x → conv1`, `pool(o1) → conv2`, `pool(o2) → fc1`, `o3 → fc2`; in
//! general the layers from one LIF layer's output (or the input) to the next
//! LIF layer, pooling, flatten and layers without a LIF included. A 2×2
//! average pooling right after a LIF layer runs with it; any other pooling is
//! part of the next stage's graph. Layers after the last LIF layer (a last
//! layer with `lif = false`) form a tail whose output's mean over time is the
//! rates. Forward, each stage's output buffer becomes the LIF layer's
//! potentials and the (pooled) spikes, detached, are the next stage's input.
//! Backward walks the stages from the loss down: the pooling's backward and
//! the LIF gradient through time by hand, left in the potentials' buffer,
//! then autograd through the stage from that gradient
//! ([`crate::autograd::backward_with_grad`]), which accumulates the
//! parameters' gradients and yields the gradient of the stage's input.
//! Nothing of a stage outlives its backward.
//!
//! The LIF layer and its pooling run as one pass each way: on the CPU the
//! CPU kernels ([`crate::lif::cpu::forward`], [`crate::lif::cpu::backward`]),
//! on a CUDA device the fused kernels ([`fused`], one launch each way) once
//! the device passed its first-use check; otherwise tensor operations
//! ([`crate::lif::through_time`], libtorch's pooling). [`Net::set_lif_kernels`]
//! forces one. On the CPU all give the same values bit for bit, but for the
//! convolutions' gradients with the fused kernels, which also count the
//! spikes for the tally and run a float32 convolution's bias ([`bias`]);
//! docs/semantics.md says what holds where.
//!
//! A stage and its way back are in [`stage`]; how its values are stored for
//! the kernels in [`memory`].

use spikecv_common::experiment::network::PoolKind;
use tch::{Device, Tensor};

use crate::lif::fused::{self, LifKernels};
use crate::model::rates::{LayerOutput, SpikeTally};
use crate::model::{Net, Op};

mod bias;
mod memory;
mod stage;

use stage::Stage;

/// Whether `op` is a 2×2 average pooling, which the LIF kernels run fused
/// with the LIF layer before it.
fn is_avg_pool_2(op: &Op) -> bool {
    matches!(
        op,
        Op::Pool {
            kind: PoolKind::Avg,
            size: 2
        }
    )
}

/// Pooling of the conv blocks: average over 2×2, stride 2, floor.
fn pool(h: &Tensor) -> Tensor {
    h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
}

/// Gradient of [`pool`]'s input of shape `input_shape` (`[.., H, W]`) from its
/// output's: `avg_pool2d_backward`'s values (each input under a window gets
/// `0 + g / 4`, a last odd row or column 0) without handing it an input-sized
/// tensor, which CUDA's kernel would fill with zeros first.
fn pool_backward(grad_out: &Tensor, input_shape: &[i64]) -> Tensor {
    let (height, width) = match input_shape {
        [.., h, w] => (*h, *w),
        _ => return grad_out.shallow_clone(),
    };
    // `g / 4 + 0` equals the kernel's `0 + g / 4`, signed zeros included.
    let quarter = (grad_out / 4.0) + 0.0;
    let spread = quarter.upsample_nearest2d([2 * (height / 2), 2 * (width / 2)], None, None);
    if height % 2 == 0 && width % 2 == 0 {
        spread
    } else {
        spread.constant_pad_nd([0, width % 2, 0, height % 2])
    }
}

/// Which kernels ran a stage's LIF layer; its backward takes the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LifPath {
    /// `lif::cpu`.
    Cpu,
    /// `lif::fused` (CUDA, or its C++ form on the CPU).
    Fused,
    /// `lif::through_time` and libtorch's pooling.
    Tensor,
}

/// The kernels for a layer on `device` under the network's choice.
fn choose_path(kernels: LifKernels, device: Device) -> LifPath {
    match (kernels, device) {
        (LifKernels::Tensor, _) => LifPath::Tensor,
        (LifKernels::Fused, _) => LifPath::Fused,
        (LifKernels::Auto, Device::Cpu) => LifPath::Cpu,
        (LifKernels::Auto, Device::Cuda(index)) if fused::cuda_ready(index) => LifPath::Fused,
        (LifKernels::Auto, _) => LifPath::Tensor,
    }
}

/// Most values of the largest layer output (for the reference network the
/// first layer's, `[T·N, 20, X−2, Y−2]`) one evaluation pass holds (512 MiB
/// of f32): eight samples of the reference network at 128×128, T = 50.
/// With its convolution's workspace, an evaluation batch then needs about
/// what a training step of batch 8 does, whatever the test batch.
pub const EVAL_PASS_VALUES: i64 = 128 << 20;

/// Keeps a stage for the backward pass, or (evaluation) frees it at once, so
/// that a layer's potentials do not outlive it.
fn keep_if(stages: &mut Vec<Stage>, stage: Stage, keep: bool) {
    if keep {
        stages.push(stage);
    }
}

/// The network's rates and, when training, the stages for the backward pass.
struct Forward {
    /// The rates; with a tail under training, the root of the tail's graph.
    rates: Tensor,
    stages: Vec<Stage>,
    /// The tail's input (the last stage's output, a leaf), when the network
    /// has layers after its last LIF layer and the pass is kept.
    tail_input: Option<Tensor>,
    steps: i64,
}

impl Net {
    /// The forward pass with the LIF layers outside autograd. With `keep`, the
    /// stages' graphs and the potentials are kept for [`Net::forward_backward`];
    /// without, nothing is (evaluation). With a `tally`, every LIF layer's
    /// spikes are counted into it (on the device).
    fn forward_staged(
        &self,
        xs: &Tensor,
        keep: bool,
        mut tally: Option<&mut SpikeTally>,
    ) -> Forward {
        let size = xs.size();
        let [n, c, x, y, t] = size[..] else {
            return Forward {
                rates: xs.shallow_clone(),
                stages: Vec::new(),
                tail_input: None,
                steps: 1,
            };
        };
        let graph = |f: &dyn Fn() -> Tensor| {
            if keep {
                tch::with_grad(f)
            } else {
                tch::no_grad(f)
            }
        };
        let leaf = |h: Tensor| if keep { h.set_requires_grad(true) } else { h };
        if let Some(tally) = tally.as_deref_mut() {
            tally.add_slots(n, t);
        }
        // The fused kernels count each layer's spikes as they run, and add a
        // convolution's bias.
        let fused = choose_path(self.lif_kernels, xs.device()) == LifPath::Fused;
        let kernel_counts = (tally.as_deref_mut())
            .filter(|_| fused)
            .and_then(|tally| tally.kernel_counts(xs.device()).map(Tensor::shallow_clone));
        let layers = &self.arch.layers;
        let mut stages = Vec::with_capacity(layers.len());
        let mut lif_index = 0;
        // The current stage's input, and whether it is a leaf of a previous
        // stage (the network's input has no gradient).
        let mut h = xs
            .detach()
            .permute([4, 0, 1, 2, 3])
            .reshape([t * n, c, x, y]);
        let mut from_stage = false;
        let mut start = 0;
        while let Some(end) = (start..layers.len()).find(|&i| layers[i].lif.is_some()) {
            let Some(lif) = layers[end].lif else { break };
            let bias = fused.then(|| self.fusable_conv_bias(end)).flatten();
            let out = graph(&|| bias::stage_output(self, start..=end, &h, bias.is_some()));
            let pooled = layers.get(end + 1).is_some_and(|l| is_avg_pool_2(&l.op));
            let input = (keep && from_stage).then(|| h.shallow_clone());
            let counter = kernel_counts.as_ref().map(|c| (c, lif_index));
            let extras = (counter, bias.map(Tensor::shallow_clone));
            let (stage, spikes) = Stage::lif(self, &lif, out, (input, t, pooled), extras);
            let counted = counter.is_some() && stage.path == LifPath::Fused;
            if let Some(tally) = tally.as_deref_mut().filter(|_| !counted) {
                let shape = stage.out.size();
                tally.count(
                    lif_index,
                    LayerOutput {
                        output: &spikes,
                        potentials: &stage.potentials,
                        shape: &shape,
                        vth: lif.vth,
                        pooled,
                        channels_last: stage.channels_last,
                    },
                );
            }
            lif_index += 1;
            h = leaf(spikes);
            from_stage = true;
            keep_if(&mut stages, stage, keep);
            start = end + 1 + usize::from(pooled);
        }
        if start >= layers.len() {
            let rates = tch::no_grad(|| crate::lif::rate(&h.view([t, n, -1])));
            return Forward {
                rates,
                stages,
                tail_input: None,
                steps: t,
            };
        }
        // Layers after the last LIF layer: their output's mean over time.
        let rates = graph(&|| {
            let out = self.apply_range(start..=layers.len() - 1, &h);
            crate::lif::rate(&out.reshape([t, n, -1]))
        });
        Forward {
            rates,
            stages,
            tail_input: (keep && from_stage).then_some(h),
            steps: t,
        }
    }

    /// Layers `range` (operations only, no LIF) on a time-folded tensor.
    fn apply_range(&self, range: std::ops::RangeInclusive<usize>, h: &Tensor) -> Tensor {
        range.fold(h.shallow_clone(), |h, i| self.apply_in_layout(i, &h))
    }

    /// Firing rates `[N, classes]` for an input batch `[N, C, X, Y, T]`, without
    /// gradients: the LIF layers run outside autograd. Equal bit for bit to
    /// [`Net::forward_autograd`]'s rates. A batch whose first layer would hold
    /// more than [`EVAL_PASS_VALUES`] values runs a few samples at a time
    /// ([`Net::forward_fast_by`]).
    pub fn forward_fast(&self, xs: &Tensor) -> Tensor {
        self.forward_fast_counting(xs, None)
    }

    /// [`Net::forward_fast`], counting every LIF layer's spikes into `tally`
    /// (on the device; the rates are the same bits).
    pub fn forward_fast_tallied(&self, xs: &Tensor, tally: &mut SpikeTally) -> Tensor {
        self.forward_fast_counting(xs, Some(tally))
    }

    /// [`Net::forward_fast`] with an optional tally.
    fn forward_fast_counting(&self, xs: &Tensor, tally: Option<&mut SpikeTally>) -> Tensor {
        let size = xs.size();
        let per_sample = match size.as_slice() {
            [.., t] => t * self.arch.peak_values(),
            _ => 1,
        };
        self.forward_fast_by_counting(xs, (EVAL_PASS_VALUES / per_sample.max(1)).max(1), tally)
    }

    /// [`Net::forward_fast`] through passes of at most `samples` samples,
    /// whose rates are concatenated: each sample's rates do not depend on the
    /// others in its batch.
    pub fn forward_fast_by(&self, xs: &Tensor, samples: i64) -> Tensor {
        self.forward_fast_by_counting(xs, samples, None)
    }

    /// [`Net::forward_fast_by`], counting every LIF layer's spikes into
    /// `tally` (each part's).
    pub fn forward_fast_by_tallied(
        &self,
        xs: &Tensor,
        samples: i64,
        tally: &mut SpikeTally,
    ) -> Tensor {
        self.forward_fast_by_counting(xs, samples, Some(tally))
    }

    /// [`Net::forward_fast_by`] with an optional tally.
    fn forward_fast_by_counting(
        &self,
        xs: &Tensor,
        samples: i64,
        mut tally: Option<&mut SpikeTally>,
    ) -> Tensor {
        if !self.arch.config.lif.is_heaviside() {
            return tch::no_grad(|| self.forward_autograd_counting(xs, false, tally));
        }
        let samples = samples.max(1);
        if xs.size().first().is_none_or(|&n| n <= samples) {
            return self.forward_staged(xs, false, tally).rates;
        }
        let parts: Vec<Tensor> = xs
            .split(samples, 0)
            .iter()
            .map(|part| self.forward_staged(part, false, tally.as_deref_mut()).rates)
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// One STBP forward and backward pass: returns the loss `loss_fn(rates)` and
    /// the rates (both detached) and accumulates the gradient of the loss into
    /// the parameters' `.grad`, as `loss.backward()` after
    /// [`Net::forward_autograd`] would, but with the LIF layers through time
    /// outside autograd (see the module docs). Gradient mode is switched on
    /// for the call.
    ///
    /// A spike function other than the Heaviside (a test's smooth stand-in)
    /// takes the autograd path.
    pub fn forward_backward(
        &self,
        xs: &Tensor,
        loss_fn: &dyn Fn(&Tensor) -> Tensor,
    ) -> (Tensor, Tensor) {
        self.forward_backward_tallied(xs, loss_fn, None)
    }

    /// [`Net::forward_backward`], counting every LIF layer's spikes of the
    /// forward pass into `tally` when given (on the device; the loss, the
    /// rates and the gradients are the same bits).
    pub fn forward_backward_tallied(
        &self,
        xs: &Tensor,
        loss_fn: &dyn Fn(&Tensor) -> Tensor,
        tally: Option<&mut SpikeTally>,
    ) -> (Tensor, Tensor) {
        tch::with_grad(|| {
            if !self.arch.config.lif.is_heaviside() {
                let rates = self.forward_autograd_counting(xs, true, tally);
                let loss = loss_fn(&rates);
                loss.backward();
                return (loss.detach(), rates.detach());
            }
            let forward = self.forward_staged(xs, true, tally);
            if forward.rates.requires_grad() {
                // A tail: autograd from the loss through it, down to its input.
                let rates = forward.rates;
                let loss = loss_fn(&rates);
                loss.backward();
                let grad = forward.tail_input.map(|input| input.grad());
                backward_stages(forward.stages, grad);
                return (loss.detach(), rates.detach());
            }
            let rates = forward.rates.set_requires_grad(true);
            let loss = loss_fn(&rates);
            let grad_rates = Tensor::run_backward(&[&loss], &[&rates], false, false)
                .pop()
                .unwrap_or_else(|| rates.zeros_like());
            // rates = Σ_t o_t / T: every step's spikes get grad_rates / T.
            let t = forward.steps;
            let mut size = vec![t];
            size.extend(grad_rates.size());
            let grad = (grad_rates / t).unsqueeze(0).expand(size.as_slice(), false);
            backward_stages(forward.stages, Some(grad));
            (loss.detach(), rates.detach())
        })
    }
}

/// Walks the stages from the last, each given the gradient of its output.
fn backward_stages(mut stages: Vec<Stage>, grad: Option<Tensor>) {
    let mut grad = grad;
    while let (Some(stage), Some(g)) = (stages.pop(), grad.take()) {
        grad = stage.backward(&g);
    }
}

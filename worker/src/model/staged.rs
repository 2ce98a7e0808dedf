//! The network's fast paths: a forward pass whose LIF layers run outside
//! autograd, and a training pass whose backward is staged.
//!
//! The network is cut at every LIF layer into four stages, each a small
//! autograd graph from a detached input to the LIF layer's input:
//! `x → conv1`, `pool(o1) → conv2`, `pool(o2) → fc1`, `o3 → fc2`. Forward, each
//! stage's output buffer becomes the LIF layer's potentials
//! ([`through_time::forward_in_place`]) and the pooled spikes, detached, are the
//! next stage's input. Backward walks the stages from the loss down: the LIF
//! gradient through time by hand ([`through_time::backward_in_place`]), then
//! autograd through the stage (which accumulates the parameters' gradients and
//! yields the gradient of the stage's input), then the pooling's backward.
//! Nothing of a stage outlives its backward.

use tch::Tensor;

use crate::lif::through_time;
use crate::model::Net;

/// Pooling of the conv blocks: average over 2×2, stride 2, floor.
fn pool(h: &Tensor) -> Tensor {
    h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
}

/// Gradient of [`pool`]'s input of shape `input_shape` from its output's.
fn pool_backward(grad_out: &Tensor, input_shape: &[i64]) -> Tensor {
    // Only the input's shape and kind matter to the kernel; a broadcast zero
    // stands in for the spikes, which are not kept.
    let shape_only =
        Tensor::zeros([1], (grad_out.kind(), grad_out.device())).expand(input_shape, false);
    shape_only.avg_pool2d_backward(grad_out, [2, 2], [2, 2], [0, 0], false, true, None)
}

/// One stage kept for the backward pass.
struct Stage {
    /// The stage's output (the LIF layer's input); the root of its graph.
    out: Tensor,
    /// The LIF potentials, time-major `[T, ...]`, in `out`'s storage when it
    /// is contiguous.
    potentials: Tensor,
    /// The stage's detached input that autograd gives a gradient to (none for
    /// the first stage).
    input: Option<Tensor>,
}

impl Stage {
    /// Runs the LIF layer on `out` (time folded into the batch, `[T·N, ...]`),
    /// returning the stage and the spikes in `out`'s shape.
    fn lif(net: &Net, out: Tensor, input: Option<Tensor>, steps: i64) -> (Stage, Tensor) {
        let potentials = out.detach().contiguous().view([steps, -1]);
        let spikes = through_time::forward_in_place(&net.config.lif, &potentials);
        let spikes = spikes.view(out.size().as_slice());
        (
            Stage {
                out,
                potentials,
                input,
            },
            spikes,
        )
    }

    /// Backward through the LIF layer and the stage, given the gradient of the
    /// loss with respect to the spikes (time-major, contiguous, any shape of
    /// the right size). Accumulates into the parameters' `.grad` and returns
    /// the gradient of the stage's input, if it has one.
    fn backward(self, net: &Net, grad_spikes: Tensor) -> Option<Tensor> {
        let grad_spikes = grad_spikes
            .contiguous()
            .view(self.potentials.size().as_slice());
        let grad_out =
            through_time::backward_in_place(&net.config.lif, &self.potentials, &grad_spikes);
        drop(self.potentials);
        // d(out · g)/d(out) = g: autograd takes the upstream gradient from the
        // dot product's backward.
        let root = self.out.reshape([-1]).dot(&grad_out.reshape([-1]));
        drop(grad_out);
        root.backward();
        self.input.map(|input| input.grad())
    }
}

/// The network's rates and, when training, the stages for the backward pass.
struct Forward {
    rates: Tensor,
    stages: Vec<Stage>,
    /// Shape of the conv blocks' LIF outputs, for the pooling's backward.
    pooled_from: [Vec<i64>; 2],
    steps: i64,
}

impl Net {
    /// The forward pass with the LIF layers outside autograd. With `keep`, the
    /// stages' graphs and the potentials are kept for [`Net::forward_backward`];
    /// without, nothing is (evaluation).
    fn forward_staged(&self, xs: &Tensor, keep: bool) -> Forward {
        let size = xs.size();
        let (n, c, x, y, t) = (size[0], size[1], size[2], size[3], size[4]);
        let graph = |f: &dyn Fn() -> Tensor| {
            if keep {
                tch::with_grad(f)
            } else {
                tch::no_grad(f)
            }
        };
        let leaf = |h: Tensor| if keep { h.set_requires_grad(true) } else { h };
        let mut stages = Vec::with_capacity(4);
        let mut pooled_from: [Vec<i64>; 2] = [Vec::new(), Vec::new()];

        let input = xs
            .detach()
            .permute([4, 0, 1, 2, 3])
            .reshape([t * n, c, x, y]);
        let out = graph(&|| {
            input.conv2d(
                &self.conv1_w,
                Some(&self.conv1_b),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            )
        });
        let (stage, spikes) = Stage::lif(self, out, None, t);
        pooled_from[0] = spikes.size();
        let h = leaf(tch::no_grad(|| pool(&spikes)));
        drop(spikes);
        stages.push(stage);

        let out = graph(&|| {
            h.conv2d(
                &self.conv2_w,
                Some(&self.conv2_b),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            )
        });
        let (stage, spikes) = Stage::lif(self, out, keep.then(|| h.shallow_clone()), t);
        pooled_from[1] = spikes.size();
        let h = leaf(tch::no_grad(|| pool(&spikes)));
        drop(spikes);
        stages.push(stage);

        let out = graph(&|| {
            h.reshape([t * n, -1])
                .linear(&self.fc1_w, Some(&self.fc1_b))
        });
        let (stage, spikes) = Stage::lif(self, out, keep.then(|| h.shallow_clone()), t);
        let h = leaf(spikes);
        stages.push(stage);

        let out = graph(&|| h.linear(&self.fc2_w, Some(&self.fc2_b)));
        let (stage, spikes) = Stage::lif(self, out, keep.then(|| h.shallow_clone()), t);
        stages.push(stage);

        let rates = tch::no_grad(|| crate::lif::rate(&spikes.view([t, n, -1])));
        if !keep {
            stages.clear();
        }
        Forward {
            rates,
            stages,
            pooled_from,
            steps: t,
        }
    }

    /// Firing rates `[N, classes]` for an input batch `[N, C, X, Y, T]`, without
    /// gradients: the LIF layers run outside autograd. Equal bit for bit to
    /// [`Net::forward_autograd`]'s rates.
    pub fn forward_fast(&self, xs: &Tensor) -> Tensor {
        if !self.config.lif.is_heaviside() {
            return tch::no_grad(|| self.forward_autograd(xs, false));
        }
        self.forward_staged(xs, false).rates
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
        tch::with_grad(|| {
            if !self.config.lif.is_heaviside() {
                let rates = self.forward_autograd(xs, true);
                let loss = loss_fn(&rates);
                loss.backward();
                return (loss.detach(), rates.detach());
            }
            let forward = self.forward_staged(xs, true);
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
            let [from1, from2] = forward.pooled_from;
            let mut stages = forward.stages;
            let mut grad = Some(grad);
            let mut step = 0;
            while let (Some(stage), Some(g)) = (stages.pop(), grad.take()) {
                let g = match step {
                    // Below the second and the first conv block's pooling.
                    2 => pool_backward(&g, &from2),
                    3 => pool_backward(&g, &from1),
                    _ => g,
                };
                grad = stage.backward(self, g);
                step += 1;
            }
            (loss.detach(), rates.detach())
        })
    }
}

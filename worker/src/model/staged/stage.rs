//! One stage of the staged training pass: its output, the LIF layer run on
//! it by the chosen kernels, and the way back through both.

use tch::Tensor;

use super::memory::{as_layer, in_memory_order, is_channels_last, layout_of};
use super::{LifPath, bias, choose_path, pool, pool_backward};
use crate::lif::cpu;
use crate::lif::fused;
use crate::lif::{LifParams, through_time};
use crate::model::Net;

/// One stage kept for the backward pass.
pub(super) struct Stage {
    /// The stage's output (the LIF layer's input); the root of its graph.
    pub(super) out: Tensor,
    /// The LIF potentials, time-major `[T, ...]`, in `out`'s storage when it
    /// is contiguous or (`channels_last`) stored channels last.
    pub(super) potentials: Tensor,
    /// The stage's detached input that autograd gives a gradient to (none for
    /// the first stage).
    input: Option<Tensor>,
    /// Whether the spikes are pooled 2×2 before the next stage.
    pooled: bool,
    /// The LIF layer's neurons.
    lif: LifParams,
    /// The kernels that ran the LIF layer.
    pub(super) path: LifPath,
    /// Whether `out` and the potentials are stored `[T·N, H, W, C]` (the CPU
    /// kernels on a channels-last convolution's output).
    pub(super) channels_last: bool,
    /// The convolution's bias when it is kept out of `out`'s graph (added by
    /// the fused kernels, see [`bias`]); its gradient is given by hand.
    bias: Option<Tensor>,
}

impl Stage {
    /// Runs the LIF layer on `out` (time folded into the batch, `[T·N, ...]`),
    /// returning the stage and its output: the spikes in `out`'s shape, or,
    /// with `pooled`, the spikes pooled 2×2. On the CPU both happen in one
    /// pass (the CPU or fused kernels); otherwise through [`through_time`] and
    /// libtorch's pooling. The fused kernels add the layer's spikes to
    /// `counter`'s slot, when given.
    ///
    /// # Panics
    /// If the fused kernels fail (forced, or on a device that passed its
    /// check): the training pass turns it into an error.
    pub(super) fn lif(
        net: &Net,
        lif: &LifParams,
        out: Tensor,
        (input, steps, pooled): (Option<Tensor>, i64, bool),
        (counter, bias): (Option<(&Tensor, usize)>, Option<Tensor>),
    ) -> (Stage, Tensor) {
        let shape = out.size();
        let chosen = choose_path(net.lif_kernels, out.device());
        let channels_last = chosen == LifPath::Cpu && is_channels_last(&out);
        let potentials = if channels_last {
            out.detach().permute([0, 2, 3, 1]).view([steps, -1])
        } else {
            out.detach().contiguous().view([steps, -1])
        };
        let one_pass =
            layout_of(&shape, steps, pooled, channels_last).and_then(|layout| match chosen {
                LifPath::Cpu => cpu::forward_tensor(lif, &layout, &potentials),
                LifPath::Fused => fused::forward_with(
                    lif,
                    &layout,
                    &potentials,
                    fused::Extras {
                        tally: counter,
                        bias: bias.as_ref(),
                    },
                )
                .unwrap_or_else(|e| panic!("forward through a LIF layer: {e}")),
                LifPath::Tensor => None,
            });
        let path = if one_pass.is_some() {
            chosen
        } else {
            LifPath::Tensor
        };
        let output = match one_pass {
            Some(flat) if pooled => {
                let (n, c, h, w) = (shape[0], shape[1], shape[2] / 2, shape[3] / 2);
                as_layer(&flat, &[n, c, h, w], channels_last)
            }
            Some(flat) => as_layer(&flat, &shape, channels_last),
            None => {
                if let Some(bias) = &bias {
                    bias::add_to_potentials(&potentials, &shape, bias);
                }
                let spikes = through_time::forward_in_place(lif, &potentials);
                let spikes = as_layer(&spikes, &shape, channels_last);
                if pooled {
                    tch::no_grad(|| pool(&spikes))
                } else {
                    spikes
                }
            }
        };
        (
            Stage {
                out,
                potentials,
                input,
                pooled,
                lif: *lif,
                path,
                channels_last,
                bias,
            },
            output,
        )
    }

    /// Backward through the LIF layer and the stage, given the gradient of the
    /// loss with respect to the stage's output (the pooled spikes when pooled).
    /// Accumulates into the parameters' `.grad` and returns the gradient of
    /// the stage's input, if it has one.
    pub(super) fn backward(self, grad_output: &Tensor) -> Option<Tensor> {
        let lif = &self.lif;
        let shape = self.out.size();
        let steps = self.potentials.size().first().copied().unwrap_or(0);
        let channels_last = self.channels_last;
        let layout = layout_of(&shape, steps, self.pooled, channels_last);
        let bias_channels = self.bias.as_ref().map(Tensor::numel);
        // Whether a kernel ran, and the bias's gradient the fused one summed.
        let (one_pass, bias_grad) = match (layout, self.path) {
            (Some(layout), LifPath::Cpu) => {
                let grad = in_memory_order(grad_output, channels_last);
                (
                    cpu::backward_tensor(lif, &layout, &self.potentials, &grad),
                    None,
                )
            }
            (Some(layout), LifPath::Fused) => {
                match fused::backward_with(
                    lif,
                    &layout,
                    &self.potentials,
                    grad_output,
                    bias_channels,
                ) {
                    Ok(done) => (done.is_some(), done.flatten()),
                    Err(e) => panic!("backward through a LIF layer: {e}"),
                }
            }
            _ => (false, None),
        };
        let grad_out = if one_pass {
            // The kernel left ∂L/∂out in the potentials' storage.
            self.potentials
        } else {
            let grad_spikes = if self.pooled {
                pool_backward(grad_output, &shape)
            } else {
                grad_output.shallow_clone()
            };
            let grad_spikes = in_memory_order(&grad_spikes, channels_last)
                .contiguous()
                .view(self.potentials.size().as_slice());
            through_time::backward_in_place(lif, &self.potentials, &grad_spikes)
        };
        let grad_out = as_layer(&grad_out, &shape, channels_last);
        if let Err(e) = bias::backward(&self.out, &grad_out, self.bias.as_ref(), bias_grad) {
            panic!("backward through a stage of the network: {e}");
        }
        drop(grad_out);
        self.input.map(|input| input.grad())
    }
}

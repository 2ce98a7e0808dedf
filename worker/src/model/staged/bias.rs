//! A convolution's bias run inside the fused LIF kernels: the convolution
//! before a LIF layer runs without its bias, the forward kernel adds it to
//! each input (one rounding, as the convolution's own addition), and the
//! backward kernel sums each window's input gradients, so the bias's
//! gradient is a reduction over a value per window instead of a pass over the
//! layer's gradient. Only on the fused path, in float32
//! ([`Net::fusable_conv_bias`]).

use tch::{Kind, TchError, Tensor};

use crate::autograd::{accumulate_grad, backward_with_grad};
use crate::model::Net;

/// Layers `range` on a time-folded tensor, the last without its bias when
/// `bias_inside` (the kernels add it).
pub(super) fn stage_output(
    net: &Net,
    range: std::ops::RangeInclusive<usize>,
    h: &Tensor,
    bias_inside: bool,
) -> Tensor {
    let (start, end) = (*range.start(), *range.end());
    if !bias_inside {
        return net.apply_range(range, h);
    }
    let before = if start < end {
        net.apply_range(start..=end - 1, h)
    } else {
        h.shallow_clone()
    };
    net.apply_without_bias(end, &before)
}

/// Adds `bias` to the potentials of a layer of `shape` (`[T·N, C, H, W]`,
/// stored so) where the fused kernels did not run: the tensor path then sees
/// the convolution's output as with its bias.
pub(super) fn add_to_potentials(potentials: &Tensor, shape: &[i64], bias: &Tensor) {
    let channels = bias.numel() as i64;
    tch::no_grad(|| {
        let mut layer = potentials.view(shape);
        let _ = layer.g_add_(&bias.view([1, channels, 1, 1]));
    });
}

/// Autograd through a stage from `grad_out`, the gradient of its output
/// `out`; a bias kept out of the stage's graph gets its gradient too: the
/// kernels' per-window sums added per channel, or (where the tensor path ran)
/// `grad_out` summed over all but the channels, as the convolution would.
pub(super) fn backward(
    out: &Tensor,
    grad_out: &Tensor,
    bias: Option<&Tensor>,
    from_kernels: Option<Tensor>,
) -> Result<(), TchError> {
    backward_with_grad(out, grad_out)?;
    let Some(bias) = bias else {
        return Ok(());
    };
    let grad = match from_kernels {
        Some(grad) => grad,
        None => grad_out.sum_dim_intlist(&[0i64, 2, 3][..], false, Kind::Float),
    };
    accumulate_grad(bias, grad)
}

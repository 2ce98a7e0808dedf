//! How a stage's values are stored for the LIF kernels: the layout the
//! kernels read (a plane per channel, or channels last as a CPU convolution
//! leaves its output) and the views between it and the layer's shape.

use tch::Tensor;

use crate::lif::cpu::Layout;

/// The kernels' layout of a stage's output `[T·N, C, H, W]` or `[T·N, F]`,
/// stored `[T·N, H, W, C]` when `channels_last`.
pub(super) fn layout_of(
    shape: &[i64],
    steps: i64,
    pool: bool,
    channels_last: bool,
) -> Option<Layout> {
    let to = |v: i64| usize::try_from(v).ok();
    let steps_u = to(steps)?;
    let (channels, height, width) = match shape {
        [_, c, h, w] if channels_last => (to(*c)?, to(*h)?, to(*w)?),
        [_, _, h, w] => (1, to(*h)?, to(*w)?),
        _ => (1, 1, 1),
    };
    let total = to(shape.iter().product())?;
    let planes = total.checked_div(steps_u * height * width * channels)?;
    Some(Layout {
        steps: steps_u,
        planes,
        height,
        width,
        channels,
        pool,
    })
}

/// Whether `t` is `[B, C, H, W]` stored channels last (and not also
/// contiguous as it is, as one channel or a 1×1 plane would be).
pub(super) fn is_channels_last(t: &Tensor) -> bool {
    t.dim() == 4 && !t.is_contiguous() && t.permute([0, 2, 3, 1]).is_contiguous()
}

/// A layer's values from `flat`, stored in the order of a layer of `shape`
/// (`[B, C, H, W]`), or in `[B, H, W, C]` order when `channels_last`.
pub(super) fn as_layer(flat: &Tensor, shape: &[i64], channels_last: bool) -> Tensor {
    match shape {
        &[b, c, h, w] if channels_last => flat.view([b, h, w, c]).permute([0, 3, 1, 2]),
        _ => flat.view(shape),
    }
}

/// `t` (`[B, C, H, W]`) in the memory order of `as_layer`'s `channels_last`.
pub(super) fn in_memory_order(t: &Tensor, channels_last: bool) -> Tensor {
    if channels_last {
        t.permute([0, 2, 3, 1])
    } else {
        t.shallow_clone()
    }
}

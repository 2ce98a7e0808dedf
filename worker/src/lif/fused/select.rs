//! Which LIF kernels a layer runs on, and the check a CUDA device passes
//! before the fused kernels are trusted there.
//!
//! The first time a process uses a CUDA device, [`cuda_ready`] compiles and
//! loads the fused kernels and runs them beside the tensor path on a small
//! input on that device: the spikes and their count must be equal and the
//! gradients (a convolution's bias's among them) within
//! [`GRADIENT_TOLERANCE`] (libtorch's CUDA division by a scalar multiplies by
//! the reciprocal, one rounding the kernels do not make). On a compile, launch
//! or comparison failure it logs one line and the device keeps the tensor
//! path.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use super::{Extras, backward_with, forward_with};
use crate::lif::cpu::Layout;
use crate::lif::{LifParams, through_time};

/// Which kernels run the LIF layers (`worker --lif-kernels`, carried as a
/// value through each job's settings to its network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LifKernels {
    /// The fastest that is checked: the CPU kernels on the CPU, the fused
    /// kernels on a CUDA device that passed its first-use check, else the
    /// tensor path.
    #[default]
    Auto,
    /// The fused kernels, wherever the layer is (their C++ form on the CPU);
    /// a failure is an error, not a fallback.
    Fused,
    /// libtorch tensor operations through time (`lif::through_time`).
    Tensor,
}

/// Largest gradient difference the first-use check accepts, relative to the
/// largest gradient.
pub const GRADIENT_TOLERANCE: f64 = 1e-5;

/// Devices checked so far, and whether they passed.
static CHECKED: Mutex<BTreeMap<usize, bool>> = Mutex::new(BTreeMap::new());

/// Whether CUDA device `index` runs the fused kernels: compiled, loaded and
/// checked against the tensor path the first time (one log line either way).
pub fn cuda_ready(index: usize) -> bool {
    if let Some(&ready) = CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&index)
    {
        return ready;
    }
    // Not under the lock: the check runs kernels, and another device's
    // check may run meanwhile. Two threads may check one device at once;
    // both reach the same answer.
    let outcome = without_panic(|| self_check(Device::Cuda(index)));
    let ready = match &outcome {
        Ok(()) => {
            tracing::info!(
                device = index,
                "fused LIF kernels checked against the tensor path; using them"
            );
            true
        }
        Err(why) => {
            tracing::warn!(
                device = index,
                "fused LIF kernels not used on this device: {why}"
            );
            false
        }
    };
    CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(index, ready);
    ready
}

/// Runs `check`, turning a panic (a tch call whose libtorch error it does not
/// return, as after a broken CUDA context) into its error: the device then
/// keeps the tensor path instead of the worker going down.
pub fn without_panic(check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("a panic without a message");
            Err(format!(
                "the check panicked: {}",
                what.lines().next().unwrap_or_default()
            ))
        }
    }
}

/// Runs the fused kernels and the tensor path on `device` over small layers
/// (pooled with odd sizes, and fully connected) and compares them.
pub fn self_check(device: Device) -> Result<(), String> {
    if let Device::Cuda(index) = device {
        super::cuda_prepare(index).map_err(|e| e.to_string())?;
    }
    let params = LifParams::default();
    let layouts = [
        Layout {
            steps: 7,
            planes: 3,
            height: 5,
            width: 6,
            channels: 1,
            pool: true,
        },
        Layout {
            steps: 4,
            planes: 10,
            height: 1,
            width: 1,
            channels: 1,
            pool: false,
        },
    ];
    // The pooled layer as a convolution's of 3 channels (its bias inside the
    // kernels), the fully connected one without a bias; both tallied.
    compare_on(device, &params, &layouts[0], Some(3))?;
    compare_on(device, &params, &layouts[1], None)
}

/// Deterministic values in `[low, low + span)` (no random generator: the check
/// must not move the process's global one).
fn ramp(len: usize, low: f64, span: f64, device: Device) -> Tensor {
    let values: Vec<f32> = (0..len)
        .map(|i| {
            let unit = ((i * 7919 + 13) % 1009) as f64 / 1009.0;
            #[allow(clippy::cast_possible_truncation)]
            let v = (low + span * unit) as f32;
            v
        })
        .collect();
    Tensor::from_slice(&values).to_device(device)
}

/// The fused kernels against the tensor path on one layer: spikes, the
/// tally's count, input gradients and (with a bias of `channels` values,
/// added inside the kernels and beforehand for the tensor path) the bias's
/// gradient against the input gradients' per-channel sums.
fn compare_on(
    device: Device,
    params: &LifParams,
    layout: &Layout,
    channels: Option<i64>,
) -> Result<(), String> {
    let steps = i64::try_from(layout.steps).map_err(|e| e.to_string())?;
    let input = ramp(layout.len(), -0.1, 0.8, device);
    let upstream = ramp(layout.out_len(), -1.0, 2.0, device);
    let bias = channels.map(|c| ramp(c as usize, -0.2, 0.4, device));
    // [T, samples, channels, values of a plane], for the bias.
    let by_channel = |t: &Tensor, c: i64| t.view([steps, -1, c, t.numel() as i64 / steps / c]);

    let fused_u = input.copy();
    let tally = Tensor::zeros([1], (Kind::Int64, device));
    let extras = Extras {
        tally: Some((&tally, 0)),
        bias: bias.as_ref(),
    };
    let fused_out = forward_with(params, layout, &fused_u, extras)
        .map_err(|e| e.to_string())?
        .ok_or("the fused kernels did not take the check's layer")?;
    let tensor_u = match (&bias, channels) {
        (Some(b), Some(c)) => (by_channel(&input, c) + b.view([1, 1, c, 1])).view([steps, -1]),
        _ => input.copy().view([steps, -1]),
    };
    let spikes = through_time::forward_in_place(params, &tensor_u);
    let tensor_out = pooled(&spikes, layout)?;
    if !fused_out.view([-1]).equal(&tensor_out.view([-1])) {
        return Err(format!("spikes differ from the tensor path ({layout:?})"));
    }
    let counted = tally.int64_value(&[0]);
    let spiked = spikes.sum(Kind::Int64).int64_value(&[]);
    if counted != spiked {
        return Err(format!(
            "the kernels counted {counted} spikes, the tensor path {spiked} ({layout:?})"
        ));
    }

    let grad_fused = upstream.copy();
    let done = backward_with(
        params,
        layout,
        &fused_u,
        &grad_fused,
        channels.map(|c| c as usize),
    )
    .map_err(|e| e.to_string())?
    .ok_or("the fused backward did not take the check's layer")?;
    let grad_spikes = unpooled(&upstream, layout)?;
    let reference = through_time::backward_in_place(params, &tensor_u, &grad_spikes);
    within_tolerance(&fused_u, &reference, "input gradients", layout)?;
    if let (Some(got), Some(c)) = (done, channels) {
        let want = by_channel(&reference, c).sum_dim_intlist(&[0i64, 1, 3][..], false, Kind::Float);
        within_tolerance(&got, &want, "bias gradients", layout)?;
    }
    Ok(())
}

/// `got` within [`GRADIENT_TOLERANCE`] of `want`'s largest value (NaN fails).
fn within_tolerance(
    got: &Tensor,
    want: &Tensor,
    what: &str,
    layout: &Layout,
) -> Result<(), String> {
    let scale = want.abs().max().double_value(&[]).max(1e-30);
    let diff = (got.view([-1]) - want.view([-1]))
        .abs()
        .max()
        .double_value(&[]);
    // NaN counts as a difference.
    if diff.is_nan() || diff > GRADIENT_TOLERANCE * scale {
        return Err(format!(
            "{what} differ from the tensor path by {diff:e} (largest {scale:e}, {layout:?})"
        ));
    }
    Ok(())
}

/// The tensor path's output: the spikes, pooled 2×2 when the layout says.
fn pooled(spikes: &Tensor, layout: &Layout) -> Result<Tensor, String> {
    if !layout.pool {
        return Ok(spikes.shallow_clone());
    }
    let [t, p, h, w] = dims(layout)?;
    Ok(spikes
        .view([t * p, 1, h, w])
        .avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None))
}

/// The tensor path's gradient of the spikes from the output's.
fn unpooled(grad: &Tensor, layout: &Layout) -> Result<Tensor, String> {
    let [t, p, h, w] = dims(layout)?;
    if !layout.pool {
        return Ok(grad.copy().view([t, -1]));
    }
    let shape = Tensor::zeros([t * p, 1, h, w], (Kind::Float, grad.device()));
    Ok(shape
        .avg_pool2d_backward(
            &grad.view([t * p, 1, h / 2, w / 2]),
            [2, 2],
            [2, 2],
            [0, 0],
            false,
            true,
            None,
        )
        .view([t, -1]))
}

fn dims(layout: &Layout) -> Result<[i64; 4], String> {
    let v = |x: usize| i64::try_from(x).map_err(|e| e.to_string());
    Ok([
        v(layout.steps)?,
        v(layout.planes)?,
        v(layout.height)?,
        v(layout.width)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_that_panics_is_a_failed_check() {
        let r = without_panic(|| {
            let t = Tensor::from_slice(&[1.0f32, 2.0]);
            // Panics inside tch: a shape that does not fit.
            let _ = t.view([3]);
            Ok(())
        });
        assert!(r.as_ref().is_err_and(|e| e.contains("panicked")), "{r:?}");
        assert_eq!(without_panic(|| Ok(())), Ok(()));
        assert_eq!(without_panic(|| Err("no".into())), Err("no".to_owned()));
    }
}

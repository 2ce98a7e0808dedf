//! LIF neurons run through time outside autograd, with the STBP gradient through
//! time written by hand (DESIGN.md, "STBP semantics").
//!
//! [`LifParams::run`] builds an autograd graph of about a dozen small nodes per
//! time step. Here the forward pass is a loop of four in-place operations per
//! step on a time-major buffer and records nothing: the buffer ends up holding
//! the potentials `u_t`, and every other quantity the backward pass needs (the
//! spikes `o_t = 1{u_t > V_th}` and the surrogate window
//! `m_t = 1{|u_t − V_th| < a/2}`) is recomputed from them, bit for bit, with the
//! same operations.
//!
//! Backward, per neuron, with `g_t = ∂L/∂o_t` from the layers above and
//! `δ_t = ∂L/∂u_t` (so `∂L/∂x_t = δ_t`):
//!
//! `δ_t = (g_t − δ_{t+1} · τ u_t) · m_t / a + δ_{t+1} · τ (1 − o_t)`, `δ_T = 0`,
//!
//! the first term through the spike (the surrogate, including the reset term
//! `−τ u_t` by which `o_t` enters `u_{t+1}`), the second through the leak. It is
//! rewritten `δ_t = A_t + δ_{t+1} · B_t` with `A = g · m / a` and
//! `B = τ (1 − o) − τ u · m / a`, both computed for all steps at once, so the
//! recurrence itself is one fused multiply-add per step.
//!
//! Only the [`SpikeFn::Heaviside`](crate::lif::SpikeFn::Heaviside) neuron is
//! handled here; callers fall back to the autograd path for the others.

use tch::{Kind, Tensor};

use crate::lif::LifParams;

/// Time steps processed together when the backward coefficients are formed:
/// bounds the temporaries to this many steps of one layer.
const CHUNK_STEPS: i64 = 8;

/// Runs the neurons forward in place. `u` is time-major and contiguous,
/// `[T, ...]`: on entry it holds the inputs `x_t`, on return the potentials
/// `u_t` (what [`backward_in_place`] needs). Returns the spikes `o_t`, same shape
/// and kind as `u`.
///
/// Runs without autograd; the potentials equal those of [`LifParams::run`] bit
/// for bit (up to the sign of zero), so the spikes are identical.
pub fn forward_in_place(params: &LifParams, u: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let steps = u.size().first().copied().unwrap_or(0);
        if steps == 0 {
            return u.zeros_like();
        }
        let slices = u.unbind(0);
        let mut decayed = slices[0].empty_like();
        let fired = Tensor::empty(slices[0].size(), (Kind::Bool, u.device()));
        for t in 1..slices.len() {
            let prev = &slices[t - 1];
            // (u_{t−1} · τ) · (1 − o_{t−1}): the product itself where the neuron
            // did not fire, zero where it did.
            let _ = prev.gt_scalar_out(&fired, params.vth);
            let _ = prev.mul_scalar_out(&decayed, params.tau);
            let _ = decayed.masked_fill_(&fired, 0.0);
            let mut current = slices[t].shallow_clone();
            let _ = current.g_add_(&decayed);
        }
        u.gt(params.vth).to_kind(u.kind())
    })
}

/// The STBP backward pass through time. `u` holds the potentials left by
/// [`forward_in_place`] and `grad` the gradient of the loss with respect to the
/// spikes, both time-major, contiguous, `[T, ...]` and of one shape. Returns the
/// gradient with respect to the inputs `x_t`, in `grad`'s storage; `u` is
/// overwritten (it holds the coefficients `B` on return).
pub fn backward_in_place(params: &LifParams, u: &Tensor, grad: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let steps = u.size().first().copied().unwrap_or(0);
        if steps == 0 {
            return grad.shallow_clone();
        }
        let chunks = (steps + CHUNK_STEPS - 1) / CHUNK_STEPS;
        for (u_c, g_c) in u.chunk(chunks, 0).into_iter().zip(grad.chunk(chunks, 0)) {
            coefficients(params, u_c, g_c);
        }
        // δ_{T−1} = A_{T−1}; δ_t = A_t + δ_{t+1} · B_t.
        let deltas = grad.unbind(0);
        let coeffs = u.unbind(0);
        for t in (0..deltas.len().saturating_sub(1)).rev() {
            let mut delta = deltas[t].shallow_clone();
            let _ = delta.addcmul_(&deltas[t + 1], &coeffs[t]);
        }
        grad.shallow_clone()
    })
}

/// Turns potentials `u` into `B = τ (1 − o) − τ u · m / a` and upstream
/// gradients `g` into `A = g · m / a`, in place, for a run of steps.
fn coefficients(params: &LifParams, mut u: Tensor, mut g: Tensor) {
    // The same operations as the forward pass and `LifParams::spike`, so the
    // spikes and the window are exactly those of the forward pass.
    let fired = u.gt(params.vth);
    let window = (&u - params.vth).abs_().lt(params.a / 2.0);
    let _ = g.g_div_scalar_(params.a).g_mul_(&window);
    let _ = u
        .g_mul_scalar_(params.tau)
        .g_mul_(&window)
        .g_div_scalar_(params.a)
        .neg_();
    let mut leak = fired.logical_not().to_kind(u.kind());
    let _ = u.g_add_(&leak.g_mul_scalar_(params.tau));
}

//! Leaky integrate-and-fire (LIF) neurons with STBP's rectangular surrogate
//! gradient (DESIGN.md, "STBP semantics").
//!
//! Per neuron, with `u₋₁ = 0` and `o₋₁ = 0`:
//! `u_t = τ · u_{t−1} · (1 − o_{t−1}) + x_t` and `o_t = 1{u_t > V_th}`.
//! Backward, `∂o_t/∂u_t = (1/a) · 1{|u_t − V_th| < a/2}`; gradients flow through
//! both `u_{t−1}` and the reset term `o_{t−1}`, as in the reference.

use serde::{Deserialize, Serialize};
use tch::Tensor;

pub mod cpu;
pub mod fused;
pub mod through_time;

/// How a membrane potential becomes a spike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpikeFn {
    /// The STBP neuron: a Heaviside step forward, the rectangular surrogate backward.
    #[default]
    Heaviside,
    /// A smooth stand-in, `sigmoid(slope · (u − V_th))`, forward and backward alike.
    /// Only for checking the network's gradient against finite differences.
    Sigmoid {
        /// Steepness of the sigmoid.
        slope: f64,
    },
}

/// LIF neuron parameters (`[simulation]` of the config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifParams {
    /// Membrane decay factor τ.
    pub tau: f64,
    /// Firing threshold V_th.
    pub vth: f64,
    /// Width `a` of the rectangular surrogate gradient.
    pub a: f64,
    /// The spike function (the STBP Heaviside unless a test asks otherwise).
    #[serde(default)]
    pub spike: SpikeFn,
}

impl Default for LifParams {
    fn default() -> Self {
        Self {
            tau: 0.3,
            vth: 0.3,
            a: 0.5,
            spike: SpikeFn::Heaviside,
        }
    }
}

impl LifParams {
    /// Whether the neuron is the STBP Heaviside one (the only one
    /// [`through_time`] handles).
    pub fn is_heaviside(&self) -> bool {
        self.spike == SpikeFn::Heaviside
    }

    /// The spike output `o` for membrane potentials `u`.
    ///
    /// With `train` (and the Heaviside spike) the result carries the surrogate
    /// gradient: `o = h + (s − s.detach())` with `h = 1{u > V_th}` (no gradient)
    /// and `s = (u − V_th)/a · m`, `m = 1{|u − V_th| < a/2}` (a constant mask), so
    /// the forward value is exactly `h` and `∂o/∂u = m/a` exactly, strict
    /// inequality at the edges included. Without `train` only `h` is computed.
    pub fn spike(&self, u: &Tensor, train: bool) -> Tensor {
        match self.spike {
            SpikeFn::Heaviside => {
                let h = u.gt(self.vth).to_kind(u.kind());
                if !train {
                    return h;
                }
                let centred = u - self.vth;
                let mask = centred.detach().abs().lt(self.a / 2.0).to_kind(u.kind());
                let s = centred * mask / self.a;
                h + (&s - s.detach())
            }
            SpikeFn::Sigmoid { slope } => ((u - self.vth) * slope).sigmoid(),
        }
    }

    /// One membrane update: `u_t = τ · u_{t−1} · (1 − o_{t−1}) + x_t`, computed in
    /// the reference's operation order.
    pub fn membrane(&self, u_prev: &Tensor, o_prev: &Tensor, x: &Tensor) -> Tensor {
        (u_prev * self.tau) * (o_prev.neg() + 1.0) + x
    }

    /// Runs the neurons over time under autograd (the reference implementation;
    /// [`through_time`] is the fast one). `x` is time-major, `[T, ...]`; returns
    /// the spikes with the same shape. Only this recurrence loops over time; the
    /// layers around it see time folded into the batch.
    pub fn run(&self, x: &Tensor, train: bool) -> Tensor {
        let steps = x.size().first().copied().unwrap_or(0);
        let mut outputs = Vec::with_capacity(usize::try_from(steps).unwrap_or(0));
        let mut state: Option<(Tensor, Tensor)> = None;
        for t in 0..steps {
            let xt = x.select(0, t);
            // u₋₁ = 0, so the first potential is the input itself.
            let u = match &state {
                None => xt,
                Some((u_prev, o_prev)) => self.membrane(u_prev, o_prev, &xt),
            };
            let o = self.spike(&u, train);
            outputs.push(o.shallow_clone());
            state = Some((u, o));
        }
        if outputs.is_empty() {
            return x.zeros_like();
        }
        Tensor::stack(&outputs, 0)
    }
}

/// The network's output: spike count over time divided by the number of steps.
/// `spikes` is time-major `[T, N, classes]`; returns `[N, classes]`.
pub fn rate(spikes: &Tensor) -> Tensor {
    let steps = spikes.size().first().copied().unwrap_or(1).max(1);
    spikes.sum_dim_intlist(0, false, spikes.kind()) / steps
}

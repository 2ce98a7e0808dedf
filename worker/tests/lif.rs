//! One LIF neuron's forward values and surrogate gradient against values
//! computed by hand (DESIGN.md, "STBP semantics").

use spikecv_worker::lif::{LifParams, SpikeFn};
use tch::{Device, Kind, Tensor};

fn params() -> LifParams {
    LifParams {
        tau: 0.3,
        vth: 0.3,
        a: 0.5,
        spike: SpikeFn::Heaviside,
    }
}

/// Runs neurons on inputs `[T, neurons]`; returns spikes and dL/dx for
/// L = sum of all spikes.
fn run(inputs: &[[f64; 2]]) -> (Vec<f64>, Vec<f64>) {
    let flat: Vec<f64> = inputs.iter().flatten().copied().collect();
    let x = Tensor::from_slice(&flat)
        .view([inputs.len() as i64, 2])
        .to_kind(Kind::Double)
        .set_requires_grad(true);
    let o = params().run(&x, true);
    o.sum(Kind::Double).backward();
    let to_vec = |t: &Tensor| {
        let t = t.flatten(0, -1);
        (0..t.size()[0])
            .map(|i| t.double_value(&[i]))
            .collect::<Vec<_>>()
    };
    (to_vec(&o), to_vec(&x.grad()))
}

#[test]
fn surrogate_gradient_matches_hand_computation() {
    // Neuron 0: x = [0.2, 0.4, 0.5]. u = [0.2, 0.46, 0.5], o = [0, 1, 1]; all
    // three potentials are within a/2 = 0.25 of V_th, so every ∂o/∂u is 1/a = 2.
    //   dL/du2 = 2
    //   dL/do1 = 1 + dL/du2 · (−τ u1) = 1 − 2 · 0.3 · 0.46 = 0.724
    //   dL/du1 = dL/do1 · 2 + dL/du2 · τ (1 − o1) = 1.448
    //   dL/do0 = 1 + dL/du1 · (−τ u0) = 1 − 1.448 · 0.06 = 0.91312
    //   dL/du0 = dL/do0 · 2 + dL/du1 · τ (1 − o0) = 1.82624 + 0.4344 = 2.26064
    // Neuron 1: x = [0.9, 0.0, 0.1]. u = [0.9, 0, 0.1], o = [1, 0, 0]; only u2 is
    // inside the window.
    //   dL/du2 = 2, dL/do1 = 1 − 2 τ u1 = 1, dL/du1 = 1 · 0 + 2 τ (1 − o1) = 0.6
    //   dL/do0 = 1 − 0.6 τ u0 = 0.838, dL/du0 = 0.838 · 0 + 0.6 τ (1 − o0) = 0
    let (spikes, grad) = run(&[[0.2, 0.9], [0.4, 0.0], [0.5, 0.1]]);
    assert_eq!(spikes, vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
    let expected = [2.26064, 0.0, 1.448, 0.6, 2.0, 2.0];
    for (g, e) in grad.iter().zip(expected) {
        assert!((g - e).abs() < 1e-12, "gradient {grad:?} != {expected:?}");
    }
}

#[test]
fn surrogate_window_is_open_at_its_edges() {
    // |u − V_th| < a/2 is strict: exactly at V_th ± a/2 the gradient is zero.
    let p = LifParams {
        vth: 0.5,
        a: 0.5,
        ..params()
    };
    let u = Tensor::from_slice(&[0.75f64, 0.25, 0.7499, 0.2501, 0.5]).set_requires_grad(true);
    p.spike(&u, true).sum(Kind::Double).backward();
    let g: Vec<f64> = (0..5).map(|i| u.grad().double_value(&[i])).collect();
    assert_eq!(g, vec![0.0, 0.0, 2.0, 2.0, 2.0]);
}

#[test]
fn forward_value_is_exactly_the_step() {
    let u = Tensor::from_slice(&[0.3f32, 0.30001, -1.0, 5.0]).to_device(Device::Cpu);
    let train = params().spike(&u.set_requires_grad(true), true);
    let eval = params().spike(&u, false);
    for i in 0..4 {
        assert_eq!(train.double_value(&[i]), eval.double_value(&[i]));
    }
    assert_eq!(
        (0..4).map(|i| eval.double_value(&[i])).collect::<Vec<_>>(),
        vec![0.0, 1.0, 0.0, 1.0]
    );
}

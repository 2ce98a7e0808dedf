//! Proves the libtorch toolchain: a conv forward and backward on the CPU, with
//! the autograd gradient checked against a central finite difference.

use tch::{Device, Kind, Tensor};

#[test]
fn conv_gradient_matches_finite_difference() {
    let opts = (Kind::Double, Device::Cpu);
    tch::manual_seed(7);
    let x = Tensor::randn([1, 2, 6, 6], opts);
    let w = Tensor::randn([3, 2, 3, 3], opts).set_requires_grad(true);
    let b = Tensor::randn([3], opts);

    let loss = |w: &Tensor| {
        x.conv2d(w, Some(&b), [1, 1], [0, 0], [1, 1], 1)
            .pow_tensor_scalar(2)
            .sum(Kind::Double)
    };
    let y = loss(&w);
    y.backward();
    let grad = w.grad();

    let eps = 1e-6;
    let flat = w.detach().flatten(0, -1);
    let mut max_err = 0f64;
    for i in 0..flat.size()[0] {
        let bump = |delta: f64| {
            let p = flat.copy();
            let _ = p.get(i).fill_(flat.double_value(&[i]) + delta);
            loss(&p.view([3, 2, 3, 3])).double_value(&[])
        };
        let numeric = (bump(eps) - bump(-eps)) / (2.0 * eps);
        let analytic = grad.flatten(0, -1).double_value(&[i]);
        max_err = max_err.max((numeric - analytic).abs() / analytic.abs().max(1.0));
    }
    assert!(
        max_err < 1e-6,
        "gradient differs from finite difference by {max_err}"
    );
    assert!(
        grad.abs().sum(Kind::Double).double_value(&[]) > 0.0,
        "gradient is zero"
    );
}

//! The engine against golden values from an independent PyTorch implementation
//! written the reference way (`tests/fixtures/stbp_golden.py`): PyTorch's
//! initialisation for a seed, forward rates, gradients, and three Adam and SGD
//! steps on a 10×12 input; then the real 128×128 shapes once (batch 1, T = 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use spikecv_common::experiment::sections::OptimizerKind;
use spikecv_worker::model::{Net, NetConfig, PARAM_NAMES, with_seed};
use spikecv_worker::optim::Optimizer;
use spikecv_worker::weights::read_tensors;
use tch::{Device, Kind, Reduction, Tensor};

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    read_tensors(&path).unwrap().0
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    let d = max_abs_diff(a, b);
    assert!(d <= tol, "{what}: max |diff| {d:e} > {tol:e}");
}

fn small_config() -> NetConfig {
    NetConfig {
        width: 10,
        height: 12,
        ..NetConfig::default()
    }
}

fn train_steps(
    g: &HashMap<String, Tensor>,
    kind: OptimizerKind,
    lr: f64,
) -> (Net, Vec<f64>, Tensor, Vec<Tensor>) {
    let (_vs, net) = Net::seeded(small_config(), 0, Device::Cpu);
    let x = &g["input"];
    let target = g["labels"].onehot(19).to_kind(Kind::Float);
    let params: Vec<Tensor> = net.parameters();
    let refs: Vec<&Tensor> = params.iter().collect();
    let mut opt = Optimizer::new(kind, lr, 0.9, &refs);
    let mut losses = Vec::new();
    let mut first_rates = None;
    let mut first_grads = Vec::new();
    for step in 0..3 {
        let rates = net.forward_t(x, true);
        let loss = rates.mse_loss(&target, Reduction::Mean);
        Optimizer::zero_grad(&refs);
        loss.backward();
        if step == 0 {
            first_rates = Some(rates.detach().copy());
            first_grads = refs.iter().map(|p| p.grad().copy()).collect();
        }
        opt.step(&refs);
        losses.push(loss.double_value(&[]));
    }
    // Keep the var store alive with the net by leaking nothing: the tensors are
    // reference counted, so the net's parameters outlive `_vs`.
    (net, losses, first_rates.unwrap(), first_grads)
}

#[test]
fn initialisation_equals_pytorch_for_the_seed() {
    let g = fixture("stbp_golden_small.safetensors");
    let (_vs, net) = Net::seeded(small_config(), 0, Device::Cpu);
    for (name, p) in net.named_parameters() {
        let expected = &g[&format!("init.{name}")];
        assert!(
            p.equal(expected),
            "{name} differs from torch.manual_seed(0); SLANIMALSNet()"
        );
    }
}

#[test]
fn forward_matches_pytorch() {
    let g = fixture("stbp_golden_small.safetensors");
    let (_vs, net) = Net::seeded(small_config(), 0, Device::Cpu);
    let rates = tch::no_grad(|| net.forward_t(&g["input"], false));
    assert_close("eval rates", &rates, &g["eval_rates"], 1e-6);
}

#[test]
fn gradients_and_adam_steps_match_pytorch() {
    let g = fixture("stbp_golden_small.safetensors");
    let (net, losses, rates, grads) = train_steps(&g, OptimizerKind::Adam, 1e-3);
    assert_close("train rates", &rates, &g["rates"], 1e-6);
    for (name, grad) in PARAM_NAMES.iter().zip(&grads) {
        let expected = &g[&format!("grad.{name}")];
        let scale = expected.abs().max().double_value(&[]).max(1e-6);
        assert_close(
            &format!("grad {name}"),
            &(grad / scale),
            &(expected / scale),
            1e-5,
        );
    }
    let expected_losses = &g["adam_losses"];
    for (i, l) in losses.iter().enumerate() {
        let e = expected_losses.double_value(&[i as i64]);
        assert!((l - e).abs() < 1e-6, "Adam loss {i}: {l} vs {e}");
    }
    for (name, p) in net.named_parameters() {
        assert_close(
            &format!("Adam step 3 {name}"),
            p,
            &g[&format!("adam3.{name}")],
            1e-6,
        );
    }
}

#[test]
fn sgd_momentum_steps_match_pytorch() {
    let g = fixture("stbp_golden_small.safetensors");
    let (net, losses, _, _) = train_steps(&g, OptimizerKind::Sgd, 0.05);
    for (i, l) in losses.iter().enumerate() {
        let e = g["sgd_losses"].double_value(&[i as i64]);
        assert!((l - e).abs() < 1e-6, "SGD loss {i}: {l} vs {e}");
    }
    for (name, p) in net.named_parameters() {
        assert_close(
            &format!("SGD step 3 {name}"),
            p,
            &g[&format!("sgd3.{name}")],
            1e-6,
        );
    }
}

#[test]
fn real_shapes_match_pytorch() {
    let g = fixture("stbp_golden_128.safetensors");
    let (_vs, net) = Net::seeded(NetConfig::default(), 0, Device::Cpu);
    for (name, p) in net.named_parameters() {
        let flat = p.detach().flatten(0, -1);
        let head = flat.narrow(0, 0, flat.size()[0].min(64));
        assert!(
            head.equal(&g[&format!("init_head.{name}")]),
            "{name} init head"
        );
        let sum = p
            .detach()
            .to_kind(Kind::Double)
            .abs()
            .sum(Kind::Double)
            .double_value(&[]);
        let e = g[&format!("init_abs_sum.{name}")].double_value(&[0]);
        assert!(
            (sum - e).abs() <= 1e-9 * e,
            "{name} init |sum| {sum} vs {e}"
        );
    }
    let x = with_seed(1, || {
        (Tensor::rand([1, 2, 128, 128, 3], (Kind::Float, Device::Cpu)) * 4.0).floor()
    });
    let target = Tensor::from_slice(&[7i64]).onehot(19).to_kind(Kind::Float);
    let rates = net.forward_t(&x, true);
    let loss = rates.mse_loss(&target, Reduction::Mean);
    loss.backward();
    assert_close("128 rates", &rates, &g["rates"], 1e-6);
    assert!((loss.double_value(&[]) - g["loss"].double_value(&[0])).abs() < 1e-7);
    for (name, p) in net.named_parameters() {
        let sum = p
            .grad()
            .to_kind(Kind::Double)
            .abs()
            .sum(Kind::Double)
            .double_value(&[]);
        let e = g[&format!("grad_abs_sum.{name}")].double_value(&[0]);
        assert!(
            (sum - e).abs() <= 1e-4 * e.max(1e-12),
            "{name} |grad| sum {sum} vs {e}"
        );
        if let Some(full) = g.get(&format!("grad.{name}")) {
            let scale = full.abs().max().double_value(&[]).max(1e-9);
            assert_close(
                &format!("128 grad {name}"),
                &(p.grad() / scale),
                &(full / scale),
                1e-5,
            );
        }
    }
}

//! The LIF layers run outside autograd (`lif::through_time`, `Net::forward_backward`)
//! against the autograd reference (`LifParams::run`, `Net::forward_autograd`):
//! one neuron's gradient by hand, the PyTorch golden gradients, and the whole
//! network at full size, T = 50, in double precision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use spikecv_worker::lif::{LifParams, SpikeFn, through_time};
use spikecv_worker::model::{Net, NetConfig, PARAM_NAMES, with_seed};
use spikecv_worker::optim::Optimizer;
use spikecv_worker::weights::read_tensors;
use tch::{Device, Kind, Reduction, Tensor, nn};

fn params_of(net: &Net) -> Vec<Tensor> {
    net.parameters()
}

fn grads_of(params: &[Tensor]) -> Vec<Tensor> {
    params.iter().map(|p| p.grad().copy()).collect()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-30);
    (a - b).abs().max().double_value(&[]) / scale
}

#[test]
fn one_neuron_by_hand() {
    // The values of tests/lif.rs: L = Σ spikes, so ∂L/∂o_t = 1.
    let x = Tensor::from_slice(&[0.2f64, 0.9, 0.4, 0.0, 0.5, 0.1]).view([3, 2]);
    let p = LifParams::default();
    let u = x.copy();
    let spikes = through_time::forward_in_place(&p, &u);
    let flat = |t: &Tensor| Vec::<f64>::try_from(t.flatten(0, -1)).unwrap();
    assert_eq!(flat(&spikes), vec![0.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
    let expected_u = [0.2, 0.9, 0.46, 0.0, 0.5, 0.1];
    for (got, want) in flat(&u).iter().zip(expected_u) {
        assert!((got - want).abs() < 1e-15, "potentials {:?}", flat(&u));
    }
    let grad = through_time::backward_in_place(&p, &u, &x.ones_like());
    let expected = [2.26064, 0.0, 1.448, 0.6, 2.0, 2.0];
    for (g, e) in flat(&grad).iter().zip(expected) {
        assert!((g - e).abs() < 1e-12, "gradient {:?}", flat(&grad));
    }
}

#[test]
fn matches_the_autograd_lif_on_random_layers() {
    let p = LifParams::default();
    // Inputs around the threshold, so spikes, resets and the window all occur.
    let (x, upstream) = with_seed(11, || {
        (
            Tensor::rand([23, 5, 7], (Kind::Double, Device::Cpu)) * 0.8 - 0.1,
            Tensor::randn([23, 5, 7], (Kind::Double, Device::Cpu)),
        )
    });
    let leaf = x.copy().set_requires_grad(true);
    let reference = p.run(&leaf, true);
    (&reference * &upstream).sum(Kind::Double).backward();

    let u = x.copy().view([23, -1]);
    let spikes = through_time::forward_in_place(&p, &u);
    assert!(spikes.view([23, 5, 7]).equal(&reference.detach()));
    let grad = through_time::backward_in_place(&p, &u, &upstream.copy().view([23, -1]));
    let d = max_rel_diff(&grad.view([23, 5, 7]), &leaf.grad());
    assert!(d < 1e-13, "input gradients differ by {d} (relative)");
    assert!(leaf.grad().abs().sum(Kind::Double).double_value(&[]) > 0.0);
}

#[test]
fn gradients_match_pytorch_golden_values() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stbp_golden_small.safetensors");
    let g = read_tensors(&path).unwrap().0;
    let config = NetConfig {
        width: 10,
        height: 12,
        ..NetConfig::default()
    };
    let (_vs, net) = Net::seeded(config, 0, Device::Cpu);
    let target = g["labels"].onehot(19).to_kind(Kind::Float);
    let params = params_of(&net);
    let refs: Vec<&Tensor> = params.iter().collect();
    Optimizer::zero_grad(&refs);
    let (loss, rates) =
        net.forward_backward(&g["input"], &|r| r.mse_loss(&target, Reduction::Mean));
    assert!((&rates - &g["rates"]).abs().max().double_value(&[]) <= 1e-6);
    let first = g["adam_losses"].double_value(&[0]);
    assert!((loss.double_value(&[]) - first).abs() < 1e-6);
    for (name, grad) in PARAM_NAMES.iter().zip(grads_of(&params)) {
        let expected = &g[&format!("grad.{name}")];
        let scale = expected.abs().max().double_value(&[]).max(1e-6);
        let d = (grad - expected).abs().max().double_value(&[]) / scale;
        assert!(
            d <= 1e-5,
            "grad {name}: {d:e} relative to its largest entry"
        );
    }
}

/// The full-size network (128×128, T = 50) in double precision: the staged
/// path's loss, rates and every parameter's gradient equal the autograd
/// reference's.
#[test]
fn full_size_t50_gradients_equal_the_autograd_reference() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = with_seed(0, || Net::new(&vs.root(), NetConfig::default()));
    vs.double();
    let x = with_seed(1, || {
        Tensor::rand([1, 2, 128, 128, 50], (Kind::Double, Device::Cpu))
            .lt(0.3)
            .to_kind(Kind::Double)
            * 2.0
    });
    let target = Tensor::from_slice(&[7i64]).onehot(19).to_kind(Kind::Double);
    let loss_fn = |r: &Tensor| r.mse_loss(&target, Reduction::Mean);
    let params = params_of(&net);
    let refs: Vec<&Tensor> = params.iter().collect();

    Optimizer::zero_grad(&refs);
    let (loss, rates) = net.forward_backward(&x, &loss_fn);
    let staged = grads_of(&params);

    Optimizer::zero_grad(&refs);
    let reference_rates = net.forward_autograd(&x, true);
    let reference_loss = loss_fn(&reference_rates);
    reference_loss.backward();
    let reference = grads_of(&params);

    assert!(rates.equal(&reference_rates.detach()), "rates differ");
    assert!(
        rates.sum(Kind::Double).double_value(&[]) > 0.0,
        "no output spikes: the test would check little"
    );
    assert_eq!(loss.double_value(&[]), reference_loss.double_value(&[]));
    for ((name, a), b) in PARAM_NAMES.iter().zip(&staged).zip(&reference) {
        assert!(
            b.abs().sum(Kind::Double).double_value(&[]) > 0.0,
            "{name}: zero gradient, the test would check little"
        );
        let d = max_rel_diff(a, b);
        assert!(d < 1e-10, "{name}: gradients differ by {d:e} (relative)");
    }
    // Evaluation's forward is the same network without gradients.
    let eval = tch::no_grad(|| net.forward_t(&x, false));
    assert!(eval.equal(&rates));
}

#[test]
fn smooth_spike_takes_the_autograd_path() {
    let config = NetConfig {
        width: 10,
        height: 12,
        lif: LifParams {
            spike: SpikeFn::Sigmoid { slope: 3.0 },
            ..LifParams::default()
        },
        ..NetConfig::default()
    };
    let (_vs, net) = Net::seeded(config, 2, Device::Cpu);
    let x = with_seed(3, || {
        Tensor::rand([2, 2, 10, 12, 4], (Kind::Float, Device::Cpu))
    });
    let target = Tensor::from_slice(&[1i64, 4])
        .onehot(19)
        .to_kind(Kind::Float);
    let loss_fn = |r: &Tensor| r.mse_loss(&target, Reduction::Mean);
    let params = params_of(&net);
    let refs: Vec<&Tensor> = params.iter().collect();
    Optimizer::zero_grad(&refs);
    let _ = net.forward_backward(&x, &loss_fn);
    let staged = grads_of(&params);
    Optimizer::zero_grad(&refs);
    loss_fn(&net.forward_autograd(&x, true)).backward();
    for (a, b) in staged.iter().zip(grads_of(&params)) {
        assert!(a.equal(&b));
    }
}

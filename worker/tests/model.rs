//! The network's structure: folding time into the batch equals the reference's
//! per-step loop, and the whole network's gradient equals finite differences
//! when the spike is replaced by a smooth stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_worker::lif::{LifParams, SpikeFn};
use spikecv_worker::model::{Net, NetConfig, with_seed};
use tch::{Device, Kind, Reduction, Tensor, nn};

fn config(spike: SpikeFn) -> NetConfig {
    NetConfig {
        width: 10,
        height: 12,
        lif: LifParams {
            spike,
            ..LifParams::default()
        },
        ..NetConfig::default()
    }
}

fn double_net(cfg: NetConfig, seed: i64) -> (nn::VarStore, Net) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = with_seed(seed, || Net::new(&vs.root(), cfg));
    vs.double();
    (vs, net)
}

fn input(seed: i64, n: i64, t: i64) -> Tensor {
    with_seed(seed, || {
        (Tensor::rand([n, 2, 10, 12, t], (Kind::Double, Device::Cpu)) * 4.0).floor()
    })
}

fn loss(rates: &Tensor) -> Tensor {
    let n = rates.size()[0];
    let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)) * 5;
    rates.mse_loss(&labels.onehot(19).to_kind(Kind::Double), Reduction::Mean)
}

#[test]
fn folding_time_into_the_batch_changes_nothing() {
    let (_vs, net) = double_net(config(SpikeFn::Heaviside), 3);
    let x = input(4, 3, 7);
    let params: Vec<Tensor> = net.parameters();
    let grads = |forward: &dyn Fn() -> Tensor| {
        for p in &params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let rates = forward();
        loss(&rates).backward();
        let grads: Vec<Tensor> = params.iter().map(|p| p.grad().copy()).collect();
        (rates.detach(), grads)
    };
    let (folded, g_folded) = grads(&|| net.forward_t(&x, true));
    let (looped, g_looped) = grads(&|| net.forward_per_step(&x, true));
    assert!(
        folded.abs().sum(Kind::Double).double_value(&[]) > 0.0,
        "no output spikes"
    );
    let d = (&folded - &looped).abs().max().double_value(&[]);
    assert!(d < 1e-12, "rates differ by {d}");
    for (a, b) in g_folded.iter().zip(&g_looped) {
        let scale = b.abs().max().double_value(&[]).max(1e-12);
        let d = (a - b).abs().max().double_value(&[]) / scale;
        assert!(d < 1e-9, "gradients differ by {d} (relative)");
    }
    let eval_folded = tch::no_grad(|| net.forward_t(&x, false));
    let eval_looped = tch::no_grad(|| net.forward_per_step(&x, false));
    assert!(eval_folded.equal(&eval_looped));
    assert!(eval_folded.equal(&folded), "train and eval forward differ");
}

#[test]
fn gradient_matches_finite_differences_with_a_smooth_spike() {
    let (_vs, net) = double_net(config(SpikeFn::Sigmoid { slope: 3.0 }), 5);
    let x = input(6, 2, 4);
    let rates = net.forward_t(&x, true);
    loss(&rates).backward();
    let eps = 1e-6;
    let mut worst = 0f64;
    let mut checked = 0;
    for (name, p) in net.named_parameters() {
        let grad = p.grad().flatten(0, -1);
        let flat = p.detach().flatten(0, -1);
        let numel = flat.size()[0];
        // A spread of entries of every parameter.
        for k in 0..6 {
            let i = (k * 7919 + 13) % numel;
            let original = flat.double_value(&[i]);
            let at = |v: f64| {
                tch::no_grad(|| {
                    let _ = flat.get(i).fill_(v);
                    let l = loss(&net.forward_t(&x, false)).double_value(&[]);
                    let _ = flat.get(i).fill_(original);
                    l
                })
            };
            let numeric = (at(original + eps) - at(original - eps)) / (2.0 * eps);
            let analytic = grad.double_value(&[i]);
            let err = (numeric - analytic).abs() / analytic.abs().max(1e-4);
            assert!(
                err < 1e-5,
                "{name}[{i}]: analytic {analytic:e}, numeric {numeric:e}"
            );
            worst = worst.max(err);
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
    assert!(worst.is_finite());
}

/// Evaluation of a large batch a few samples at a time gives the rates of one
/// pass over the whole batch, at the full input size.
#[test]
fn evaluation_in_parts_equals_one_pass() {
    let (_vs, net) = Net::seeded(NetConfig::default(), 4, Device::Cpu);
    let x = with_seed(9, || {
        Tensor::rand([3, 2, 128, 128, 6], (Kind::Float, Device::Cpu))
            .lt(0.3)
            .to_kind(Kind::Float)
            * 2.0
    });
    let whole = net.forward_fast_by(&x, 3);
    assert!(
        whole.sum(Kind::Double).double_value(&[]) > 0.0,
        "no output spikes: the test would check little"
    );
    for samples in [1, 2] {
        assert!(
            net.forward_fast_by(&x, samples).equal(&whole),
            "{samples} at a time"
        );
    }
    let reference = tch::no_grad(|| net.forward_autograd(&x, false));
    assert!(whole.equal(&reference));
}

//! Networks from a block list (`[network]`) against PyTorch models built from
//! the same list (`tests/fixtures/network_golden.py`, whose docstring gives
//! the files' layout): PyTorch's initialisation for the seed bit for bit;
//! with those weights the rates, the loss and every parameter's gradient
//! after one backward pass, through the staged training pass with each LIF
//! kernel (the CPU kernels, the fused kernels' C++ form, the tensor path),
//! the autograd reference, the per-step loop and the evaluation path (whole
//! and in parts); then one SGD step. Also: a last layer without LIF (a tail
//! after the last LIF layer) through the staged pass equals the autograd
//! reference; the default network built from the reference block list is
//! today's SLANIMALSNet bit for bit; weights of a block-list network
//! round-trip with their block list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use spikecv_common::experiment::network::NetworkSpec;
use spikecv_common::experiment::sections::OptimizerKind;
use spikecv_worker::lif::LifParams;
use spikecv_worker::lif::fused::LifKernels;
use spikecv_worker::model::{Architecture, Net, NetConfig, PARAM_NAMES, with_seed};
use spikecv_worker::optim::Optimizer;
use spikecv_worker::weights::{self, read_tensors};
use tch::{Device, Kind, Reduction, Tensor, nn};

/// The three networks of the goldens: a deeper one, a max-pooling one, a
/// wide one.
const NETWORKS: [&str; 3] = ["deeper", "maxpool", "wide"];

/// The seed PyTorch initialised the goldens' networks with.
const WEIGHT_SEED: u64 = 0;

struct Golden {
    name: &'static str,
    spec: NetworkSpec,
    metadata: HashMap<String, String>,
    tensors: HashMap<String, Tensor>,
}

fn golden(name: &'static str) -> Golden {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("network_golden_{name}.safetensors"));
    let (tensors, metadata) =
        read_tensors(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let network = metadata
        .get("network")
        .unwrap_or_else(|| panic!("{name}: no `network` in the metadata"));
    let spec: NetworkSpec =
        serde_json::from_str(network).unwrap_or_else(|e| panic!("{name}: block list: {e}"));
    Golden {
        name,
        spec,
        metadata,
        tensors,
    }
}

impl Golden {
    fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name))
    }

    fn meta(&self, key: &str) -> f64 {
        self.metadata
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: metadata {key}", self.name))
    }

    /// The network's architecture on the golden's input, classes and
    /// `[simulation]` neurons.
    fn architecture(&self) -> Architecture {
        let input = self.get("input").size();
        let config = NetConfig {
            in_channels: input[1],
            width: input[2],
            height: input[3],
            classes: self.meta("classes") as i64,
            lif: LifParams {
                tau: self.meta("tau"),
                vth: self.meta("vth"),
                a: self.meta("a"),
                ..LifParams::default()
            },
        };
        Architecture::from_spec(config, &self.spec).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The network seeded as PyTorch's was, with the given kernels.
    fn net(&self, kernels: LifKernels) -> (nn::VarStore, Net) {
        let (vs, mut net) = Net::seeded(self.architecture(), WEIGHT_SEED, Device::Cpu);
        net.set_lif_kernels(kernels);
        (vs, net)
    }

    fn target(&self) -> Tensor {
        self.get("labels")
            .onehot(self.meta("classes") as i64)
            .to_kind(Kind::Float)
    }

    /// Rates, loss and gradients against PyTorch's.
    fn check(&self, what: &str, net: &Net, rates: &Tensor, loss: &Tensor) {
        let what = format!("{} ({what})", self.name);
        assert_close(&format!("{what}: rates"), rates, self.get("rates"), 1e-6);
        assert_close(&format!("{what}: loss"), loss, self.get("loss"), 1e-6);
        for (name, p) in net.named_parameters() {
            let expected = self.get(&format!("grad.{name}"));
            let scale = expected.abs().max().double_value(&[]).max(1e-6);
            assert_close(
                &format!("{what}: grad {name}"),
                &(p.grad() / scale),
                &(expected / scale),
                1e-5,
            );
        }
    }
}

fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    assert_eq!(
        a.numel(),
        b.numel(),
        "{what}: sizes {:?} {:?}",
        a.size(),
        b.size()
    );
    let d = (a.flatten(0, -1) - b.flatten(0, -1))
        .abs()
        .max()
        .double_value(&[]);
    assert!(d <= tol, "{what}: max |diff| {d:e} > {tol:e}");
}

/// The initialisation for the seed equals PyTorch's bit for bit, under the
/// `blocks.<i>` names.
#[test]
fn initialisation_equals_pytorch_for_the_seed() {
    for name in NETWORKS {
        let g = golden(name);
        let (_vs, net) = g.net(LifKernels::Auto);
        let mut expected: Vec<&str> = g
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix("init."))
            .collect();
        let mut names: Vec<&str> = net.param_names().iter().map(String::as_str).collect();
        expected.sort_unstable();
        names.sort_unstable();
        assert_eq!(names, expected, "{name}: parameter names");
        for (n, p) in net.named_parameters() {
            assert!(p.equal(g.get(&format!("init.{n}"))), "{name}: {n} differs");
        }
    }
}

/// The staged training pass with each kernel, the evaluation pass whole and
/// in parts, and one SGD step.
#[test]
fn staged_passes_match_pytorch_with_every_kernel() {
    for name in NETWORKS {
        let g = golden(name);
        let target = g.target();
        let loss_fn = |rates: &Tensor| rates.mse_loss(&target, Reduction::Mean);
        let x = g.get("input");
        for kernels in [LifKernels::Auto, LifKernels::Fused, LifKernels::Tensor] {
            let (_vs, net) = g.net(kernels);
            let params = net.parameters();
            let refs: Vec<&Tensor> = params.iter().collect();
            let mut opt = Optimizer::new(OptimizerKind::Sgd, g.meta("lr"), 0.0, &refs);
            Optimizer::zero_grad(&refs);
            let (loss, rates) = net.forward_backward(x, &loss_fn);
            g.check(&format!("{kernels:?}"), &net, &rates, &loss);
            let what = format!("{name} ({kernels:?})");
            assert_close(
                &format!("{what}: eval"),
                &net.forward_fast(x),
                g.get("rates"),
                1e-6,
            );
            let parts = net.forward_fast_by(x, 1);
            assert_close(&format!("{what}: in parts"), &parts, g.get("rates"), 1e-6);
            opt.step(&refs);
            for (n, p) in net.named_parameters() {
                let want = g.get(&format!("sgd1.{n}"));
                assert_close(&format!("{what}: SGD step {n}"), p, want, 1e-6);
            }
        }
    }
}

/// The autograd reference and the per-step loop.
#[test]
fn autograd_reference_matches_pytorch() {
    for name in NETWORKS {
        let g = golden(name);
        let (_vs, net) = g.net(LifKernels::Auto);
        let rates = net.forward_autograd(g.get("input"), true);
        let loss = rates.mse_loss(&g.target(), Reduction::Mean);
        loss.backward();
        g.check("autograd", &net, &rates.detach(), &loss.detach());
        let per_step = tch::no_grad(|| net.forward_per_step(g.get("input"), false));
        assert_close(
            &format!("{name}: per step"),
            &per_step,
            g.get("rates"),
            1e-6,
        );
    }
}

/// Layers after the last LIF layer (`lif = false` on the last linear, and
/// on a conv before an average pooling of 2, which then is not fused): the
/// staged pass with every kernel gives the autograd reference's rates and
/// gradients.
#[test]
fn a_last_layer_without_lif_matches_the_autograd_reference() {
    let spec: NetworkSpec = serde_json::from_value(serde_json::json!({ "blocks": [
        { "conv": 6, "kernel": 3, "lif": false },
        { "pool": "avg", "size": 2 },
        { "conv": 8, "kernel": 3, "stride": 2, "tau": 0.5 },
        { "pool": "max", "size": 2 },
        { "flatten": true },
        { "linear": 24, "a": 1.0 },
        { "linear": 5, "lif": false },
    ]}))
    .unwrap();
    let config = NetConfig {
        width: 22,
        height: 19,
        classes: 5,
        ..NetConfig::default()
    };
    let arch = Architecture::from_spec(config, &spec).unwrap();
    let (x, target) = with_seed(4, || {
        (
            (Tensor::rand([3, 2, 22, 19, 5], (Kind::Float, Device::Cpu)) * 4.0).floor(),
            Tensor::rand([3, 5], (Kind::Float, Device::Cpu)),
        )
    });
    let loss_fn = |rates: &Tensor| rates.mse_loss(&target, Reduction::Mean);
    let (_vs, reference) = Net::seeded(arch.clone(), 2, Device::Cpu);
    let want_rates = reference.forward_autograd(&x, true);
    loss_fn(&want_rates).backward();
    for kernels in [LifKernels::Auto, LifKernels::Fused, LifKernels::Tensor] {
        let (_vs, mut net) = Net::seeded(arch.clone(), 2, Device::Cpu);
        net.set_lif_kernels(kernels);
        let (_, rates) = net.forward_backward(&x, &loss_fn);
        assert_close(&format!("{kernels:?}: rates"), &rates, &want_rates, 1e-6);
        let eval = net.forward_fast(&x);
        assert_close(&format!("{kernels:?}: eval"), &eval, &want_rates, 1e-6);
        for ((n, p), (_, q)) in net
            .named_parameters()
            .into_iter()
            .zip(reference.named_parameters())
        {
            let want = q.grad();
            let scale = want.abs().max().double_value(&[]).max(1e-6);
            assert_close(
                &format!("{kernels:?}: grad {n}"),
                &(p.grad() / scale),
                &(want / scale),
                1e-5,
            );
        }
    }
    let grad = reference.parameters()[0].grad();
    assert!(
        grad.abs().sum(Kind::Double).double_value(&[]) > 0.0,
        "no gradient reaches the first layer"
    );
}

/// The reference block list builds today's SLANIMALSNet: its names, its
/// initialisation for a seed and its outputs, bit for bit.
#[test]
fn the_reference_block_list_is_slanimalsnet() {
    let config = NetConfig {
        width: 21,
        height: 18,
        classes: 19,
        ..NetConfig::default()
    };
    let arch = Architecture::from_spec(config, &NetworkSpec::reference(19)).unwrap();
    // SLANIMALSNet's shapes, written out: conv 2->20 (3x3), pool 2, conv
    // 20->50 (3x3), pool 2, fc (50 * 3 * 3 for a 21 x 18 input) -> 200 -> 19.
    let shapes: Vec<Vec<i64>> = Net::seeded(arch.clone(), 5, Device::Cpu)
        .1
        .named_parameters()
        .into_iter()
        .map(|(_, p)| p.size())
        .collect();
    let expected: [&[i64]; 8] = [
        &[20, 2, 3, 3],
        &[20],
        &[50, 20, 3, 3],
        &[50],
        &[200, 450],
        &[200],
        &[19, 200],
        &[19],
    ];
    assert_eq!(shapes, expected.map(<[i64]>::to_vec).to_vec());
    assert_eq!(arch.param_names(), PARAM_NAMES.map(str::to_owned).to_vec());
    let (_a, spec_net) = Net::seeded(arch, 5, Device::Cpu);
    let (_b, net) = Net::seeded(config, 5, Device::Cpu);
    for ((n, a), (m, b)) in spec_net
        .named_parameters()
        .into_iter()
        .zip(net.named_parameters())
    {
        assert_eq!(n, m);
        assert!(a.equal(b), "{n}");
    }
    let x = with_seed(1, || {
        Tensor::rand([2, 2, 21, 18, 5], (Kind::Float, Device::Cpu))
            .lt(0.4)
            .to_kind(Kind::Float)
    });
    assert!(spec_net.forward_fast(&x).equal(&net.forward_fast(&x)));
}

/// A written block list names its parameters `blocks.<i>.*`; its weights
/// file carries the block list and loads into the same network.
#[test]
fn block_list_weights_round_trip() {
    let g = golden("maxpool");
    let (_vs, net) = g.net(LifKernels::Auto);
    assert!(net.param_names().iter().all(|n| n.starts_with("blocks.")));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    weights::save(&net, &path).unwrap();
    assert_eq!(
        weights::stored_network(&path).unwrap(),
        Some(g.spec.clone())
    );
    let (_vs2, other) = Net::seeded(net.architecture().clone(), 9, Device::Cpu);
    weights::load(&other, &path).unwrap();
    for ((n, a), (_, b)) in net
        .named_parameters()
        .into_iter()
        .zip(other.named_parameters())
    {
        assert!(a.equal(b), "{n}");
    }
    // The reference network's file has no block list.
    let (_vs3, reference) = Net::seeded(NetConfig::default(), 0, Device::Cpu);
    let ref_path = dir.path().join("ref.safetensors");
    weights::save(&reference, &ref_path).unwrap();
    assert_eq!(weights::stored_network(&ref_path).unwrap(), None);
}

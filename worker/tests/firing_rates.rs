//! Firing rates (issue 24, item 5): every LIF layer's mean spikes per neuron
//! per time step, counted on the device during training and evaluation, equal
//! to a recomputation from the layers' spikes by hand, on every LIF kernel
//! path and through evaluation in parts; counting changes no bit of training;
//! a job reports them per epoch (and to TensorBoard); the silent case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::metrics;
use spikecv_common::experiment::network::PoolKind;
use spikecv_common::experiment::sections::{OptimizerKind, ProtocolKind};
use spikecv_worker::lif::LifParams;
use spikecv_worker::lif::fused::LifKernels;
use spikecv_worker::loader::{HostBatch, HostForm, for_each_batch, samples_of};
use spikecv_worker::model::{ConvLayout, Net, NetConfig, Op, SpikeTally, with_seed};
use spikecv_worker::optim::Optimizer;
use spikecv_worker::train::step::{PassSpec, evaluate, train_epoch};
use spikecv_worker::train::{NoObserver, TrainError, run_job_on};
use support::{Coarse, f32_bits, job, synthetic};
use tch::{Device, Kind, Reduction, Tensor};

/// Each LIF layer's mean spike, recomputed by hand: the layers from their
/// parameters (not `Net`'s own code), the neurons through the autograd
/// reference [`LifParams::run`], the mean of each layer's spikes.
fn manual_rates(net: &Net, xs: &Tensor) -> Vec<(String, f64)> {
    let params: HashMap<&str, &Tensor> = net.named_parameters().into_iter().collect();
    let size = xs.size();
    let [n, c, x, y, t] = size[..] else {
        panic!("input {size:?}")
    };
    let mut h = xs.permute([4, 0, 1, 2, 3]).reshape([t * n, c, x, y]);
    let mut out = Vec::new();
    tch::no_grad(|| {
        for layer in &net.architecture().layers {
            let w = |what: &str| params[format!("{}.{what}", layer.name).as_str()];
            h = match layer.op {
                Op::Conv {
                    stride, padding, ..
                } => h.conv2d(
                    w("weight"),
                    Some(w("bias")),
                    [stride, stride],
                    [padding, padding],
                    [1, 1],
                    1,
                ),
                Op::Linear { .. } => h.linear(w("weight"), Some(w("bias"))),
                Op::Pool {
                    kind: PoolKind::Avg,
                    size,
                } => h.avg_pool2d([size, size], [size, size], [0, 0], false, true, None),
                Op::Pool {
                    kind: PoolKind::Max,
                    size,
                } => h.max_pool2d([size, size], [size, size], [0, 0], [1, 1], false),
                Op::Flatten => h.reshape([t * n, -1]),
            };
            if let Some(lif) = layer.lif {
                let s = h.size();
                let mut split = vec![t, n];
                split.extend_from_slice(&s[1..]);
                h = lif
                    .run(&h.reshape(split.as_slice()), false)
                    .reshape(s.as_slice());
                let spikes = h.sum(Kind::Double).double_value(&[]);
                out.push((layer.name.clone(), spikes / h.numel() as f64));
            }
        }
    });
    out
}

/// `got` and `want` name the same layers in the same order with rates
/// within rounding of each other.
fn assert_rates(got: &[(String, f64)], want: &[(String, f64)], what: &str) {
    assert_eq!(
        got.iter().map(|r| &r.0).collect::<Vec<_>>(),
        want.iter().map(|r| &r.0).collect::<Vec<_>>(),
        "{what}: layers"
    );
    for ((layer, g), (_, w)) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{what}: {layer}: {g} against {w}");
        assert!((0.0..=1.0).contains(g), "{what}: {layer}: {g}");
    }
}

/// A small net on odd and even sizes: 21 × 18 input gives conv1 19 × 16,
/// whose 2×2 pooling leaves out a row (its count then comes from that row's
/// potentials), and conv2 7 × 6 (whole windows: from the pooled spikes);
/// 23 × 21 gives conv1 21 × 19, odd both ways (the last row and column), and
/// conv2 8 × 7.
fn net_with(
    kernels: LifKernels,
    layout: ConvLayout,
    width: i64,
    height: i64,
) -> (tch::nn::VarStore, Net) {
    let config = NetConfig {
        in_channels: 2,
        width,
        height,
        classes: 5,
        lif: LifParams::default(),
    };
    let (vs, mut net) = Net::seeded(config, 3, Device::Cpu);
    net.set_lif_kernels(kernels);
    net.set_conv_layout(layout);
    (vs, net)
}

fn input(width: i64, height: i64) -> (Tensor, Tensor) {
    with_seed(11, || {
        (
            Tensor::rand([3, 2, width, height, 6], (Kind::Float, Device::Cpu))
                .ge(0.6)
                .to_kind(Kind::Float),
            Tensor::rand([3, 5], (Kind::Float, Device::Cpu)),
        )
    })
}

/// The fused kernels add a convolution's bias and sum its gradient
/// (docs/semantics.md). The bias's gradient is summed in another order (in
/// double, within one float32 rounding of the exact sum: tests/lif_fused.rs),
/// so it differs from the tensor path's by libtorch's own float32 rounding,
/// up to 1.9e-6 of the largest value at these sizes: 1e-5 allowed. On the
/// CPU oneDNN computes the weight's gradient without the bias's in a
/// primitive that sums in another order too: 1e-6 of the largest allowed
/// (measured up to 1.4e-7).
fn assert_within_bias_tolerance(name: &str, got: &Tensor, want: &Tensor, what: &str) {
    let tolerance = if name.ends_with(".bias") { 1e-5 } else { 1e-6 };
    let scale = want.abs().max().double_value(&[]);
    let off = (got - want).abs().max().double_value(&[]);
    assert!(scale > 0.0, "{what}: no gradient");
    assert!(
        off <= tolerance * scale,
        "{what}: {off:e} off, {:e} of the largest",
        off / scale
    );
}

/// Training (counted and not), evaluation whole and in parts of one sample,
/// on the CPU kernels, the fused kernels' C++ form and the tensor path: the
/// rates equal the recomputation by hand, and counting leaves the loss, the
/// output rates and every gradient the same bits; with the convolutions
/// channels last too (the CPU kernels then read their output as it is, the
/// other paths a copy), where every path's loss and gradients equal the
/// tensor path's bit for bit.
#[test]
fn counted_rates_equal_a_recomputation_on_every_kernel_path() {
    for (layout, (width, height)) in [ConvLayout::Contiguous, ConvLayout::ChannelsLast]
        .into_iter()
        .flat_map(|l| [(21, 18), (23, 21), (16, 16)].map(|size| (l, size)))
    {
        let (xs, target) = input(width, height);
        let (_vs, reference) = net_with(LifKernels::Auto, layout, width, height);
        let want = manual_rates(&reference, &xs);
        assert_eq!(
            want.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ["conv1", "conv2", "fc1", "fc2"]
        );
        eprintln!("{width}×{height}: recomputed {want:?}");
        let loss_fn = |rates: &Tensor| rates.mse_loss(&target, Reduction::Mean);
        let (_vs, tensor_path) = net_with(LifKernels::Tensor, layout, width, height);
        let (tensor_loss, _) = tensor_path.forward_backward(&xs, &loss_fn);
        for kernels in [LifKernels::Auto, LifKernels::Fused, LifKernels::Tensor] {
            let what = format!("{width}×{height} {kernels:?} {layout:?}");

            let (_vs, plain) = net_with(kernels, layout, width, height);
            let (loss, out) = plain.forward_backward(&xs, &loss_fn);
            assert_eq!(f32_bits(&loss), f32_bits(&tensor_loss), "{what}: loss");
            for ((name, p), (_, q)) in plain
                .named_parameters()
                .into_iter()
                .zip(tensor_path.named_parameters())
            {
                let what = format!("{what}: {name} against the tensor path");
                if kernels == LifKernels::Fused && name.starts_with("conv") {
                    assert_within_bias_tolerance(name, &p.grad(), &q.grad(), &what);
                } else {
                    assert_eq!(f32_bits(&p.grad()), f32_bits(&q.grad()), "{what}");
                }
            }
            let (_vs, counted) = net_with(kernels, layout, width, height);
            let mut tally = SpikeTally::new(&counted);
            let (c_loss, c_out) = counted.forward_backward_tallied(&xs, &loss_fn, Some(&mut tally));
            assert_eq!(f32_bits(&loss), f32_bits(&c_loss), "{what}: loss");
            assert_eq!(f32_bits(&out), f32_bits(&c_out), "{what}: output");
            for ((name, p), (_, q)) in plain
                .named_parameters()
                .into_iter()
                .zip(counted.named_parameters())
            {
                assert_eq!(f32_bits(&p.grad()), f32_bits(&q.grad()), "{what}: {name}");
            }
            assert_eq!(tally.slots(), 3 * 6);
            assert_rates(&tally.rates().unwrap(), &want, &format!("{what} training"));

            let mut tally = SpikeTally::new(&plain);
            let eval = plain.forward_fast_tallied(&xs, &mut tally);
            assert_eq!(f32_bits(&eval), f32_bits(&plain.forward_fast(&xs)));
            assert_rates(
                &tally.rates().unwrap(),
                &want,
                &format!("{what} evaluation"),
            );

            let mut tally = SpikeTally::new(&plain);
            let parts = plain.forward_fast_by_tallied(&xs, 1, &mut tally);
            assert_eq!(f32_bits(&parts), f32_bits(&eval));
            assert_eq!(tally.slots(), 3 * 6);
            assert_rates(&tally.rates().unwrap(), &want, &format!("{what} in parts"));
        }
    }
}

/// The tiny synthetic set on the coarse grid: `recordings` recordings, the
/// first four for training, the rest for testing.
fn tiny_split(data: &spikecv_common::dataset::Dataset) -> FoldSplit {
    let recs = data.recordings(Variant::WHOLE);
    FoldSplit {
        train: recs[..4].to_vec(),
        val: Vec::new(),
        test: recs[4..].to_vec(),
    }
}

/// `train_epoch` and `evaluate` over one batch of the synthetic set report the
/// rates the recomputation by hand gives on that batch with the weights
/// before the step.
#[test]
fn an_epoch_of_one_batch_reports_the_batch_rates() {
    let data_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = synthetic(data_dir.path(), 5);
    let split = tiny_split(&data);
    let (spec, shape) = job(
        out.path().to_path_buf(),
        ProtocolKind::TrainTest,
        split.clone(),
        1,
        8,
    );
    let source = Coarse(&data);
    let samples: Vec<_> = samples_of(&split.train, 19).into_iter().take(8).collect();
    let pass = PassSpec {
        frames: shape.train,
        batch: 8,
        workers: 1,
        device: Device::Cpu,
        classes: 19,
    };
    let mut batches = Vec::new();
    for_each_batch(
        &source,
        &samples,
        &shape.train,
        8,
        1,
        HostForm::for_device(Device::Cpu),
        |host: HostBatch| {
            batches.push(host.to_device(&shape.train, Device::Cpu).inputs);
            Ok::<(), TrainError>(())
        },
    )
    .unwrap();
    assert_eq!(batches.len(), 1);
    let (_vs, before) = Net::seeded(shape.net, spec.seed, Device::Cpu);
    let want = manual_rates(&before, &batches[0]);

    let evaluation = evaluate(&source, &samples, &pass, &before, false).unwrap();
    assert_rates(&evaluation.firing_rates, &want, "evaluation");

    let (_vs, net) = Net::seeded(shape.net, spec.seed, Device::Cpu);
    let params = net.parameters();
    let params: Vec<&Tensor> = params.iter().collect();
    let mut optimizer = Optimizer::new(OptimizerKind::Adam, 1e-3, 0.0, &params);
    let stats = train_epoch(
        &source,
        &samples,
        &pass,
        &net,
        &mut optimizer,
        &mut NoObserver,
    )
    .unwrap();
    assert_rates(&stats.firing_rates, &want, "training");
    eprintln!("one batch of the tiny set at 16×16, T = 8: {want:?}");
}

/// A job reports each LIF layer's training and evaluation (here test) rates
/// every epoch, named and ordered as the network's LIF layers, and writes them
/// to TensorBoard.
#[test]
fn a_job_reports_the_rates_of_every_lif_layer() {
    let data_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = synthetic(data_dir.path(), 5);
    let (spec, shape) = job(
        out.path().to_path_buf(),
        ProtocolKind::TrainTest,
        tiny_split(&data),
        3,
        8,
    );
    let result = run_job_on(&spec, &Coarse(&data), &shape, &mut NoObserver).unwrap();
    let (_vs, net) = Net::seeded(shape.net, 0, Device::Cpu);
    let names: Vec<&str> = net
        .architecture()
        .layers
        .iter()
        .filter(|l| l.lif.is_some())
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["conv1", "conv2", "fc1", "fc2"]);
    assert_eq!(result.epochs.len(), 3);
    for e in &result.epochs {
        let layers: Vec<&str> = e.firing_rates.iter().map(|r| r.layer.as_str()).collect();
        assert_eq!(layers, names, "epoch {}", e.epoch);
        for r in &e.firing_rates {
            assert!((0.0..=1.0).contains(&r.train), "{r:?}");
            let eval = r.eval.unwrap_or_else(|| panic!("no eval rate: {r:?}"));
            assert!((0.0..=1.0).contains(&eval), "{r:?}");
        }
        assert!(
            e.firing_rates.iter().any(|r| r.train > 0.0),
            "epoch {}: nothing fired",
            e.epoch
        );
        eprintln!("epoch {}: {:?}", e.epoch, e.firing_rates);
    }
    let board = std::fs::read_dir(out.path().join("tensorboard"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(board).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for name in &names {
        for tag in [
            format!("firing_rate/train/{name}"),
            format!("firing_rate/eval/{name}"),
        ] {
            assert!(text.contains(&tag), "{tag} not in the TensorBoard events");
        }
    }
    // Every scalar of the shared list that the epoch has, under its name.
    for (tag, value) in metrics::epoch_scalars(&result.epochs[0]) {
        if value.is_some() {
            assert!(text.contains(tag), "{tag} not in the TensorBoard events");
        }
    }
    let metrics = std::fs::read_to_string(out.path().join("metrics.json")).unwrap();
    assert!(metrics.contains("firing_rates"), "metrics.json: no rates");
}

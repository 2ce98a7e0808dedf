//! The fused LIF kernels (`lif::fused`): their C++ form, the same text the GPU
//! runs, against the tensor path (`lif::through_time` with libtorch's
//! `avg_pool2d` and its backward) bit for bit, for the reference network's
//! layer shapes, odd sizes and T = 1, 2, 50; a whole training pass with them
//! against the CPU kernels and the tensor path; and the CUDA form compiled by
//! NVRTC for sm_80 and sm_90, which needs no GPU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_worker::lif::cpu::Layout;
use spikecv_worker::lif::fused::{self, LifKernels};
use spikecv_worker::lif::{LifParams, through_time};
use spikecv_worker::model::{Net, NetConfig, with_seed};
use tch::{Device, Kind, Reduction, Tensor};

/// The values' bit patterns, so that signed zeros count too.
fn bits(t: &Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(&t.flatten(0, -1).to_kind(Kind::Float))
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Asserts equal bit patterns, naming the first value that differs.
fn assert_same(got: &Tensor, want: &Tensor, what: &str) {
    let (got, want) = (bits(got), bits(want));
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "{what}: value {i} of {} differs: {:e} ({:#x}), expected {:e} ({:#x})",
            got.len(),
            f32::from_bits(got[i]),
            got[i],
            f32::from_bits(want[i]),
            want[i]
        );
    }
}

fn dims(layout: &Layout) -> [i64; 4] {
    [layout.steps, layout.planes, layout.height, layout.width].map(|v| i64::try_from(v).unwrap())
}

/// Runs the C++ form and the tensor path on inputs around the threshold.
fn check(layout: Layout, seed: i64) {
    let p = LifParams::default();
    let [t, planes, h, w] = dims(&layout);
    let len = i64::try_from(layout.len()).unwrap();
    let out_len = i64::try_from(layout.out_len()).unwrap();
    let (x, upstream) = with_seed(seed, || {
        (
            Tensor::rand([len], (Kind::Float, Device::Cpu)) * 0.8 - 0.1,
            Tensor::randn([out_len], (Kind::Float, Device::Cpu)),
        )
    });
    let name = format!("{layout:?}");

    let reference_u = x.copy().view([t, -1]);
    let spikes = through_time::forward_in_place(&p, &reference_u);
    let reference_out = if layout.pool {
        spikes
            .view([t * planes, 1, h, w])
            .avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
    } else {
        spikes
    };
    let u = x.copy();
    let out = fused::forward(&p, &layout, &u)
        .expect("the C++ form runs")
        .expect("an f32 CPU layer");
    assert_same(&u, &reference_u, &format!("{name}: potentials"));
    assert_same(&out, &reference_out, &format!("{name}: output"));

    let grad_spikes = if layout.pool {
        Tensor::zeros([t * planes, 1, h, w], (Kind::Float, Device::Cpu)).avg_pool2d_backward(
            &upstream.view([t * planes, 1, h / 2, w / 2]),
            [2, 2],
            [2, 2],
            [0, 0],
            false,
            true,
            None,
        )
    } else {
        upstream.copy()
    };
    let grad_spikes = grad_spikes.contiguous().view([t, -1]);
    let reference_grad = through_time::backward_in_place(&p, &reference_u, &grad_spikes);
    assert!(fused::backward(&p, &layout, &u, &upstream).expect("the C++ form runs"));
    assert_same(&u, &reference_grad, &format!("{name}: input gradient"));
}

fn layout(steps: usize, planes: usize, height: usize, width: usize, pool: bool) -> Layout {
    Layout {
        steps,
        planes,
        height,
        width,
        channels: 1,
        pool,
    }
}

/// The reference network's four layers at 128×128 (one sample, a few of the
/// channels): conv1's 126×126 pooled, conv2's 61×61 pooled (odd), fc1's 200
/// and fc2's 19 neurons, at T = 1, 2 and 50.
#[test]
fn equals_the_tensor_path_on_the_reference_layers() {
    for (i, steps) in [1, 2, 50].into_iter().enumerate() {
        let seed = i64::try_from(i).unwrap() * 10;
        check(layout(steps, 2, 126, 126, true), seed);
        check(layout(steps, 3, 61, 61, true), seed + 1);
        check(layout(steps, 200, 1, 1, false), seed + 2);
        check(layout(steps, 19, 1, 1, false), seed + 3);
    }
}

/// Odd and small sizes: partial windows in the last row or column, two rows,
/// one window, one neuron, an odd plane without pooling.
#[test]
fn equals_the_tensor_path_on_odd_sizes() {
    let cases = [
        layout(3, 5, 7, 9, true),
        layout(3, 5, 8, 9, true),
        layout(3, 5, 9, 8, true),
        layout(2, 4, 7, 9, false),
        layout(5, 1, 1, 1, false),
        layout(4, 3, 2, 5, true),
        layout(1, 7, 3, 3, true),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        check(case, 100 + i64::try_from(i).unwrap());
    }
}

/// A net with the fused kernels' C++ form, the CPU kernels or the tensor path.
fn net_with(kernels: LifKernels) -> (tch::nn::VarStore, Net) {
    let config = NetConfig {
        in_channels: 2,
        width: 21,
        height: 18,
        classes: 5,
        lif: LifParams::default(),
    };
    let (vs, mut net) = Net::seeded(config, 3, Device::Cpu);
    net.set_lif_kernels(kernels);
    (vs, net)
}

/// One training pass: the loss, the rates and every parameter's gradient.
fn training_pass(kernels: LifKernels) -> Vec<(String, Tensor)> {
    let (_vs, net) = net_with(kernels);
    let (xs, target) = with_seed(11, || {
        (
            Tensor::rand([3, 2, 21, 18, 6], (Kind::Float, Device::Cpu))
                .ge(0.6)
                .to_kind(Kind::Float),
            Tensor::rand([3, 5], (Kind::Float, Device::Cpu)),
        )
    });
    let loss_fn = |rates: &Tensor| rates.mse_loss(&target, Reduction::Mean);
    let (loss, rates) = net.forward_backward(&xs, &loss_fn);
    let mut out = vec![("loss".to_owned(), loss), ("rates".to_owned(), rates)];
    for (name, p) in net.named_parameters() {
        out.push((format!("{name}.grad"), p.grad().copy()));
    }
    out.push(("evaluation rates".to_owned(), net.forward_fast(&xs)));
    out
}

/// The training pass with the fused kernels (and with the tensor path, whose
/// pooling backward no longer takes an input-sized tensor) equals the CPU
/// kernels' bit for bit: loss, rates, every gradient; but the convolutions'
/// with the fused kernels, which take a convolution's bias (its gradient
/// summed in another order; the weight's computed by oneDNN without the
/// bias's, in another order too): within 1e-5 of the largest value for a
/// bias, 1e-6 for a weight (docs/semantics.md).
#[test]
fn a_training_pass_is_the_same_with_every_kernel() {
    let cpu = training_pass(LifKernels::Auto);
    for kernels in [LifKernels::Fused, LifKernels::Tensor] {
        let other = training_pass(kernels);
        for ((name, want), (_, got)) in cpu.iter().zip(&other) {
            let what = format!("{kernels:?}: {name}");
            if kernels == LifKernels::Fused && name.starts_with("conv") {
                let tolerance = if name.contains(".bias") { 1e-5 } else { 1e-6 };
                let scale = want.abs().max().double_value(&[]);
                let off = (got - want).abs().max().double_value(&[]);
                assert!(
                    scale > 0.0 && off <= tolerance * scale,
                    "{what}: {off:e} of {scale:e}"
                );
            } else {
                assert_same(got, want, &what);
            }
        }
    }
    let loss = cpu[0].1.double_value(&[]);
    assert!(loss > 0.0, "a loss that says nothing: {loss}");
    let grad_norm = cpu[2].1.abs().sum(Kind::Double).double_value(&[]);
    assert!(grad_norm > 0.0, "conv1's gradient is all zero");
}

/// The CUDA form compiles with NVRTC for the A100's and H100/H200's
/// architectures, here, without a GPU.
#[test]
fn the_cuda_form_compiles_with_nvrtc() {
    for arch in [80, 90] {
        let size = fused::nvrtc_compile(arch)
            .unwrap_or_else(|e| panic!("sm_{arch}: {e} (NVRTC at {:?})", fused::nvrtc_library()));
        assert!(size > 1000, "sm_{arch}: a cubin of {size} bytes");
    }
}

/// Kernels that do not apply (f64) leave the tensors alone and say so.
#[test]
fn f64_layers_are_not_taken() {
    let p = LifParams::default();
    let l = layout(2, 1, 4, 4, true);
    let u = Tensor::zeros([32], (Kind::Double, Device::Cpu));
    assert!(fused::forward(&p, &l, &u).unwrap().is_none());
    assert!(
        !fused::backward(&p, &l, &u, &Tensor::zeros([8], (Kind::Double, Device::Cpu))).unwrap()
    );
}

/// A convolution's bias added inside the kernels: the potentials, the
/// output and the input gradient are those of the layer given its input with
/// the bias already added, bit for bit; the bias's gradient (each window's
/// sum in double, then per channel) is the per-channel sum of that input
/// gradient within one float32 rounding of the exact sum, and within 1e-6 of
/// the terms' absolute sum of libtorch's float32 sums. Odd sizes, pooled or not;
/// a bias that does not fit the layer is refused.
#[test]
fn a_bias_inside_the_kernels_equals_the_bias_added_before() {
    let p = LifParams::default();
    for (pool, (n, c, h, w)) in [
        (true, (3, 4, 5, 7)),
        (false, (2, 3, 4, 3)),
        (true, (2, 5, 8, 6)),
    ] {
        let steps = 6;
        let l = layout(steps, n * c, h, w, pool);
        let [t, n, c, h, w] = [steps, n, c, h, w].map(|v| i64::try_from(v).unwrap());
        let (x, bias, upstream) = with_seed(7, || {
            (
                Tensor::rand([t, n, c, h, w], (Kind::Float, Device::Cpu)) * 0.8 - 0.3,
                Tensor::randn([c], (Kind::Float, Device::Cpu)) * 0.2,
                Tensor::randn(
                    [i64::try_from(l.out_len()).unwrap()],
                    (Kind::Float, Device::Cpu),
                ),
            )
        });
        let what = format!("{l:?}");
        let inside = x.flatten(0, -1).copy();
        let extras = fused::Extras {
            tally: None,
            bias: Some(&bias),
        };
        let out = fused::forward_with(&p, &l, &inside, extras)
            .unwrap()
            .unwrap();
        let before = (&x + bias.view([1, 1, c, 1, 1])).flatten(0, -1);
        let want_out = fused::forward(&p, &l, &before).unwrap().unwrap();
        assert_same(&inside, &before, &format!("{what}: potentials"));
        assert_same(&out, &want_out, &format!("{what}: output"));

        let usize_c = usize::try_from(c).unwrap();
        let done = fused::backward_with(&p, &l, &inside, &upstream, Some(usize_c)).unwrap();
        let bias_grad = done.expect("taken").expect("a bias gradient");
        assert!(fused::backward(&p, &l, &before, &upstream).unwrap());
        assert_same(&inside, &before, &format!("{what}: input gradient"));
        let per_channel = before.view([t, n, c, h * w]);
        let exact = per_channel.to_kind(Kind::Double).sum_dim_intlist(
            &[0i64, 1, 3][..],
            false,
            Kind::Double,
        );
        let float = per_channel.sum_dim_intlist(&[0i64, 1, 3][..], false, Kind::Float);
        let got = bias_grad.to_kind(Kind::Double);
        let scale = exact.abs().max().double_value(&[]);
        assert!(scale > 0.0, "{what}: no gradient");
        let off_exact = (&got - &exact).abs() - exact.abs() * f64::from(f32::EPSILON);
        assert!(
            off_exact.max().double_value(&[]) <= 0.0,
            "{what}: {got:?} vs exact {exact:?}"
        );
        // A float32 sum's own error is bounded by its terms' absolute sum.
        let magnitude = per_channel
            .abs()
            .sum_dim_intlist(&[0i64, 1, 3][..], false, Kind::Double);
        let off_float = (&got - float.to_kind(Kind::Double)).abs() - magnitude * 1e-6;
        assert!(
            off_float.max().double_value(&[]) <= 0.0,
            "{what}: off libtorch's float sums"
        );
    }
    let l = layout(2, 6, 4, 4, true);
    let u = Tensor::zeros(
        [i64::try_from(l.len()).unwrap()],
        (Kind::Float, Device::Cpu),
    );
    let bias = Tensor::zeros([4], (Kind::Float, Device::Cpu));
    let extras = fused::Extras {
        tally: None,
        bias: Some(&bias),
    };
    let refused = fused::forward_with(&LifParams::default(), &l, &u, extras).unwrap_err();
    assert!(refused.to_string().contains("bias [4]"), "{refused}");
}

/// The first-use check a CUDA device runs (spikes, their count, input and
/// bias gradients against the tensor path) passes for the C++ form here.
#[test]
fn the_first_use_check_passes_on_the_cpu() {
    fused::self_check(Device::Cpu).unwrap();
}

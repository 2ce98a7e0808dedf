//! The CPU kernels (`lif::cpu`) against the tensor path they replace on the
//! CPU (`lif::through_time` with libtorch's `avg_pool2d` and its backward):
//! potentials, outputs and input gradients equal bit for bit, in `f32` and
//! `f64`, with and without pooling, odd plane sizes, one thread and several.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_worker::lif::cpu::{self, Layout};
use spikecv_worker::lif::{LifParams, through_time};
use spikecv_worker::model::with_seed;
use tch::{Device, Kind, Tensor};

/// The values' bit patterns, so that signed zeros and NaNs count too.
fn bits(t: &Tensor) -> Vec<u64> {
    let flat = t.flatten(0, -1);
    match t.kind() {
        Kind::Float => Vec::<f32>::try_from(&flat)
            .unwrap()
            .into_iter()
            .map(|v| u64::from(v.to_bits()))
            .collect(),
        _ => Vec::<f64>::try_from(&flat)
            .unwrap()
            .into_iter()
            .map(f64::to_bits)
            .collect(),
    }
}

fn pool(spikes: &Tensor, layout: &Layout) -> Tensor {
    let [t, p, h, w] = [layout.steps, layout.planes, layout.height, layout.width]
        .map(|v| i64::try_from(v).unwrap());
    spikes
        .view([t * p, 1, h, w])
        .avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
}

fn unpool(grad: &Tensor, layout: &Layout) -> Tensor {
    let [t, p, h, w] = [layout.steps, layout.planes, layout.height, layout.width]
        .map(|v| i64::try_from(v).unwrap());
    let shape = Tensor::zeros([t * p, 1, h, w], (grad.kind(), Device::Cpu));
    let grad = grad.view([t * p, 1, h / 2, w / 2]);
    shape.avg_pool2d_backward(&grad, [2, 2], [2, 2], [0, 0], false, true, None)
}

/// Asserts equal bit patterns, naming the first value that differs.
fn assert_same(got: &Tensor, want: &Tensor, what: &str) {
    let (got, want) = (bits(got), bits(want));
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "{what}: value {i} of {} differs: bits {:#x}, expected {:#x}",
            got.len(),
            got[i],
            want[i]
        );
    }
}

/// Runs both paths on inputs around the threshold and compares everything.
fn check(layout: Layout, kind: Kind, seed: i64) {
    let p = LifParams::default();
    let steps = i64::try_from(layout.steps).unwrap();
    let len = i64::try_from(layout.len()).unwrap();
    let out_len = i64::try_from(layout.out_len()).unwrap();
    let (x, upstream) = with_seed(seed, || {
        (
            Tensor::rand([len], (kind, Device::Cpu)) * 0.8 - 0.1,
            Tensor::randn([out_len], (kind, Device::Cpu)),
        )
    });

    let reference_u = x.copy().view([steps, -1]);
    let spikes = through_time::forward_in_place(&p, &reference_u);
    let reference_out = if layout.pool {
        pool(&spikes, &layout)
    } else {
        spikes
    };
    let u = x.copy();
    let out = cpu::forward_tensor(&p, &layout, &u).expect("a CPU tensor");
    assert_same(&u, &reference_u, &format!("potentials of {layout:?}"));
    assert_same(&out, &reference_out, &format!("outputs of {layout:?}"));
    assert!(
        out.sum(Kind::Double).double_value(&[]) > 0.0,
        "no spikes: the test would check little"
    );

    let grad_spikes = if layout.pool {
        unpool(&upstream, &layout)
    } else {
        upstream.copy()
    }
    .contiguous()
    .view([steps, -1]);
    let reference_grad = through_time::backward_in_place(&p, &reference_u, &grad_spikes);
    assert!(cpu::backward_tensor(&p, &layout, &u, &upstream));
    assert_same(
        &u,
        &reference_grad,
        &format!("input gradients of {layout:?}"),
    );
    assert!(u.abs().sum(Kind::Double).double_value(&[]) > 0.0);
}

#[test]
fn pooled_planes_equal_the_tensor_path() {
    for kind in [Kind::Float, Kind::Double] {
        // Odd sizes: the pooling leaves the last row and column out.
        for (height, width) in [(9, 11), (8, 8), (6, 7)] {
            let layout = Layout {
                steps: 7,
                planes: 6,
                height,
                width,
                channels: 1,
                pool: true,
            };
            check(layout, kind, 3);
        }
    }
}

#[test]
fn plain_neurons_equal_the_tensor_path() {
    for kind in [Kind::Float, Kind::Double] {
        let layout = Layout {
            steps: 5,
            planes: 13,
            height: 1,
            width: 1,
            channels: 1,
            pool: false,
        };
        check(layout, kind, 4);
    }
}

/// Large enough that the work is split over threads (when libtorch has more
/// than one): the split must not change a value.
#[test]
fn split_over_threads_equals_the_tensor_path() {
    tch::set_num_threads(3);
    let layout = Layout {
        steps: 4,
        planes: 40,
        height: 62,
        width: 63,
        channels: 1,
        pool: true,
    };
    check(layout, Kind::Float, 5);
    let layout = Layout {
        steps: 3,
        planes: 70_000,
        height: 1,
        width: 1,
        channels: 1,
        pool: false,
    };
    check(layout, Kind::Float, 6);
}

#[test]
fn other_tensors_are_left_to_the_tensor_path() {
    let p = LifParams::default();
    let layout = Layout {
        steps: 2,
        planes: 3,
        height: 1,
        width: 1,
        channels: 1,
        pool: false,
    };
    let half = Tensor::zeros([6], (Kind::Half, Device::Cpu));
    assert!(cpu::forward_tensor(&p, &layout, &half).is_none());
    let strided = Tensor::zeros([6, 2], (Kind::Float, Device::Cpu)).select(1, 0);
    assert!(cpu::forward_tensor(&p, &layout, &strided).is_none());
    let wrong_size = Tensor::zeros([7], (Kind::Float, Device::Cpu));
    assert!(cpu::forward_tensor(&p, &layout, &wrong_size).is_none());
}

/// A layer stored channels last (`[T, S, H, W, C]`: `planes = S`,
/// `channels = C`) gives, value for value, what the same layer stored a plane
/// per channel (`[T, S, C, H, W]`: `planes = S·C`) does: potentials, pooled
/// outputs (odd sizes included) and input gradients, bit for bit.
#[test]
fn channels_last_layers_equal_the_plane_per_channel_layout() {
    let p = LifParams::default();
    for (height, width, pool) in [(9, 11, true), (8, 6, true), (5, 7, false)] {
        let (t, s, c) = (6usize, 3usize, 5usize);
        let planar = Layout {
            steps: t,
            planes: s * c,
            height,
            width,
            channels: 1,
            pool,
        };
        let stacked = Layout {
            planes: s,
            channels: c,
            ..planar
        };
        let dims = [t, s, c, height, width].map(|v| i64::try_from(v).unwrap());
        let (oh, ow) = if pool {
            (dims[3] / 2, dims[4] / 2)
        } else {
            (dims[3], dims[4])
        };
        let (x, upstream) = with_seed(9, || {
            (
                Tensor::rand(dims, (Kind::Float, Device::Cpu)) * 0.8 - 0.1,
                Tensor::randn(
                    [dims[0], dims[1], dims[2], oh, ow],
                    (Kind::Float, Device::Cpu),
                ),
            )
        });
        // [T, S, C, H, W] <-> [T, S, H, W, C].
        let last = |v: &Tensor| v.permute([0, 1, 3, 4, 2]).contiguous();
        let first = |v: &Tensor, h: i64, w: i64| {
            v.view([dims[0], dims[1], h, w, dims[2]])
                .permute([0, 1, 4, 2, 3])
                .contiguous()
        };
        let u1 = x.contiguous().view([-1]);
        let u2 = last(&x).view([-1]);
        let out1 = cpu::forward_tensor(&p, &planar, &u1).unwrap();
        let out2 = cpu::forward_tensor(&p, &stacked, &u2).unwrap();
        let what = format!("{height}x{width} pool {pool}");
        assert_same(
            &first(&u2, dims[3], dims[4]),
            &u1.view(dims),
            &format!("potentials {what}"),
        );
        assert_same(
            &first(&out2, oh, ow),
            &out1.view([dims[0], dims[1], dims[2], oh, ow]),
            &format!("outputs {what}"),
        );
        assert!(out1.sum(Kind::Double).double_value(&[]) > 0.0, "no spikes");
        assert!(cpu::backward_tensor(
            &p,
            &planar,
            &u1,
            &upstream.contiguous().view([-1])
        ));
        assert!(cpu::backward_tensor(
            &p,
            &stacked,
            &u2,
            &last(&upstream).view([-1])
        ));
        assert_same(
            &first(&u2, dims[3], dims[4]),
            &u1.view(dims),
            &format!("input gradients {what}"),
        );
    }
}

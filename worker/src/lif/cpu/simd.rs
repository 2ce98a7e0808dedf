//! The per-thread loops, compiled a second time for AVX2 with FMA and chosen
//! at run time when the CPU has them. Rust never fuses a multiply and an add
//! on its own, so the values are the same either way; only `mul_add` (which
//! is fused in both) becomes one instruction instead of a call.
#![allow(unsafe_code)]

use super::{Constants, Layout, Real};

/// [`super::forward_planes`], on AVX2 and FMA when the CPU has them.
pub(super) fn forward_planes<R: Real>(
    c: &Constants<R>,
    layout: &Layout,
    count: usize,
    u: &mut [&mut [R]],
    out: &mut [&mut [R]],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { forward_planes_avx2(c, layout, count, u, out) };
        return;
    }
    super::forward_planes(c, layout, count, u, out);
}

/// [`super::backward_planes`], on AVX2 and FMA when the CPU has them.
pub(super) fn backward_planes<R: Real>(
    c: &Constants<R>,
    layout: &Layout,
    count: usize,
    u: &mut [&mut [R]],
    grad: &[&[R]],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { backward_planes_avx2(c, layout, count, u, grad) };
        return;
    }
    super::backward_planes(c, layout, count, u, grad);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_planes_avx2<R: Real>(
    c: &Constants<R>,
    layout: &Layout,
    count: usize,
    u: &mut [&mut [R]],
    out: &mut [&mut [R]],
) {
    super::forward_planes(c, layout, count, u, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_planes_avx2<R: Real>(
    c: &Constants<R>,
    layout: &Layout,
    count: usize,
    u: &mut [&mut [R]],
    grad: &[&[R]],
) {
    super::backward_planes(c, layout, count, u, grad);
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::lif::LifParams;

    /// Values in [−0.1, 0.7) from a fixed linear congruential sequence.
    fn values(n: usize, mut state: u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                unit * 0.8 - 0.1
            })
            .collect()
    }

    /// The portable loops (what a CPU without AVX2 runs) give the AVX2 loops'
    /// values bit for bit; `tests/lif_cpu.rs` holds the AVX2 ones to libtorch.
    #[test]
    fn portable_loops_equal_the_avx2_ones() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return;
        }
        let c = Constants::<f32>::new(&LifParams::default());
        let layout = Layout {
            steps: 6,
            planes: 5,
            height: 7,
            width: 9,
            channels: 1,
            pool: true,
        };
        let step_len = layout.planes * layout.plane();
        let out_step = layout.planes * layout.out_plane();
        let run = |accelerated: bool| {
            let mut u = values(layout.len(), 3);
            let mut out = vec![0.0f32; layout.out_len()];
            let grad = values(layout.out_len(), 4);
            {
                let mut u_steps: Vec<&mut [f32]> = u.chunks_mut(step_len).collect();
                let mut out_steps: Vec<&mut [f32]> = out.chunks_mut(out_step).collect();
                if accelerated {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe {
                        forward_planes_avx2(
                            &c,
                            &layout,
                            layout.planes,
                            &mut u_steps,
                            &mut out_steps,
                        )
                    };
                } else {
                    super::super::forward_planes(
                        &c,
                        &layout,
                        layout.planes,
                        &mut u_steps,
                        &mut out_steps,
                    );
                }
            }
            let potentials = u.clone();
            {
                let mut u_steps: Vec<&mut [f32]> = u.chunks_mut(step_len).collect();
                let g_steps: Vec<&[f32]> = grad.chunks(out_step).collect();
                if accelerated {
                    // SAFETY: as above.
                    unsafe {
                        backward_planes_avx2(&c, &layout, layout.planes, &mut u_steps, &g_steps)
                    };
                } else {
                    super::super::backward_planes(
                        &c,
                        &layout,
                        layout.planes,
                        &mut u_steps,
                        &g_steps,
                    );
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (bits(&potentials), bits(&out), bits(&u))
        };
        let (portable, accelerated) = (run(false), run(true));
        assert!(
            portable.1.iter().any(|&b| b != 0),
            "no spikes: the test would check little"
        );
        assert_eq!(portable, accelerated);
    }
}

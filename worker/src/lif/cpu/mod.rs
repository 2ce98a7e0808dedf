//! LIF layers through time on the CPU, each direction one pass over the
//! layer's memory, with the conv blocks' 2×2 average pooling folded in.
//!
//! [`through_time`](super::through_time) runs on any device as a sequence of
//! tensor operations; each reads and writes the whole layer, a dozen passes
//! and several layer-sized temporaries per direction. Here a layer is walked
//! one plane (one channel of one sample, `H × W` values) at a time through all
//! its steps, so the previous step's plane is still in cache, and nothing but
//! the output is allocated. The arithmetic is the same operations in the same
//! order as `through_time` and libtorch's `avg_pool2d` (and its backward), so the
//! results are equal bit for bit (`tests/lif_cpu.rs` checks it).
//!
//! [`forward_tensor`] and [`backward_tensor`] run them on libtorch tensors.
//!
//! Layouts are time-major and contiguous: `[T, planes, H, W, channels]`. The
//! time-folded batch `[T·N, C, H, W]` of the network is `planes = N·C` with
//! one channel; stored channels last (`[T·N, H, W, C]` in memory, as a CPU
//! convolution leaves it) it is `planes = N` with `channels = C`, each value's
//! arithmetic the same. A fully connected layer's `[T·N, F]` is `planes = N·F`
//! with `H = W = 1`.

use std::ops::{Add, Div, Mul, Neg, Sub};

use tch::Kind;

use crate::lif::LifParams;

mod simd;
mod tensor;

pub use tensor::{applies_to, backward_tensor, forward_tensor};

/// A floating-point element type the kernels run on (`f32`, `f64`).
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Send
    + Sync
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// The libtorch element kind of this type.
    const KIND: Kind;
    /// The value of a parameter, rounded as libtorch rounds a scalar operand.
    fn of(value: f64) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self · b + c`, rounded once.
    fn mul_add(self, b: Self, c: Self) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const KIND: Kind = Kind::Float;
    #[allow(clippy::cast_possible_truncation)]
    fn of(value: f64) -> Self {
        value as f32
    }
    fn abs(self) -> Self {
        f32::abs(self)
    }
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32::mul_add(self, b, c)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const KIND: Kind = Kind::Double;
    fn of(value: f64) -> Self {
        value
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
    fn mul_add(self, b: Self, c: Self) -> Self {
        f64::mul_add(self, b, c)
    }
}

/// The shape of a layer: `steps × planes` planes of `height × width`
/// positions of `channels` values each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Time steps T.
    pub steps: usize,
    /// Planes per step (samples × channels, or samples × features).
    pub planes: usize,
    /// Rows of a plane.
    pub height: usize,
    /// Columns of a plane.
    pub width: usize,
    /// Values at each position, stored side by side (1: a plane per channel;
    /// C: channels last).
    pub channels: usize,
    /// Whether the spikes are average-pooled 2×2 (stride 2, floor).
    pub pool: bool,
}

impl Layout {
    /// Values of one plane.
    fn plane(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Values of one plane of the output: pooled, or the plane itself.
    fn out_plane(&self) -> usize {
        if self.pool {
            (self.height / 2) * (self.width / 2) * self.channels
        } else {
            self.plane()
        }
    }

    /// Values of the layer (`[T, planes, H, W, channels]`).
    pub fn len(&self) -> usize {
        self.steps * self.planes * self.plane()
    }

    /// Whether the layer has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values of the output: the pooled spikes `[T, planes, H/2, W/2,
    /// channels]`, or the spikes `[T, planes, H, W, channels]`.
    pub fn out_len(&self) -> usize {
        self.steps * self.planes * self.out_plane()
    }
}

/// The neuron parameters as the kernels use them, rounded once.
#[derive(Clone, Copy)]
struct Constants<R> {
    tau: R,
    vth: R,
    a: R,
    half_a: R,
}

impl<R: Real> Constants<R> {
    fn new(params: &LifParams) -> Self {
        Self {
            tau: R::of(params.tau),
            vth: R::of(params.vth),
            a: R::of(params.a),
            half_a: R::of(params.a / 2.0),
        }
    }
}

/// Splits a `[T, planes, k]` buffer into per-thread parts: part `i` holds, for
/// every step, the slice of planes `ranges[i]`.
fn split_by_planes<'a, R>(
    buffer: &'a mut [R],
    steps: usize,
    per_plane: usize,
    ranges: &[(usize, usize)],
) -> Vec<Vec<&'a mut [R]>> {
    let mut parts: Vec<Vec<&'a mut [R]>> =
        ranges.iter().map(|_| Vec::with_capacity(steps)).collect();
    let step_len = buffer.len() / steps.max(1);
    for mut step in buffer.chunks_mut(step_len.max(1)) {
        let mut taken = 0;
        for (part, &(start, end)) in parts.iter_mut().zip(ranges) {
            let rest = std::mem::take(&mut step);
            let (_, rest) = rest.split_at_mut((start - taken) * per_plane);
            let (mine, rest) = rest.split_at_mut((end - start) * per_plane);
            part.push(mine);
            step = rest;
            taken = end;
        }
    }
    parts
}

/// Plane ranges for up to `threads` threads, at least `min_values` values each.
fn plane_ranges(layout: &Layout, threads: usize, min_values: usize) -> Vec<(usize, usize)> {
    let work = layout.len().max(1);
    let threads = threads.clamp(1, (work / min_values.max(1)).max(1));
    let threads = threads.min(layout.planes.max(1));
    let per = layout.planes.div_ceil(threads);
    (0..threads)
        .map(|i| (i * per, ((i + 1) * per).min(layout.planes)))
        .filter(|(s, e)| s < e)
        .collect()
}

/// Fewest values a thread is given: below this, starting it costs more than
/// it saves.
const MIN_VALUES_PER_THREAD: usize = 1 << 16;

/// Runs the neurons forward. `u` holds the inputs `x_t` on entry and the
/// potentials `u_t` on return (what [`backward`] needs); `out` receives the
/// spikes, pooled 2×2 when `layout.pool`. Work is split by planes over up to
/// `threads` threads.
///
/// # Panics
/// If the buffers' lengths do not match `layout`.
pub fn forward<R: Real>(
    params: &LifParams,
    layout: &Layout,
    u: &mut [R],
    out: &mut [R],
    threads: usize,
) {
    assert_eq!(u.len(), layout.len(), "potentials buffer");
    assert_eq!(out.len(), layout.out_len(), "output buffer");
    if layout.is_empty() {
        return;
    }
    let c = Constants::new(params);
    let ranges = plane_ranges(layout, threads, MIN_VALUES_PER_THREAD);
    let u_parts = split_by_planes(u, layout.steps, layout.plane(), &ranges);
    let out_parts = split_by_planes(out, layout.steps, layout.out_plane(), &ranges);
    std::thread::scope(|scope| {
        for ((mut u, mut out), &(start, end)) in u_parts.into_iter().zip(out_parts).zip(&ranges) {
            scope.spawn(move || simd::forward_planes(&c, layout, end - start, &mut u, &mut out));
        }
    });
}

/// [`forward`] for one thread's planes: `u[t]` and `out[t]` are step `t`'s
/// slices of `count` planes.
#[inline(always)]
fn forward_planes<R: Real>(
    c: &Constants<R>,
    layout: &Layout,
    count: usize,
    u: &mut [&mut [R]],
    out: &mut [&mut [R]],
) {
    let plane = layout.plane();
    let out_plane = layout.out_plane();
    for p in 0..count {
        let span = p * plane..(p + 1) * plane;
        for t in 0..layout.steps {
            if t > 0 {
                let (before, after) = u.split_at_mut(t);
                let prev = &before[t - 1][span.clone()];
                let current = &mut after[0][span.clone()];
                // u_t = x_t + (u_{t−1} · τ) · (1 − o_{t−1}): the product is zero
                // where the neuron fired (through_time's masked_fill).
                for (x, &prev) in current.iter_mut().zip(prev) {
                    let decayed = if prev > c.vth { R::ZERO } else { prev * c.tau };
                    *x = *x + decayed;
                }
            }
            let current = &u[t][span.clone()];
            let target = &mut out[t][p * out_plane..(p + 1) * out_plane];
            if layout.pool {
                pool_spikes(c.vth, current, layout, target);
            } else {
                for (o, &v) in target.iter_mut().zip(current) {
                    *o = if v > c.vth { R::ONE } else { R::ZERO };
                }
            }
        }
    }
}

/// The 2×2 average of the spikes `1{u > V_th}` of one plane of `layout`
/// (floor: a last odd row or column is left out), each channel on its own.
/// Sums of 0/1 values are exact, so the order of the additions does not
/// matter.
#[inline(always)]
fn pool_spikes<R: Real>(vth: R, plane: &[R], layout: &Layout, out: &mut [R]) {
    let quarter = R::of(0.25);
    let channels = layout.channels;
    let row_len = layout.width * channels;
    let out_row_len = (layout.width / 2) * channels;
    if out_row_len == 0 {
        return;
    }
    for (i, row) in out.chunks_mut(out_row_len).enumerate() {
        let top = &plane[2 * i * row_len..(2 * i + 1) * row_len];
        let bottom = &plane[(2 * i + 1) * row_len..(2 * i + 2) * row_len];
        for (k, o) in row.iter_mut().enumerate() {
            // Output k is column j, channel ch; its window's left column is
            // 2j, the right one a position (`channels` values) further.
            let (j, ch) = (k / channels, k % channels);
            let left = 2 * j * channels + ch;
            let right = left + channels;
            let fired = |v: R| if v > vth { R::ONE } else { R::ZERO };
            let sum =
                fired(top[left]) + fired(top[right]) + fired(bottom[left]) + fired(bottom[right]);
            *o = sum * quarter;
        }
    }
}

/// The STBP backward pass through time. `u` holds the potentials left by
/// [`forward`] and receives the gradient with respect to the inputs `x_t`;
/// `grad` is the gradient of the loss with respect to [`forward`]'s output
/// (the pooled spikes when `layout.pool`, as `avg_pool2d_backward` spreads it).
///
/// # Panics
/// If the buffers' lengths do not match `layout`.
pub fn backward<R: Real>(
    params: &LifParams,
    layout: &Layout,
    u: &mut [R],
    grad: &[R],
    threads: usize,
) {
    assert_eq!(u.len(), layout.len(), "potentials buffer");
    assert_eq!(grad.len(), layout.out_len(), "gradient buffer");
    if layout.is_empty() {
        return;
    }
    let c = Constants::new(params);
    let ranges = plane_ranges(layout, threads, MIN_VALUES_PER_THREAD);
    let u_parts = split_by_planes(u, layout.steps, layout.plane(), &ranges);
    let step_len = layout.planes * layout.out_plane();
    std::thread::scope(|scope| {
        for (mut u, &(start, end)) in u_parts.into_iter().zip(&ranges) {
            let grads: Vec<&[R]> = grad
                .chunks(step_len)
                .map(|g| &g[start * layout.out_plane()..end * layout.out_plane()])
                .collect();
            scope.spawn(move || simd::backward_planes(&c, layout, end - start, &mut u, &grads));
        }
    });
}

/// [`backward`] for one thread's planes (as [`forward_planes`]).
#[inline(always)]
fn backward_planes<R: Real>(
    c: &Constants<R>,
    layout: &Layout,
    count: usize,
    u: &mut [&mut [R]],
    grad: &[&[R]],
) {
    let plane = layout.plane();
    let out_plane = layout.out_plane();
    let mut upstream = vec![R::ZERO; plane];
    for p in 0..count {
        let span = p * plane..(p + 1) * plane;
        for t in (0..layout.steps).rev() {
            let g = &grad[t][p * out_plane..(p + 1) * out_plane];
            if layout.pool {
                unpool(g, layout, &mut upstream);
            } else {
                upstream.copy_from_slice(g);
            }
            let (now, later) = u.split_at_mut(t + 1);
            let current = &mut now[t][span.clone()];
            let next = later.first().map(|n| &n[span.clone()]);
            match next {
                // δ_{T−1} = A_{T−1}.
                None => {
                    for (v, &g) in current.iter_mut().zip(&upstream) {
                        *v = coefficients(c, *v, g).0;
                    }
                }
                // δ_t = A_t + δ_{t+1} · B_t, rounded once: libtorch's
                // addcmul in through_time fuses it too (checked bit for bit).
                Some(next) => {
                    for ((v, &g), &d) in current.iter_mut().zip(&upstream).zip(next) {
                        let (a, b) = coefficients(c, *v, g);
                        *v = d.mul_add(b, a);
                    }
                }
            }
        }
    }
}

/// `A = g / a · m` and `B = −(τ u · m / a) + τ (1 − o)` for one potential `u`
/// and its upstream gradient `g`, in through_time's order of operations.
#[inline(always)]
fn coefficients<R: Real>(c: &Constants<R>, u: R, g: R) -> (R, R) {
    let window = if (u - c.vth).abs() < c.half_a {
        R::ONE
    } else {
        R::ZERO
    };
    let leak = if u > c.vth { R::ZERO } else { R::ONE };
    let a = g / c.a * window;
    let b = -(u * c.tau * window / c.a) + leak * c.tau;
    (a, b)
}

/// `avg_pool2d_backward` for one plane of `layout`: each input position under
/// a 2×2 window gets `0 + g / 4` of its window's gradient (each channel its
/// own); a last odd row or column gets 0.
#[inline(always)]
fn unpool<R: Real>(grad: &[R], layout: &Layout, out: &mut [R]) {
    let four = R::of(4.0);
    let (height, width, channels) = (layout.height, layout.width, layout.channels);
    let row_len = width * channels;
    let out_row_len = (width / 2) * channels;
    for (h, row) in out.chunks_mut(row_len).enumerate().take(height) {
        let i = h / 2;
        if i >= height / 2 || out_row_len == 0 {
            row.fill(R::ZERO);
            continue;
        }
        let g_row = &grad[i * out_row_len..(i + 1) * out_row_len];
        for (pair, g_pos) in row
            .chunks_exact_mut(2 * channels)
            .zip(g_row.chunks_exact(channels))
        {
            let (left, right) = pair.split_at_mut(channels);
            for ((l, r), &g) in left.iter_mut().zip(right).zip(g_pos) {
                let v = R::ZERO + g / four;
                *l = v;
                *r = v;
            }
        }
        if width % 2 == 1 {
            row[(width - 1) * channels..].fill(R::ZERO);
        }
    }
}

//! From a sample's events to the network input: time windows of `dt` ms, counts
//! per (polarity, x, y), first `T` windows (or a crop), zero padding, bin mode,
//! layout `[2, X, Y, T]`. This is DESIGN.md "Data semantics" steps 1-6 and matches
//! tonic's `Downsample(time_factor=0.001)`, `TimeAlignment()`,
//! `ToFrame(sensor_size, time_window=dt)` followed by a transpose to `[P, X, Y, T]`
//! (checked element for element by the golden tests).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::events::Event;

/// How events are counted into a frame (DESIGN.md step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BinMode {
    /// 1.0 where a pixel saw any event in the window.
    Or,
    /// The event count.
    Sum,
    /// The count divided by the largest count in the sample.
    SumNorm,
}

/// How to turn a sample into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    /// Window length in milliseconds.
    pub dt_ms: u32,
    /// `T`: windows kept (missing ones are zero).
    pub steps: usize,
    /// What a pixel's value is.
    pub mode: BinMode,
    /// `X` (128 for DVS128).
    pub width: usize,
    /// `Y` (128 for DVS128).
    pub height: usize,
    /// Spatial down-scaling: event `(x, y)` counts into pixel `(x / k, y / k)`
    /// (1 keeps the sensor's resolution).
    pub downscale: usize,
}

impl FrameSpec {
    /// A DVS128 (128 × 128) spec.
    pub fn dvs128(dt_ms: u32, steps: usize, mode: BinMode) -> Self {
        Self::dvs128_downscaled(dt_ms, steps, mode, 1)
    }

    /// A DVS128 spec down-scaled by `k` (a factor of 128): `128/k × 128/k`.
    pub fn dvs128_downscaled(dt_ms: u32, steps: usize, mode: BinMode, k: usize) -> Self {
        let k = k.max(1);
        FrameSpec {
            dt_ms,
            steps,
            mode,
            width: 128 / k,
            height: 128 / k,
            downscale: k,
        }
    }

    /// Number of values in one sample's tensor: `2 · X · Y · T`.
    pub fn len(&self) -> usize {
        2 * self.width * self.height * self.steps
    }

    /// Whether the tensor has no values (`T`, `X` or `Y` is zero).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tensor's shape `[2, X, Y, T]`.
    pub fn shape(&self) -> [usize; 4] {
        [2, self.width, self.height, self.steps]
    }
}

/// Which run of `T` windows to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// Windows `0..T`.
    First,
    /// Windows `k..k + T` (random crop picks `k`, see [`random_start`]).
    Start(usize),
}

/// The sample's time in whole milliseconds: `floor(t_us / 1000)`.
#[inline]
fn to_ms(t_us: i64) -> i64 {
    t_us.div_euclid(1000)
}

/// The number of complete `dt` windows of a sample (DESIGN.md step 2):
/// `max(1, floor((t_last − t_first − dt) / dt) + 1)` in milliseconds after the
/// µs → ms conversion, with `t_first` the smallest and `t_last` the last event's
/// time (as tonic's `SliceByTime` does; readers return sorted events, where the
/// two agree). The last, incomplete window is dropped. An empty sample has 0.
pub fn window_count(events: &[Event], dt_ms: u32) -> usize {
    let Some(last) = events.last() else {
        return 0;
    };
    let dt = i64::from(dt_ms.max(1));
    let first = events.iter().map(|e| e.t).min().unwrap_or(last.t);
    let duration = to_ms(last.t) - to_ms(first);
    let n = (duration - dt).div_euclid(dt) + 1;
    n.max(1) as usize
}

/// A uniformly random start for a crop of `steps` windows out of `windows`
/// (0 when the sample is not longer than the crop).
pub fn random_start<R: Rng + ?Sized>(windows: usize, steps: usize, rng: &mut R) -> usize {
    if windows <= steps {
        0
    } else {
        rng.random_range(0..=windows - steps)
    }
}

/// Bins a sample into a new `[2, X, Y, T]` row-major tensor (see [`bin_into`]).
pub fn bin(events: &[Event], spec: &FrameSpec, crop: Crop) -> Vec<f32> {
    let mut out = vec![0.0f32; spec.len()];
    bin_into(events, spec, crop, &mut out);
    out
}

/// Bins a sample into `out` (length [`FrameSpec::len`], overwritten), layout
/// `[2, X, Y, T]` row-major: index `((p · X + x) · Y + y) · T + t`, `p = 1` for
/// ON events, with `(x, y)` the event's pixel divided by
/// [`FrameSpec::downscale`]. Windows beyond the sample are zero. Events off the
/// `X × Y` grid are skipped (readers reject them already).
///
/// # Panics
/// If `out.len() != spec.len()` (a caller bug, not bad input).
pub fn bin_into(events: &[Event], spec: &FrameSpec, crop: Crop, out: &mut [f32]) {
    assert_eq!(out.len(), spec.len(), "output buffer has the wrong length");
    out.fill(0.0);
    let (h, steps) = (spec.height, spec.steps);
    let w = spec.width;
    let mut max = 0.0f32;
    visit_kept(events, spec, crop, |k, p, x, y| {
        let v = &mut out[((p * w + x) * h + y) * steps + k];
        match spec.mode {
            BinMode::Or => *v = 1.0,
            BinMode::Sum | BinMode::SumNorm => {
                *v += 1.0;
                max = max.max(*v);
            }
        }
    });
    if spec.mode == BinMode::SumNorm && max > 0.0 {
        for v in out.iter_mut() {
            *v /= max;
        }
    }
}

/// Calls `f(k, p, x, y)` for every event that [`bin_into`] counts: `k` is the
/// window relative to the crop's start (`0..spec.steps`), `p` the polarity (1
/// for ON), `x < X`, `y < Y`. Windows, crop and skipped events are exactly
/// `bin_into`'s (it is built on this), so a caller that counts these visits
/// gets `bin_into`'s counts in any layout. Returns the sample's
/// [`window_count`].
pub fn visit_kept(
    events: &[Event],
    spec: &FrameSpec,
    crop: Crop,
    mut f: impl FnMut(usize, usize, usize, usize),
) -> usize {
    let Some(last) = events.last() else {
        return 0;
    };
    let dt = i64::from(spec.dt_ms.max(1));
    // Readers give sorted events; then the first event is the earliest and
    // only the kept windows' events need visiting.
    let sorted = events.windows(2).all(|p| p[0].t <= p[1].t);
    let first_ms = if sorted {
        to_ms(events[0].t)
    } else {
        events.iter().map(|e| e.t).min().map_or(0, to_ms)
    };
    let duration = to_ms(last.t) - first_ms;
    let windows = ((duration - dt).div_euclid(dt) + 1).max(1) as usize;
    let start = match crop {
        Crop::First => 0,
        Crop::Start(k) => k,
    };
    let end = windows.min(start.saturating_add(spec.steps));
    if start >= end {
        return windows;
    }
    let (w, h) = (spec.width, spec.height);
    let scale = spec.downscale.max(1);
    // The factors configs allow are powers of two: a shift, not a division,
    // per event on this hot loop.
    let shift = scale.is_power_of_two().then(|| scale.trailing_zeros());
    // Times relative to the first millisecond; kept windows are [lo, hi).
    let lo = (start as i64) * dt;
    let hi = (end as i64) * dt;
    let events = if sorted {
        let a = events.partition_point(|e| to_ms(e.t) - first_ms < lo);
        let b = events.partition_point(|e| to_ms(e.t) - first_ms < hi);
        &events[a..b]
    } else {
        events
    };
    // The current window [k_lo, k_lo + dt) avoids a division per event on
    // sorted input.
    let (mut k_lo, mut k_hi, mut k) = (i64::MAX, i64::MIN, 0usize);
    for e in events {
        let tm = to_ms(e.t) - first_ms;
        if tm < lo || tm >= hi {
            continue;
        }
        if tm < k_lo || tm >= k_hi {
            let window = tm / dt;
            k_lo = window * dt;
            k_hi = k_lo + dt;
            k = window as usize - start;
        }
        let (x, y) = match shift {
            Some(k) => (usize::from(e.x) >> k, usize::from(e.y) >> k),
            None => (usize::from(e.x) / scale, usize::from(e.y) / scale),
        };
        if x >= w || y >= h {
            continue;
        }
        f(k, usize::from(e.p), x, y);
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn events(n: usize) -> Vec<Event> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut t = 1_000_000i64;
        (0..n)
            .map(|_| {
                t += rng.random_range(0..400);
                Event {
                    t,
                    x: rng.random_range(0..128),
                    y: rng.random_range(0..128),
                    p: rng.random_bool(0.5),
                }
            })
            .collect()
    }

    /// Sums `k × k` blocks of a full-resolution `[2, 128, 128, T]` SUM frame.
    fn block_sums(full: &[f32], k: usize, steps: usize) -> Vec<f32> {
        let s = 128 / k;
        let mut out = vec![0.0f32; 2 * s * s * steps];
        for p in 0..2 {
            for x in 0..128 {
                for y in 0..128 {
                    for t in 0..steps {
                        out[((p * s + x / k) * s + y / k) * steps + t] +=
                            full[((p * 128 + x) * 128 + y) * steps + t];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_downscaled_frame_is_the_block_sum_of_the_full_one() {
        let ev = events(20_000);
        let steps = 12;
        let full = bin(
            &ev,
            &FrameSpec::dvs128(30, steps, BinMode::Sum),
            Crop::Start(2),
        );
        for k in [2usize, 4, 8] {
            let sum_spec = FrameSpec::dvs128_downscaled(30, steps, BinMode::Sum, k);
            assert_eq!((sum_spec.width, sum_spec.height), (128 / k, 128 / k));
            let want = block_sums(&full, k, steps);
            let sum = bin(&ev, &sum_spec, Crop::Start(2));
            assert_eq!(sum, want, "SUM, k = {k}");
            let or_spec = FrameSpec::dvs128_downscaled(30, steps, BinMode::Or, k);
            let or: Vec<f32> = want
                .iter()
                .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
                .collect();
            assert_eq!(bin(&ev, &or_spec, Crop::Start(2)), or, "OR, k = {k}");
            let norm_spec = FrameSpec::dvs128_downscaled(30, steps, BinMode::SumNorm, k);
            let max = want.iter().copied().fold(0.0f32, f32::max);
            assert!(max > 1.0, "blocks gather several events");
            let norm: Vec<f32> = want.iter().map(|&v| v / max).collect();
            assert_eq!(
                bin(&ev, &norm_spec, Crop::Start(2)),
                norm,
                "SUM_NORM, k = {k}"
            );
        }
    }
}

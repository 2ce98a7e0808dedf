//! Batches out of the cache: rows gathered by index on the cache's device, then
//! turned into the network input there.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{FrameSpec, random_start};
use tch::{Kind, Tensor};

use super::{FrameCache, FrameSettings, HostRows, Rows, Storage};
use crate::host_tensor::filled_f32;
use crate::sample::{LoadError, SampleRef};
use crate::upload::{try_upload, upload};

/// A batch as it comes out of the cache: `N · T` compact rows (see the
/// module docs for the row layout), on the cache's device.
#[derive(Debug)]
pub struct CompactBatch {
    rows: CompactRows,
    n: usize,
    steps: usize,
    row_len: usize,
    storage: Storage,
    settings: FrameSettings,
}

/// A batch's rows.
#[derive(Debug)]
enum CompactRows {
    Host(HostRows),
    /// `[N, T, row_len]`.
    Tensor(Tensor),
}

/// Rows `idx` of `all` (rows of `row_len`), concatenated.
fn take<T: Copy>(all: &[T], idx: &[i64], row_len: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(idx.len() * row_len);
    for &i in idx {
        let i = i as usize;
        out.extend_from_slice(&all[i * row_len..(i + 1) * row_len]);
    }
    out
}

impl FrameCache {
    /// The cache rows of a pass over `samples` with `steps` windows, `T` per
    /// sample in order: the crop's windows (start from the sample's crop draw,
    /// as the uncached loader draws it), the zero row past the sample's end.
    pub fn row_indices(&self, samples: &[SampleRef], steps: usize) -> Result<Vec<i64>, LoadError> {
        let mut idx = Vec::with_capacity(samples.len() * steps);
        for s in samples {
            let rows = self.sample_rows(s)?;
            let start = match s.crop_draw {
                None => 0,
                Some(draw) => {
                    random_start(rows.windows, steps, &mut ChaCha8Rng::seed_from_u64(draw))
                }
            };
            idx.extend((start..start + steps).map(|w| {
                if w < rows.stored {
                    (rows.offset + w) as i64
                } else {
                    self.zero_row as i64
                }
            }));
        }
        Ok(idx)
    }

    /// Gathers a batch of `samples` for a pass with `spec` (whose settings must
    /// be the cache's; see [`FrameCache::covers`]).
    pub fn gather(
        &self,
        samples: &[SampleRef],
        spec: &FrameSpec,
    ) -> Result<CompactBatch, LoadError> {
        let steps = spec.steps;
        let idx = self.row_indices(samples, steps)?;
        let rows = match &self.rows {
            Rows::Host(HostRows::U8(all)) => {
                CompactRows::Host(HostRows::U8(take(all, &idx, self.row_len)))
            }
            Rows::Host(HostRows::I16(all)) => {
                CompactRows::Host(HostRows::I16(take(all, &idx, self.row_len)))
            }
            Rows::Host(HostRows::I32(all)) => {
                CompactRows::Host(HostRows::I32(take(all, &idx, self.row_len)))
            }
            Rows::Tensor(all) => {
                let torch = |during: &'static str| {
                    move |e: tch::TchError| LoadError::Cache {
                        during,
                        message: e.to_string().lines().next().unwrap_or_default().to_owned(),
                    }
                };
                // Not a blocking copy: that would wait for the device's
                // queued work once per batch.
                let index = Tensor::f_from_slice(&idx)
                    .and_then(|t| try_upload(&t, self.device))
                    .map_err(torch("moving batch indices to the device"))?;
                let rows = {
                    let all = all.lock().unwrap_or_else(|p| p.into_inner());
                    all.f_index_select(0, &index)
                        .map_err(torch("gathering a batch from the frame cache"))?
                };
                CompactRows::Tensor(
                    rows.f_view([samples.len() as i64, steps as i64, -1])
                        .map_err(torch("shaping a cached batch"))?,
                )
            }
        };
        Ok(CompactBatch {
            rows,
            n: samples.len(),
            steps,
            row_len: self.row_len,
            storage: self.storage,
            settings: self.settings,
        })
    }
}

/// Writes sample `i`'s counts (its `T` rows) into the time-major input `o`
/// (`[T, N, values]`, zeroed), divided by their largest when `norm`, as
/// `common::frames::bin_into` computes them.
fn counts_into<T: Copy + PartialEq + Default>(
    o: &mut [f32],
    d: &[T],
    (i, n, t, row_len, vals): (usize, usize, usize, usize, usize),
    norm: bool,
    to_f32: impl Fn(T) -> f32,
) {
    let zero = T::default();
    let mut max = 0f32;
    for k in 0..t {
        let row = &d[(i * t + k) * row_len..][..row_len.min(vals)];
        let out = &mut o[(k * n + i) * vals..][..vals];
        for (x, &c) in out.iter_mut().zip(row) {
            if c != zero {
                let f = to_f32(c);
                *x = f;
                max = max.max(f);
            }
        }
    }
    if norm && max > 0.0 {
        for k in 0..t {
            for x in &mut o[(k * n + i) * vals..][..vals] {
                *x /= max;
            }
        }
    }
}

impl CompactBatch {
    /// Samples in the batch.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the batch has no samples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The network input `[N, 2, X, Y, T]`, float32, on the rows' device:
    /// bits as 0/1, counts as floats, `SUM_NORM` counts divided by each
    /// sample's largest count in the rows (left as they are when all zero).
    /// Stored time-major (`[T, N, 2, X, Y]` in memory, a permuted view), the
    /// order the network's first convolution reads, so no pass transposes it.
    ///
    /// # Panics
    /// On a libtorch failure, as tch's infallible calls do (callers guard).
    pub fn to_input(&self) -> Tensor {
        match &self.rows {
            CompactRows::Tensor(rows) => self.tensor_input(rows),
            CompactRows::Host(rows) => match self.host_tensor(rows) {
                Ok(t) => t,
                Err(e) => panic!("building a batch's input: {e}"),
            },
        }
    }

    /// The input of a batch of host rows (`None` for device rows), as
    /// [`CompactBatch::to_input`] builds it, failing instead of panicking.
    pub fn try_host_input(&self) -> Option<Result<Tensor, tch::TchError>> {
        let CompactRows::Host(rows) = &self.rows else {
            return None;
        };
        Some(self.host_tensor(rows))
    }

    /// The input's time-major shape `[T, N, 2, X, Y]`.
    fn time_major_shape(&self) -> [i64; 5] {
        let s = &self.settings;
        let (w, h) = (s.width as i64, s.height as i64);
        [self.steps as i64, self.n as i64, 2, w, h]
    }

    /// The input built on the host, written straight into the tensor.
    fn host_tensor(&self, rows: &HostRows) -> Result<Tensor, tch::TchError> {
        let per = self.settings.window_values() * self.steps;
        filled_f32(self.n * per, |out| self.host_input(rows, out))?
            .f_view(self.time_major_shape())?
            .f_permute([1, 2, 3, 4, 0])
    }

    /// Writes the input into `out` (zeroed, `T · N · values` long, time-major)
    /// in one pass over the rows.
    fn host_input(&self, rows: &HostRows, out: &mut [f32]) {
        let (n, t, row_len) = (self.n, self.steps, self.row_len);
        let vals = self.settings.window_values();
        if vals * t == 0 {
            return;
        }
        let norm = self.settings.mode == BinMode::SumNorm;
        for i in 0..n {
            let at = (i, n, t, row_len, vals);
            match rows {
                HostRows::U8(d) if self.storage == Storage::Bits => {
                    for k in 0..t {
                        let row = &d[(i * t + k) * row_len..][..row_len];
                        let o = &mut out[(k * n + i) * vals..][..vals];
                        for (b, &byte) in row.iter().enumerate() {
                            let mut bits = byte;
                            while bits != 0 {
                                let v = b * 8 + bits.trailing_zeros() as usize;
                                bits &= bits - 1;
                                if v < vals {
                                    o[v] = 1.0;
                                }
                            }
                        }
                    }
                }
                HostRows::U8(d) => counts_into(out, d, at, norm, f32::from),
                HostRows::I16(d) => counts_into(out, d, at, norm, f32::from),
                HostRows::I32(d) => counts_into(out, d, at, norm, |c| c as f32),
            }
        }
    }

    /// The input built by tensor ops on the rows' device (made time-major
    /// while still compact, then converted).
    fn tensor_input(&self, rows: &Tensor) -> Tensor {
        let [t, n, _, w, h] = self.time_major_shape();
        let values = self.settings.window_values() as i64;
        let time_major = |x: Tensor| x.reshape([n, t, 2, w, h]).transpose(0, 1).contiguous();
        let input = match self.storage {
            Storage::Bits => {
                let masks = upload(
                    &Tensor::from_slice(&[1u8, 2, 4, 8, 16, 32, 64, 128]),
                    rows.device(),
                );
                let bits = rows
                    .unsqueeze(-1)
                    .bitwise_and_tensor(&masks)
                    .ne(0)
                    .reshape([n, t, -1])
                    .narrow(2, 0, values);
                time_major(bits).to_kind(Kind::Float)
            }
            Storage::U8 | Storage::I16 | Storage::I32 => {
                let counts = time_major(rows.shallow_clone()).to_kind(Kind::Float);
                if self.settings.mode == BinMode::SumNorm {
                    let max = rows
                        .amax([1, 2], false)
                        .to_kind(Kind::Float)
                        .clamp_min(1.0)
                        .view([1, n, 1, 1, 1]);
                    counts / max
                } else {
                    counts
                }
            }
        };
        input.permute([1, 2, 3, 4, 0])
    }
}

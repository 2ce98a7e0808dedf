//! Batches out of the cache: rows gathered by index on the cache's device, then
//! turned into the network input there.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spikecv_common::config::BinMode;
use spikecv_common::frames::{FrameSpec, random_start};
use tch::{Kind, Tensor};

use super::{FrameCache, FrameSettings, Storage};
use crate::loader::{LoadError, SampleRef};

/// A batch as it comes out of the cache: `[N, T, row]` compact rows on the
/// cache's device (see the module docs for the row layout).
#[derive(Debug)]
pub struct CompactBatch {
    /// `[N, T, row_len]`, the cache's element kind.
    pub rows: Tensor,
    storage: Storage,
    settings: FrameSettings,
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
        let torch = |during: &'static str| {
            move |e: tch::TchError| LoadError::Cache {
                during,
                message: e.to_string().lines().next().unwrap_or_default().to_owned(),
            }
        };
        let index = Tensor::f_from_slice(&idx)
            .and_then(|t| t.f_to_device(self.device))
            .map_err(torch("moving batch indices to the device"))?;
        let rows = {
            let all = self.rows.lock().unwrap_or_else(|p| p.into_inner());
            all.f_index_select(0, &index)
                .map_err(torch("gathering a batch from the frame cache"))?
        };
        let rows = rows
            .f_view([samples.len() as i64, steps as i64, -1])
            .map_err(torch("shaping a cached batch"))?;
        Ok(CompactBatch {
            rows,
            storage: self.storage,
            settings: self.settings,
        })
    }
}

impl CompactBatch {
    /// The network input `[N, 2, X, Y, T]`, float32, on the rows' device:
    /// bits as 0/1, counts as floats, `SUM_NORM` counts divided by each
    /// sample's largest count in the rows (1 when the sample is empty).
    ///
    /// # Panics
    /// On a libtorch failure, as tch's infallible calls do (callers guard).
    pub fn to_input(&self) -> Tensor {
        let size = self.rows.size();
        let (n, t) = (size[0], size[1]);
        let s = &self.settings;
        let values = s.window_values() as i64;
        let floats = match self.storage {
            Storage::Bits => {
                let masks = Tensor::from_slice(&[1u8, 2, 4, 8, 16, 32, 64, 128])
                    .to_device(self.rows.device());
                self.rows
                    .unsqueeze(-1)
                    .bitwise_and_tensor(&masks)
                    .ne(0)
                    .reshape([n, t, -1])
                    .narrow(2, 0, values)
                    .to_kind(Kind::Float)
            }
            Storage::U8 | Storage::I16 | Storage::I32 => {
                let counts = self.rows.to_kind(Kind::Float);
                if s.mode == BinMode::SumNorm {
                    let max = self
                        .rows
                        .amax([1, 2], true)
                        .to_kind(Kind::Float)
                        .clamp_min(1.0);
                    counts / max
                } else {
                    counts
                }
            }
        };
        floats
            .reshape([n, t, 2, s.width as i64, s.height as i64])
            .permute([0, 2, 3, 4, 1])
            .contiguous()
    }
}

//! A binned batch in compact form for its trip to a GPU: the exact event
//! counts as the narrowest integer that holds them all (`u8` for OR and for
//! most SUM batches), with each sample's largest count, turned into the
//! network input on the device: counts as floats, divided by the sample's
//! largest for SUM_NORM. The result equals binning into floats on the host
//! bit for bit (`bin_into` counts in floats, exactly, and divides the same
//! way). A quarter of the float batch's bytes crosses the bus, from pinned
//! memory, without blocking ([`crate::upload`]).

use spikecv_common::events::frames::BinMode;
use tch::{Device, Kind, Tensor};

use super::staged;
use crate::upload::Role;

/// Counts of a batch, `[N, 2, X, Y, T]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Counts {
    /// Every count below 256.
    U8(Vec<u8>),
    /// Every count below 32768.
    I16(Vec<i16>),
    /// Larger counts.
    I32(Vec<i32>),
}

/// A batch as counts (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct CountBatch {
    counts: Counts,
    /// Each sample's largest count (for SUM_NORM).
    max: Vec<f32>,
    normalize: bool,
}

impl CountBatch {
    /// The counts binned for `mode` (with SUM_NORM binned as SUM: undivided),
    /// `per` values per sample. `None` if a value is not a whole count in
    /// range, which binning as SUM or OR never produces.
    pub fn from_binned(binned: &[f32], per: usize, mode: BinMode) -> Option<CountBatch> {
        let largest = binned.iter().copied().fold(0.0f32, f32::max);
        if binned.iter().any(|&v| v < 0.0 || v.fract() != 0.0) || largest > i32::MAX as f32 {
            return None;
        }
        // Whole numbers in range: the casts are exact.
        let counts = if largest <= f32::from(u8::MAX) {
            Counts::U8(binned.iter().map(|&v| v as u8).collect())
        } else if largest <= f32::from(i16::MAX) {
            Counts::I16(binned.iter().map(|&v| v as i16).collect())
        } else {
            Counts::I32(binned.iter().map(|&v| v as i32).collect())
        };
        let max = binned
            .chunks(per.max(1))
            .map(|s| s.iter().copied().fold(0.0f32, f32::max))
            .collect();
        Some(CountBatch {
            counts,
            max,
            normalize: mode == BinMode::SumNorm,
        })
    }

    /// The network input `shape` (`[N, 2, X, Y, T]`), float, on `device`: the
    /// counts uploaded as they are, then converted there.
    ///
    /// # Panics
    /// On a libtorch failure, as tch's infallible calls do (callers guard).
    pub fn to_input(&self, shape: [i64; 5], device: Device) -> Tensor {
        let counts = match &self.counts {
            Counts::U8(v) => Tensor::from_slice(v),
            Counts::I16(v) => Tensor::from_slice(v),
            Counts::I32(v) => Tensor::from_slice(v),
        };
        let input = staged(Role::Input, &counts.view(shape), device).to_kind(Kind::Float);
        if !self.normalize {
            return input;
        }
        // bin_into divides only samples with events: a largest count of 0
        // leaves zeros, as dividing them by 1 does.
        let max = staged(Role::Scale, &Tensor::from_slice(&self.max), device)
            .clamp_min(1.0)
            .view([shape[0], 1, 1, 1, 1]);
        input / max
    }

    /// Bytes of the counts (what crosses to the device).
    pub fn bytes(&self) -> usize {
        match &self.counts {
            Counts::U8(v) => v.len(),
            Counts::I16(v) => v.len() * 2,
            Counts::I32(v) => v.len() * 4,
        }
    }
}

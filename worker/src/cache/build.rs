//! Building a frame cache: recordings read and binned on every core into
//! per-sample blocks, then copied into one rows tensor on the device.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use spikecv_common::events::Event;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, visit_kept, window_count};
use tch::{Device, Tensor};

use super::{
    CacheError, CacheNeed, FrameCache, FrameSettings, HostRows, Placement, Rows, SampleRows,
    Storage,
};
use crate::sample::{EventSource, LoadError};

/// One sample's rows before they go to the device.
struct Block {
    windows: usize,
    stored: usize,
    max: u32,
    data: Data,
}

/// A block's values, in the narrowest type that held them.
enum Data {
    Bits(Vec<u8>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Block {
    fn bytes(&self) -> u64 {
        let n = match &self.data {
            Data::Bits(v) | Data::U8(v) => v.len(),
            Data::U16(v) => 2 * v.len(),
            Data::U32(v) => 4 * v.len(),
        };
        n as u64
    }

    /// The block as a host tensor (u16/u32 counts as i32: tch has no
    /// unsigned wide kinds; `copy_` narrows them exactly into the cache kind,
    /// which the largest count chose).
    fn tensor(&self) -> Result<Tensor, CacheError> {
        let widened = |v: &[u32]| -> Vec<i32> { v.iter().map(|&c| c as i32).collect() };
        let t = match &self.data {
            Data::Bits(v) | Data::U8(v) => Tensor::f_from_slice(v),
            Data::U16(v) => {
                Tensor::f_from_slice(&v.iter().map(|&c| i32::from(c)).collect::<Vec<_>>())
            }
            Data::U32(v) => Tensor::f_from_slice(&widened(v)),
        };
        t.map_err(CacheError::torch("copying a sample into the frame cache"))
    }
}

/// A counter type for event counts.
trait Count: Copy + Default {
    const MAX: u32;
    fn get(self) -> u32;
    fn inc(&mut self);
}

macro_rules! count_impl {
    ($t:ty) => {
        impl Count for $t {
            const MAX: u32 = <$t>::MAX as u32;
            fn get(self) -> u32 {
                u32::from(self)
            }
            fn inc(&mut self) {
                *self += 1;
            }
        }
    };
}
count_impl!(u8);
count_impl!(u16);
count_impl!(u32);

/// Counts `stored` windows into `[stored, 2, X, Y]`; `None` when a count
/// would pass `T::MAX`.
fn count<T: Count>(events: &[Event], s: &FrameSettings, stored: usize) -> Option<(Vec<T>, u32)> {
    let (w, h, vals) = (s.width, s.height, s.window_values());
    let mut buf = vec![T::default(); stored * vals];
    let (mut max, mut overflow) = (0u32, false);
    visit_kept(events, &s.spec(stored), Crop::First, |k, p, x, y| {
        let c = &mut buf[k * vals + (p * w + x) * h + y];
        if c.get() == T::MAX {
            overflow = true;
        } else {
            c.inc();
            max = max.max(c.get());
        }
    });
    (!overflow).then_some((buf, max))
}

/// Bins one sample: every window up to the horizon.
fn bin_block(events: &[Event], s: &FrameSettings, horizon: Option<usize>) -> Block {
    let windows = window_count(events, s.dt_ms);
    let stored = horizon.map_or(windows, |h| windows.min(h));
    let (w, h, vals) = (s.width, s.height, s.window_values());
    let (data, max) = if s.mode == BinMode::Or {
        let row = Storage::Bits.row_len(vals);
        let mut buf = vec![0u8; stored * row];
        let mut any = 0u32;
        visit_kept(events, &s.spec(stored), Crop::First, |k, p, x, y| {
            let v = (p * w + x) * h + y;
            buf[k * row + v / 8] |= 1 << (v % 8);
            any = 1;
        });
        (Data::Bits(buf), any)
    } else if let Some((buf, max)) = count::<u8>(events, s, stored) {
        (Data::U8(buf), max)
    } else if let Some((buf, max)) = count::<u16>(events, s, stored) {
        (Data::U16(buf), max)
    } else {
        // A count of 2^32 (never seen in practice) is rejected by `build` as
        // CountTooLarge through its max.
        let (buf, max) = count::<u32>(events, s, stored).unwrap_or((Vec::new(), u32::MAX));
        (Data::U32(buf), max)
    };
    Block {
        windows,
        stored,
        max,
        data,
    }
}

/// Reads and bins every recording of `need` on every core, stopping at the
/// first error or once the blocks pass `budget` bytes.
fn bin_all<S: EventSource + ?Sized>(
    source: &S,
    need: &CacheNeed,
    budget: u64,
    device: Device,
) -> Result<Vec<Vec<Block>>, CacheError> {
    let n = need.recordings.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Vec<Block>>>> = Mutex::new((0..n).map(|_| None).collect());
    let first_error: Mutex<Option<CacheError>> = Mutex::new(None);
    let fail = |e: CacheError| {
        stop.store(true, Ordering::Relaxed);
        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(rec) = need.recordings.get(i) else {
                        return;
                    };
                    let samples = match source.recording_samples(rec) {
                        Ok(s) => s,
                        Err(e) => {
                            fail(CacheError::Load(Box::new(LoadError::Data {
                                sample: rec.clone(),
                                source: Box::new(e),
                            })));
                            return;
                        }
                    };
                    let blocks: Vec<Block> = samples
                        .iter()
                        .map(|ev| bin_block(ev, &need.settings, need.horizon))
                        .collect();
                    let added: u64 = blocks.iter().map(Block::bytes).sum();
                    let total = bytes.fetch_add(added, Ordering::Relaxed) + added;
                    if total > budget {
                        fail(CacheError::OverBudget {
                            device: format!("{device:?}"),
                            budget,
                            needed: total,
                        });
                        return;
                    }
                    let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                    r[i] = Some(blocks);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// Copies a block's counts into `dst`, cast by `cast`.
fn fill<T>(dst: &mut [T], data: &Data, cast: impl Fn(u32) -> T) {
    match data {
        Data::Bits(v) | Data::U8(v) => {
            for (o, &c) in dst.iter_mut().zip(v) {
                *o = cast(u32::from(c));
            }
        }
        Data::U16(v) => {
            for (o, &c) in dst.iter_mut().zip(v) {
                *o = cast(u32::from(c));
            }
        }
        Data::U32(v) => {
            for (o, &c) in dst.iter_mut().zip(v) {
                *o = cast(c);
            }
        }
    }
}

/// Builds a cache of everything `need` asks for on `device`, binning on every
/// core: host rows on the CPU, a device tensor on CUDA (see [`build_with`]).
pub fn build<S: EventSource + ?Sized>(
    source: &S,
    need: &CacheNeed,
    device: Device,
    budget: u64,
) -> Result<FrameCache, CacheError> {
    let placement = if device == Device::Cpu {
        Placement::Host
    } else {
        Placement::Tensor
    };
    build_with(source, need, device, budget, placement)
}

/// The narrowest storage that holds every count of `recordings` (bits in
/// OR mode); an error names the sample whose count fits none.
fn choose_storage(need: &CacheNeed, recordings: &[Vec<Block>]) -> Result<Storage, CacheError> {
    let max = recordings
        .iter()
        .flatten()
        .map(|b| b.max)
        .max()
        .unwrap_or(0);
    if need.settings.mode == BinMode::Or {
        return Ok(Storage::Bits);
    }
    Storage::for_counts(max).ok_or_else(|| {
        let (r, c) = recordings
            .iter()
            .enumerate()
            .flat_map(|(r, bs)| bs.iter().enumerate().map(move |(c, b)| (r, c, b.max)))
            .find(|(_, _, m)| *m == max)
            .map(|(r, c, _)| (r, c))
            .unwrap_or_default();
        CacheError::CountTooLarge {
            sample: format!("{}_{c:02}", need.recordings[r]),
            count: max,
        }
    })
}

/// Where each recording's samples start and each sample's rows lie.
type RowIndex = (HashMap<String, (usize, usize)>, Vec<SampleRows>);

/// Lays the samples of `recordings` one after another.
fn row_index(need: &CacheNeed, recordings: &[Vec<Block>]) -> RowIndex {
    let mut index = HashMap::with_capacity(recordings.len());
    let mut samples = Vec::with_capacity(recordings.iter().map(Vec::len).sum());
    let mut offset = 0usize;
    for (name, blocks) in need.recordings.iter().zip(recordings) {
        index.insert(name.clone(), (samples.len(), blocks.len()));
        for block in blocks {
            samples.push(SampleRows {
                offset,
                stored: block.stored,
                windows: block.windows,
            });
            offset += block.stored;
        }
    }
    (index, samples)
}

/// Host rows of `storage` holding `blocks` (`total` rows and a zero row).
fn host_rows<'a>(
    blocks: impl Iterator<Item = (Block, &'a SampleRows)>,
    storage: Storage,
    total: usize,
    row_len: usize,
) -> HostRows {
    let n = (total + 1) * row_len;
    let mut host = match storage {
        Storage::Bits | Storage::U8 => HostRows::U8(vec![0; n]),
        Storage::I16 => HostRows::I16(vec![0; n]),
        Storage::I32 => HostRows::I32(vec![0; n]),
    };
    for (block, at) in blocks {
        let range = at.offset * row_len..(at.offset + at.stored) * row_len;
        // Counts fit the storage: it was chosen by the largest.
        match &mut host {
            HostRows::U8(d) => fill(&mut d[range], &block.data, |c| c as u8),
            HostRows::I16(d) => fill(&mut d[range], &block.data, |c| c as i16),
            HostRows::I32(d) => fill(&mut d[range], &block.data, |c| c as i32),
        }
    }
    host
}

/// A device tensor of `storage` holding `blocks` (`total` rows and a zero row).
fn tensor_rows<'a>(
    blocks: impl Iterator<Item = (Block, &'a SampleRows)>,
    storage: Storage,
    total: usize,
    row_len: usize,
    device: Device,
) -> Result<Tensor, CacheError> {
    let rows = Tensor::f_zeros([total as i64 + 1, row_len as i64], (storage.kind(), device))
        .map_err(CacheError::torch("allocating the frame cache"))?;
    for (block, at) in blocks.filter(|(b, _)| b.stored > 0) {
        let src = block
            .tensor()?
            .f_view([block.stored as i64, row_len as i64])
            .map_err(CacheError::torch("shaping a sample's rows"))?;
        let mut dst = rows
            .f_narrow(0, at.offset as i64, block.stored as i64)
            .map_err(CacheError::torch("placing a sample's rows"))?;
        dst.f_copy_(&src)
            .map_err(CacheError::torch("copying a sample into the frame cache"))?;
    }
    Ok(rows)
}

/// [`build`] with the rows placed as asked. Fails with
/// [`CacheError::OverBudget`] (early, while binning) when the data passes
/// `budget` bytes.
pub fn build_with<S: EventSource + ?Sized>(
    source: &S,
    need: &CacheNeed,
    device: Device,
    budget: u64,
    placement: Placement,
) -> Result<FrameCache, CacheError> {
    let s = need.settings;
    let recordings = bin_all(source, need, budget, device)?;
    let storage = choose_storage(need, &recordings)?;
    let row_len = storage.row_len(s.window_values());
    let total: usize = recordings.iter().flatten().map(|b| b.stored).sum();
    let bytes = ((total + 1) * row_len * storage.element_bytes()) as u64;
    if bytes > budget {
        return Err(CacheError::OverBudget {
            device: format!("{device:?}"),
            budget,
            needed: bytes,
        });
    }
    let (index, samples) = row_index(need, &recordings);
    let blocks = recordings.into_iter().flatten().zip(&samples);
    let rows = match placement {
        Placement::Host => Rows::Host(host_rows(blocks, storage, total, row_len)),
        Placement::Tensor => Rows::Tensor(Mutex::new(tensor_rows(
            blocks, storage, total, row_len, device,
        )?)),
    };
    Ok(FrameCache {
        settings: s,
        horizon: need.horizon,
        storage,
        rows,
        row_len,
        zero_row: total,
        recordings: index,
        samples,
        device,
        bytes,
    })
}

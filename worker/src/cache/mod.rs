//! The frame cache: every sample of a job binned once per process, kept in a
//! compact form on the job's device (host memory on the CPU, device memory on
//! CUDA) and shared by every job of the process on that device with the same
//! data fingerprint and frame settings.
//!
//! Layout: one 2-d array of rows, one row per (sample, window) holding the
//! window's `2 · X · Y` values in `[p, x, y]` order, the windows of a sample
//! consecutive, and one all-zero row at the end. A sample keeps every window a
//! job can use (all of them when random crop is on, else the first
//! `max(T, test T)`), so a crop is a run of rows and a missing window is the
//! zero row. Values are bits for `OR` (8 to a byte, value `v` of a row in byte
//! `v / 8`, bit `v % 8`), and for `SUM`/`SUM_NORM` the exact event counts in
//! the narrowest of u8, i16, i32 that holds the largest count of the set.
//!
//! A batch is its `N · T` rows gathered by index, then turned into the network
//! input (see [`CompactBatch::to_input`]): bits to 0/1, counts to float,
//! `SUM_NORM` divided by each sample's largest count in the rows fed, the same
//! values `common::frames::bin` gives (the tests check them bit for bit). On
//! CUDA the rows are a tensor in device memory, gathered with one
//! `index_select` and converted by tensor ops there; on the CPU they are a
//! plain host array, gathered by copying rows and converted in one sparse pass
//! (libtorch's strided transpose to `[.., T]` costs ~40 ms per sample on a CPU).
//! Crop starts come from the same ChaCha8 draws as the uncached loader's.

mod build;
mod gather;
mod registry;

use std::collections::HashMap;
use std::sync::Mutex;

use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::FrameSpec;
use tch::{Device, Kind, Tensor};

use crate::sample::{EventSource, LoadError, SampleRef};

pub use build::{build, build_with};
pub use gather::CompactBatch;
pub use registry::{
    Budget, DEFAULT_CUDA_BUDGET, acquire, budget_bytes, cuda_auto_budget, dataset_identity,
    parse_budget, set_budget, set_share,
};

/// Everything of a [`FrameSpec`] but `T`: what a cache is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSettings {
    /// Window length in milliseconds.
    pub dt_ms: u32,
    /// What a pixel's value is.
    pub mode: BinMode,
    /// `X`.
    pub width: usize,
    /// `Y`.
    pub height: usize,
    /// Spatial down-scaling factor.
    pub downscale: usize,
}

impl FrameSettings {
    /// The settings of a spec.
    pub fn of(spec: &FrameSpec) -> Self {
        FrameSettings {
            dt_ms: spec.dt_ms,
            mode: spec.mode,
            width: spec.width,
            height: spec.height,
            downscale: spec.downscale,
        }
    }

    /// A spec with these settings and `steps` windows.
    pub fn spec(&self, steps: usize) -> FrameSpec {
        FrameSpec {
            dt_ms: self.dt_ms,
            steps,
            mode: self.mode,
            width: self.width,
            height: self.height,
            downscale: self.downscale,
        }
    }

    /// Values of one window: `2 · X · Y`.
    pub fn window_values(&self) -> usize {
        2 * self.width * self.height
    }
}

/// How a cache stores a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// One bit per value (`OR`).
    Bits,
    /// Counts up to 255.
    U8,
    /// Counts up to 32,767.
    I16,
    /// Counts up to 2^31 − 1.
    I32,
}

impl Storage {
    /// The tensor element kind.
    pub fn kind(self) -> Kind {
        match self {
            Storage::Bits | Storage::U8 => Kind::Uint8,
            Storage::I16 => Kind::Int16,
            Storage::I32 => Kind::Int,
        }
    }

    /// Elements of a row holding `values` values.
    pub fn row_len(self, values: usize) -> usize {
        match self {
            Storage::Bits => values.div_ceil(8),
            _ => values,
        }
    }

    /// Bytes of one element.
    pub fn element_bytes(self) -> usize {
        match self {
            Storage::Bits | Storage::U8 => 1,
            Storage::I16 => 2,
            Storage::I32 => 4,
        }
    }

    /// The narrowest count storage for counts up to `max` (`None` past i32).
    pub fn for_counts(max: u32) -> Option<Storage> {
        if max <= u32::from(u8::MAX) {
            Some(Storage::U8)
        } else if max <= i16::MAX as u32 {
            Some(Storage::I16)
        } else if max <= i32::MAX as u32 {
            Some(Storage::I32)
        } else {
            None
        }
    }
}

/// Where a sample's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRows {
    /// Its first row.
    pub offset: usize,
    /// Rows kept (`min(windows, horizon)`).
    pub stored: usize,
    /// The sample's complete windows ([`spikecv_common::events::frames::window_count`]).
    pub windows: usize,
}

/// What a job needs cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheNeed {
    /// Frame settings of its passes.
    pub settings: FrameSettings,
    /// Its recordings (train, validation and test).
    pub recordings: Vec<String>,
    /// Windows per sample it can use: `None` for all (random crop), else the
    /// largest `T` of its passes.
    pub horizon: Option<usize>,
}

/// Why a cache could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A sample could not be read.
    #[error(transparent)]
    Load(#[from] Box<LoadError>),
    /// The binned data does not fit the memory budget.
    #[error(
        "frame cache for {device} needs more than {budget} bytes (the budget left; \
         {needed} bytes binned when it stopped); raise --frame-cache-gib"
    )]
    OverBudget {
        /// The device.
        device: String,
        /// Bytes the budget left for this cache.
        budget: u64,
        /// Bytes binned so far.
        needed: u64,
    },
    /// A count does not fit 32 bits.
    #[error("sample {sample}: a pixel count of {count} does not fit the frame cache")]
    CountTooLarge {
        /// The sample.
        sample: String,
        /// The count.
        count: u32,
    },
    /// libtorch failed (e.g. out of device memory).
    #[error("libtorch failed during {during}: {message}")]
    Torch {
        /// What was running.
        during: &'static str,
        /// libtorch's message (first line).
        message: String,
    },
}

impl CacheError {
    pub(crate) fn torch(during: &'static str) -> impl FnOnce(tch::TchError) -> CacheError {
        move |e| CacheError::Torch {
            during,
            message: e.to_string().lines().next().unwrap_or_default().to_owned(),
        }
    }
}

/// Where a cache's rows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A host array (the CPU's default).
    Host,
    /// A tensor on the device (CUDA's default; on the CPU for tests).
    Tensor,
}

/// Rows in host memory, in the storage's element type (bits as bytes).
#[derive(Debug, Clone)]
pub enum HostRows {
    /// Bits or u8 counts.
    U8(Vec<u8>),
    /// i16 counts.
    I16(Vec<i16>),
    /// i32 counts.
    I32(Vec<i32>),
}

/// A cache's rows.
#[derive(Debug)]
enum Rows {
    Host(HostRows),
    /// Behind a lock because a tch tensor is not `Sync`; held only for the
    /// `index_select`.
    Tensor(Mutex<Tensor>),
}

/// A built frame cache (see the module docs).
#[derive(Debug)]
pub struct FrameCache {
    settings: FrameSettings,
    horizon: Option<usize>,
    storage: Storage,
    /// `[rows + 1, row_len]`; the last row is zero.
    rows: Rows,
    row_len: usize,
    zero_row: usize,
    recordings: HashMap<String, (usize, usize)>,
    samples: Vec<SampleRows>,
    device: Device,
    bytes: u64,
}

impl FrameCache {
    /// The settings it was built for.
    pub fn settings(&self) -> FrameSettings {
        self.settings
    }

    /// Windows kept per sample (`None`: all).
    pub fn horizon(&self) -> Option<usize> {
        self.horizon
    }

    /// How values are stored.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The device it lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Where its rows live.
    pub fn placement(&self) -> Placement {
        match self.rows {
            Rows::Host(_) => Placement::Host,
            Rows::Tensor(_) => Placement::Tensor,
        }
    }

    /// Bytes of its rows.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Samples held.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The recordings held.
    pub fn recordings(&self) -> impl Iterator<Item = &str> {
        self.recordings.keys().map(String::as_str)
    }

    /// Whether it holds everything `need` asks for.
    pub fn covers_need(&self, need: &CacheNeed) -> bool {
        self.settings == need.settings
            && horizon_covers(self.horizon, need.horizon)
            && need
                .recordings
                .iter()
                .all(|r| self.recordings.contains_key(r))
    }

    /// Whether a pass over `samples` with `spec` can come from the cache.
    pub fn covers(&self, samples: &[SampleRef], spec: &FrameSpec) -> bool {
        if self.settings != FrameSettings::of(spec) {
            return false;
        }
        let windows_ok = |s: &SampleRef| match (self.horizon, s.crop_draw) {
            (None, _) => true,
            (Some(h), None) => spec.steps <= h,
            (Some(_), Some(_)) => false,
        };
        samples
            .iter()
            .all(|s| windows_ok(s) && self.recordings.contains_key(&s.recording))
    }

    /// The rows of a sample.
    pub fn sample_rows(&self, s: &SampleRef) -> Result<SampleRows, LoadError> {
        let &(first, count) = self
            .recordings
            .get(&s.recording)
            .ok_or_else(|| LoadError::NotCached { sample: s.name() })?;
        if s.index >= count {
            return Err(LoadError::NoSuchSample {
                sample: s.name(),
                available: count,
            });
        }
        Ok(self.samples[first + s.index])
    }
}

/// Whether a cache keeping `have` windows per sample serves a job needing `want`.
fn horizon_covers(have: Option<usize>, want: Option<usize>) -> bool {
    match (have, want) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(h), Some(w)) => w <= h,
    }
}

/// The cache a job should use (see [`acquire`]): its fold's recordings, the
/// settings of its training frames, all windows with random crop or else the
/// larger of the training and test `T`.
pub fn for_job<S: EventSource + ?Sized>(
    source: &S,
    split: &spikecv_common::experiment::cv::FoldSplit,
    train: &FrameSpec,
    test: &FrameSpec,
    random_crop: bool,
    device: Device,
) -> Result<Option<std::sync::Arc<FrameCache>>, LoadError> {
    let mut recordings: Vec<String> = Vec::new();
    for r in split.train.iter().chain(&split.val).chain(&split.test) {
        if !recordings.contains(r) {
            recordings.push(r.clone());
        }
    }
    let need = CacheNeed {
        settings: FrameSettings::of(train),
        recordings,
        horizon: (!random_crop).then(|| train.steps.max(test.steps)),
    };
    acquire(source, &need, device)
}

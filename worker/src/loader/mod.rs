//! Batches for training and evaluation: from the frame cache when the source
//! has one that covers the pass (see [`crate::cache`]), else events from a
//! [`SampleSource`] (the data set), binned on the fly with
//! `common::frames::bin` on prefetch threads, handed over in order; the caller
//! moves them to its device.
//!
//! Random numbers are drawn by the caller (one `u64` per sample for a random
//! crop), so the batches do not depend on thread timing, nor on the cache.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::SampleCut;
use spikecv_common::events::Event;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, FrameSpec, bin_into, random_start, window_count};
use tch::{Device, Tensor};

use crate::cache::{CompactBatch, FrameCache, Placement};
use crate::sample::EventSource;
use crate::upload::{Role, staged_upload};

pub mod counts;

pub use crate::sample::{LoadError, SampleRef, samples_of};
pub use crate::upload::{try_upload, upload};
pub use counts::CountBatch;

/// Where a sample's events come from.
pub trait SampleSource: Sync {
    /// All samples of a recording, in sample order (one read per recording).
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError>;

    /// The class of each sample of a recording, in sample order. `None` (the
    /// default): one sample per class, in class order (SL-Animals).
    fn sample_classes(&self, recording: &str) -> Result<Option<Vec<usize>>, DataError> {
        let _ = recording;
        Ok(None)
    }

    /// What identifies the data behind this source for the frame cache (its
    /// content fingerprint): sources with equal identities give equal samples.
    /// `None` (the default) keeps the source out of the cache.
    fn cache_identity(&self) -> Option<String> {
        None
    }

    /// The frame cache batches of this source may come from.
    fn frame_cache(&self) -> Option<&FrameCache> {
        None
    }
}

impl<S: SampleSource + ?Sized> EventSource for S {
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        SampleSource::recording_samples(self, recording)
    }

    fn cache_identity(&self) -> Option<String> {
        SampleSource::cache_identity(self)
    }
}

impl SampleSource for Dataset {
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        Dataset::recording_samples(self, recording)
    }

    fn sample_classes(&self, recording: &str) -> Result<Option<Vec<usize>>, DataError> {
        // Samples cut by tag rows are the classes in order; label rows name theirs.
        match self.kind().cut() {
            SampleCut::EventIndices => Ok(None),
            SampleCut::TimeWindows => Dataset::sample_classes(self, recording).map(Some),
        }
    }

    fn cache_identity(&self) -> Option<String> {
        crate::cache::dataset_identity(self)
    }
}

/// Every sample of `recordings` in `source`, recording by recording, rows in
/// order, uncropped: one per class in class order where the source does not
/// label its rows ([`SampleSource::sample_classes`]), else its rows with
/// their classes, each checked to be one of the network's `classes`.
pub fn source_samples<S: SampleSource + ?Sized>(
    source: &S,
    recordings: &[String],
    classes: usize,
) -> Result<Vec<SampleRef>, LoadError> {
    let mut out = Vec::new();
    for r in recordings {
        let labelled = source.sample_classes(r).map_err(|e| LoadError::Data {
            sample: r.clone(),
            source: Box::new(e),
        })?;
        match labelled {
            None => out.extend(samples_of(std::slice::from_ref(r), classes)),
            Some(rows) => {
                for (index, class) in rows.into_iter().enumerate() {
                    let s = SampleRef::new(r, index, class);
                    if class >= classes {
                        return Err(LoadError::BadClass {
                            sample: s.name(),
                            class,
                            classes,
                        });
                    }
                    out.push(s);
                }
            }
        }
    }
    Ok(out)
}

/// A source with a frame cache: batches covered by the cache come from it,
/// everything else from `inner`.
#[derive(Debug)]
pub struct WithCache<'a, S: ?Sized> {
    /// The source of events.
    pub inner: &'a S,
    /// The cache (`None`: every batch is binned).
    pub cache: Option<Arc<FrameCache>>,
}

impl<S: SampleSource + ?Sized> SampleSource for WithCache<'_, S> {
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        self.inner.recording_samples(recording)
    }

    fn sample_classes(&self, recording: &str) -> Result<Option<Vec<usize>>, DataError> {
        self.inner.sample_classes(recording)
    }

    fn cache_identity(&self) -> Option<String> {
        self.inner.cache_identity()
    }

    fn frame_cache(&self) -> Option<&FrameCache> {
        self.cache.as_deref()
    }
}

/// A batch's input before it goes to the network.
#[derive(Debug)]
pub enum BatchData {
    /// Binned on the host: `[N, 2, X, Y, T]` row-major floats.
    Host(Vec<f32>),
    /// Binned on the host as counts, for a device that builds the input
    /// ([`HostForm::Counts`]).
    Counts(CountBatch),
    /// Gathered from the frame cache, compact, on the cache's device.
    Cached(CompactBatch),
    /// The network input `[N, 2, X, Y, T]`, already built (from a host
    /// frame cache, on a prefetch thread).
    Input(Tensor),
}

/// The form in which the loader leaves a batch it bins on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostForm {
    /// The float network input itself (for the CPU, which uses it in place).
    Floats,
    /// Exact counts, made into the input on the device ([`CountBatch`]): for a
    /// GPU, a quarter of the bytes or less crosses the bus.
    Counts,
}

impl HostForm {
    /// The form for a pass on `device`.
    pub fn for_device(device: Device) -> HostForm {
        if device.is_cuda() {
            HostForm::Counts
        } else {
            HostForm::Floats
        }
    }
}

/// A batch as the loader hands it over (named for its usual place: binned on
/// the host; a batch from the frame cache is already on the cache's device).
#[derive(Debug)]
pub struct HostBatch {
    /// The input.
    pub data: BatchData,
    /// Class of each sample.
    pub labels: Vec<i64>,
    /// Index of the batch's first sample in the list given to the loader.
    pub first: usize,
    /// `N`.
    pub len: usize,
}

/// A batch on a device.
#[derive(Debug)]
pub struct Batch {
    /// Input `[N, 2, X, Y, T]`, float.
    pub inputs: Tensor,
    /// Classes `[N]`, int64.
    pub labels: Tensor,
    /// Index of the first sample in the loader's list.
    pub first: usize,
}

impl HostBatch {
    /// Copies the batch to `device` (without blocking, from the calling
    /// thread's pinned staging buffers, on CUDA: [`crate::upload`]) and makes
    /// its input there.
    ///
    /// # Panics
    /// On a libtorch failure, as tch's infallible calls do (callers guard).
    pub fn to_device(&self, spec: &FrameSpec, device: Device) -> Batch {
        let shape = [
            self.len as i64,
            2,
            spec.width as i64,
            spec.height as i64,
            spec.steps as i64,
        ];
        let inputs = match &self.data {
            BatchData::Host(data) => {
                staged(Role::Input, &Tensor::from_slice(data).view(shape), device)
            }
            BatchData::Counts(c) => c.to_input(shape, device),
            BatchData::Cached(c) => c.to_input().to_device(device),
            BatchData::Input(t) => staged(Role::Input, &t.view(shape), device),
        };
        // Not a blocking copy: that would wait for the device to finish the
        // work queued so far, once per batch.
        let labels = staged(Role::Labels, &Tensor::from_slice(&self.labels), device);
        Batch {
            inputs,
            labels,
            first: self.first,
        }
    }
}

/// [`staged_upload`], panicking as tch's infallible calls do (callers guard).
pub(crate) fn staged(role: Role, host: &Tensor, device: Device) -> Tensor {
    match staged_upload(role, host, device) {
        Ok(t) => t,
        Err(e) => panic!("copying a batch to {device:?}: {e}"),
    }
}

/// Keeps the samples of the last recording read by one thread.
struct RecordingCache {
    name: String,
    samples: Vec<Vec<Event>>,
}

fn load_batch<S: SampleSource + ?Sized>(
    source: &S,
    samples: &[SampleRef],
    first: usize,
    spec: &FrameSpec,
    form: HostForm,
    cache: &mut Option<RecordingCache>,
) -> Result<HostBatch, LoadError> {
    let per = spec.len();
    // Counts are binned undivided; the division happens on the device.
    let counting = form == HostForm::Counts;
    let bin_spec = FrameSpec {
        mode: if counting && spec.mode == BinMode::SumNorm {
            BinMode::Sum
        } else {
            spec.mode
        },
        ..*spec
    };
    let mut data = vec![0f32; per * samples.len()];
    let mut labels = Vec::with_capacity(samples.len());
    for (s, out) in samples.iter().zip(data.chunks_mut(per)) {
        if cache.as_ref().is_none_or(|c| c.name != s.recording) {
            let loaded =
                source
                    .recording_samples(&s.recording)
                    .map_err(|source| LoadError::Data {
                        sample: s.name(),
                        source: Box::new(source),
                    })?;
            *cache = Some(RecordingCache {
                name: s.recording.clone(),
                samples: loaded,
            });
        }
        let recording = cache
            .as_ref()
            .map(|c| c.samples.as_slice())
            .unwrap_or_default();
        let events = recording
            .get(s.index)
            .ok_or_else(|| LoadError::NoSuchSample {
                sample: s.name(),
                available: recording.len(),
            })?;
        let crop = match s.crop_draw {
            None => Crop::First,
            Some(draw) => {
                let windows = window_count(events, spec.dt_ms);
                Crop::Start(random_start(
                    windows,
                    spec.steps,
                    &mut ChaCha8Rng::seed_from_u64(draw),
                ))
            }
        };
        bin_into(events, &bin_spec, crop, out);
        labels.push(s.class as i64);
    }
    let data = if counting {
        match CountBatch::from_binned(&data, per, spec.mode) {
            Some(counts) => BatchData::Counts(counts),
            None => BatchData::Host(divided(data, per, spec.mode)),
        }
    } else {
        BatchData::Host(data)
    };
    Ok(HostBatch {
        data,
        labels,
        first,
        len: samples.len(),
    })
}

/// Counts binned as SUM turned into what `bin_into` gives for `mode`: each
/// sample divided by its largest count for SUM_NORM (none for the others).
fn divided(mut data: Vec<f32>, per: usize, mode: BinMode) -> Vec<f32> {
    if mode == BinMode::SumNorm {
        for sample in data.chunks_mut(per.max(1)) {
            let max = sample.iter().copied().fold(0.0f32, f32::max);
            if max > 0.0 {
                sample.iter_mut().for_each(|v| *v /= max);
            }
        }
    }
    data
}

/// Loads `samples` in batches of `batch` (the last may be smaller) and calls
/// `f` on each, in order, on the calling thread: gathered from the source's
/// frame cache when it covers the pass, else binned on `workers` prefetch
/// threads, left in `form`.
/// Stops at the first error (of loading or of `f`).
pub fn for_each_batch<S, E, F>(
    source: &S,
    samples: &[SampleRef],
    spec: &FrameSpec,
    batch: usize,
    workers: usize,
    form: HostForm,
    mut f: F,
) -> Result<(), E>
where
    S: SampleSource + ?Sized,
    E: From<LoadError>,
    F: FnMut(HostBatch) -> Result<(), E>,
{
    let batch = batch.max(1);
    if let Some(cache) = source.frame_cache().filter(|c| c.covers(samples, spec)) {
        let host = cache.placement() == Placement::Host;
        let make = |i: usize, chunk: &[SampleRef]| -> Result<HostBatch, LoadError> {
            let compact = cache.gather(chunk, spec)?;
            let data = match compact.try_host_input() {
                Some(input) => BatchData::Input(input.map_err(|e| LoadError::Cache {
                    during: "building a batch's input from the frame cache",
                    message: e.to_string().lines().next().unwrap_or_default().to_owned(),
                })?),
                None => BatchData::Cached(compact),
            };
            Ok(HostBatch {
                data,
                labels: chunk.iter().map(|s| s.class as i64).collect(),
                first: i * batch,
                len: chunk.len(),
            })
        };
        if !host {
            // Device rows: gathering only queues work on the device.
            for (i, chunk) in samples.chunks(batch).enumerate() {
                f(make(i, chunk)?)?;
            }
            return Ok(());
        }
        // Host rows: the float input is built one batch ahead on a thread,
        // as the uncached loader bins ahead.
        return std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Result<HostBatch, LoadError>>(1);
            let make = &make;
            scope.spawn(move || {
                for (i, chunk) in samples.chunks(batch).enumerate() {
                    let result = make(i, chunk);
                    let failed = result.is_err();
                    // The receiver is gone when the consumer stopped early.
                    if tx.send(result).is_err() || failed {
                        return;
                    }
                }
            });
            for result in rx {
                f(result?)?;
            }
            Ok(())
        });
    }
    let chunks: Vec<(usize, &[SampleRef])> = samples
        .chunks(batch)
        .enumerate()
        .map(|(i, c)| (i * batch, c))
        .collect();
    let workers = workers.clamp(1, chunks.len().max(1));
    std::thread::scope(|scope| {
        let mut receivers: Vec<Receiver<Result<HostBatch, LoadError>>> =
            Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx): (SyncSender<_>, _) = sync_channel(1);
            receivers.push(rx);
            let mine: Vec<(usize, &[SampleRef])> =
                chunks.iter().skip(w).step_by(workers).copied().collect();
            scope.spawn(move || {
                let mut cache = None;
                for (first, chunk) in mine {
                    let result = load_batch(source, chunk, first, spec, form, &mut cache);
                    let failed = result.is_err();
                    // The receiver is gone when the consumer stopped early.
                    if tx.send(result).is_err() || failed {
                        return;
                    }
                }
            });
        }
        for i in 0..chunks.len() {
            let Ok(result) = receivers[i % workers].recv() else {
                break;
            };
            f(result?)?;
        }
        Ok(())
    })
}

//! Frames exported for a script (`[trainer] frames = true`): each sample
//! binned exactly as the native engine bins it ([`visit_kept`], on which
//! `frames::bin` is built), the first `T = simulation.steps` windows,
//! uncropped, layout `[2, X, Y, T]`, written as `.npy` (docs/trainers.md):
//! `OR` as bits packed little-endian along the last axis (`uint8`,
//! `[2, X, Y, ceil(T/8)]`), `SUM` and `SUM_NORM` as raw counts in the
//! smallest unsigned type that holds the sample's largest. Files are cached
//! under a folder named by the data's fingerprint and the binning settings,
//! written atomically, and reused by every later job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::kind::DataKind;
use spikecv_common::events::Event;
use spikecv_common::events::frames::{BinMode, Crop, FrameSpec, visit_kept};
use spikecv_common::events::npy::uint_to_bytes;

use crate::loader::{SampleRef, SampleSource};

/// The export's own format version (part of the cache key).
pub const EXPORT_FORMAT: u32 = 1;
/// Most threads an export uses.
pub const MAX_THREADS: usize = 8;

/// Why frames could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    /// A recording could not be read.
    #[error("exporting frames: recording {recording}: {source}")]
    Data {
        /// The recording.
        recording: String,
        /// The data set's error.
        source: Box<DataError>,
    },
    /// A sample past the recording's last.
    #[error("exporting frames: sample {sample}: the recording has {available} samples")]
    NoSample {
        /// The sample's name.
        sample: String,
        /// Samples in the recording.
        available: usize,
    },
    /// A file could not be written.
    #[error("exporting frames: {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl FramesError {
    /// Whether the operating system failed (another attempt may succeed).
    pub fn is_io(&self) -> bool {
        match self {
            FramesError::Data { source, .. } => source.is_io(),
            FramesError::Io { .. } => true,
            FramesError::NoSample { .. } => false,
        }
    }
}

/// How a bin mode's frames are stored: `bits` or `counts`.
pub fn encoding(mode: BinMode) -> &'static str {
    match mode {
        BinMode::Or => "bits",
        BinMode::Sum | BinMode::SumNorm => "counts",
    }
}

/// The name of the job file's `bin_mode`.
pub fn mode_name(mode: BinMode) -> &'static str {
    match mode {
        BinMode::Or => "OR",
        BinMode::Sum => "SUM",
        BinMode::SumNorm => "SUM_NORM",
    }
}

/// The cache folder's name for data `identity` (its fingerprint) of `kind`
/// binned by `spec`: a hash of both.
pub fn cache_key(identity: &str, kind: DataKind, spec: &FrameSpec) -> String {
    let key = serde_json::json!({
        "format": EXPORT_FORMAT,
        "data": identity,
        "kind": kind.as_str(),
        "dt_ms": spec.dt_ms,
        "steps": spec.steps,
        "mode": mode_name(spec.mode),
        "downscale": spec.downscale,
        "width": spec.width,
        "height": spec.height,
    });
    let hash = Sha256::digest(key.to_string().as_bytes());
    hex::encode(&hash[..12])
}

/// One sample's frames as `.npy` bytes (see the module's documentation).
pub fn encode(events: &[Event], spec: &FrameSpec) -> Vec<u8> {
    let mut counts = vec![0u32; spec.len()];
    let (w, h, t) = (spec.width, spec.height, spec.steps);
    visit_kept(events, spec, Crop::First, |k, p, x, y| {
        let c = &mut counts[((p * w + x) * h + y) * t + k];
        *c = c.saturating_add(1);
    });
    if spec.mode == BinMode::Or {
        let bytes = t.div_ceil(8);
        let mut packed = vec![0u8; 2 * w * h * bytes];
        for (pixel, run) in counts.chunks_exact(t.max(1)).enumerate() {
            for (k, &c) in run.iter().enumerate() {
                if c > 0 {
                    packed[pixel * bytes + k / 8] |= 1 << (k % 8);
                }
            }
        }
        return uint_to_bytes(&[2, w, h, bytes], &packed);
    }
    let shape = spec.shape();
    let largest = counts.iter().copied().max().unwrap_or(0);
    if largest <= u32::from(u8::MAX) {
        uint_to_bytes(&shape, &narrow::<u8>(&counts))
    } else if largest <= u32::from(u16::MAX) {
        uint_to_bytes(&shape, &narrow::<u16>(&counts))
    } else {
        uint_to_bytes(&shape, &counts)
    }
}

/// `counts`, every one known to fit in `T`.
fn narrow<T: TryFrom<u32> + Default>(counts: &[u32]) -> Vec<T> {
    counts
        .iter()
        .map(|&c| T::try_from(c).unwrap_or_default())
        .collect()
}

/// The file of `sample` in the export folder `dir`.
pub fn sample_path(dir: &Path, sample: &SampleRef) -> PathBuf {
    dir.join(format!("{}.npy", sample.name()))
}

/// Writes `bytes` to `path` through a temporary file of this thread beside
/// it and a rename: a reader, or another slot exporting the same sample,
/// sees no half-written file.
fn write_once(path: &Path, bytes: &[u8]) -> Result<(), FramesError> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}-{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let io = |source| FramesError::Io {
        path: path.to_owned(),
        source,
    };
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// Exports the frames of `samples` from `source` into `dir` (created),
/// reading each recording that has a sample without its file once, on up to
/// [`MAX_THREADS`] threads; returns each sample's file by name.
pub fn export<S: SampleSource + ?Sized>(
    source: &S,
    samples: &[SampleRef],
    spec: &FrameSpec,
    dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, FramesError> {
    std::fs::create_dir_all(dir).map_err(|source| FramesError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut todo: BTreeMap<&str, Vec<&SampleRef>> = BTreeMap::new();
    let mut files = BTreeMap::new();
    for s in samples {
        let path = sample_path(dir, s);
        if !path.is_file() {
            todo.entry(s.recording.as_str()).or_default().push(s);
        }
        files.insert(s.name(), path);
    }
    let todo: Vec<(&str, Vec<&SampleRef>)> = todo.into_iter().collect();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<FramesError>> = Mutex::new(None);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_THREADS)
        .min(todo.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some((recording, wanted)) = todo.get(next.fetch_add(1, Ordering::Relaxed))
                {
                    let done = export_recording(source, recording, wanted, spec, dir);
                    if let Err(e) = done {
                        let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        next.store(todo.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

/// Reads `recording` once and writes the frames of `wanted` (its samples).
fn export_recording<S: SampleSource + ?Sized>(
    source: &S,
    recording: &str,
    wanted: &[&SampleRef],
    spec: &FrameSpec,
    dir: &Path,
) -> Result<(), FramesError> {
    let events = source
        .recording_samples(recording)
        .map_err(|e| FramesError::Data {
            recording: recording.to_owned(),
            source: Box::new(e),
        })?;
    for s in wanted {
        let sample = events.get(s.index).ok_or_else(|| FramesError::NoSample {
            sample: s.name(),
            available: events.len(),
        })?;
        write_once(&sample_path(dir, s), &encode(sample, spec))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use spikecv_common::events::frames::bin;

    use super::*;

    /// A sample with windows past `T`, a pixel hit many times and events of
    /// both polarities, on a 32 × 32 grid seen at 16 × 16.
    fn sample(hits: usize) -> Vec<Event> {
        let mut ev: Vec<Event> = (0..hits)
            .map(|i| Event::new(i as i64 % 900, 6, 7, true))
            .collect();
        ev.extend((0..400i64).map(|i| {
            Event::new(
                1_000 + i * 250,
                (i % 31) as u16,
                (i % 29) as u16,
                i % 3 == 0,
            )
        }));
        ev.sort_by_key(|e| e.t);
        ev
    }

    fn spec(mode: BinMode, steps: usize) -> FrameSpec {
        FrameSpec {
            dt_ms: 4,
            steps,
            mode,
            width: 16,
            height: 16,
            downscale: 2,
        }
    }

    /// The array of an `.npy` file this module wrote: dtype, shape, body.
    fn parse(bytes: &[u8]) -> (String, Vec<usize>, &[u8]) {
        let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        let descr = header.split('\'').nth(3).unwrap().to_owned();
        let shape = header.split('(').nth(1).unwrap().split(')').next().unwrap();
        let shape = shape
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| d.trim().parse().unwrap())
            .collect();
        (descr, shape, &bytes[10 + len..])
    }

    #[test]
    fn bits_unpack_to_the_native_or_frames() {
        for steps in [5, 8, 13] {
            let spec = spec(BinMode::Or, steps);
            let want = bin(&sample(50), &spec, Crop::First);
            let bytes = encode(&sample(50), &spec);
            let (descr, shape, body) = parse(&bytes);
            let per = steps.div_ceil(8);
            assert_eq!((descr.as_str(), shape), ("|u1", vec![2, 16, 16, per]));
            let mut got = Vec::with_capacity(want.len());
            for pixel in body.chunks_exact(per) {
                got.extend((0..steps).map(|k| f32::from((pixel[k / 8] >> (k % 8)) & 1)));
            }
            assert_eq!(got, want, "T = {steps}");
            assert!(want.iter().any(|&v| v > 0.0));
        }
    }

    #[test]
    fn counts_take_the_smallest_type_and_equal_the_native_sums() {
        for (hits, descr, size) in [(50, "|u1", 1), (300, "<u2", 2), (70_000, "<u4", 4)] {
            let spec = spec(BinMode::Sum, 6);
            let want = bin(&sample(hits), &spec, Crop::First);
            let bytes = encode(&sample(hits), &spec);
            let (d, shape, body) = parse(&bytes);
            assert_eq!((d.as_str(), shape), (descr, vec![2, 16, 16, 6]), "{hits}");
            let got: Vec<f32> = body
                .chunks_exact(size)
                .map(|c| {
                    let mut b = [0u8; 4];
                    b[..size].copy_from_slice(c);
                    u32::from_le_bytes(b) as f32
                })
                .collect();
            assert_eq!(got, want, "{hits} hits");
            let norm = spec_norm(&spec);
            assert_eq!(
                encode(&sample(hits), &norm),
                bytes,
                "SUM_NORM stores counts"
            );
        }
    }

    fn spec_norm(s: &FrameSpec) -> FrameSpec {
        FrameSpec {
            mode: BinMode::SumNorm,
            ..*s
        }
    }

    /// Samples given directly, counting the recordings read.
    struct Counting(Vec<Vec<Event>>, AtomicUsize);

    impl SampleSource for Counting {
        fn recording_samples(&self, _recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(self.0.clone())
        }
    }

    #[test]
    fn an_export_is_written_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let source = Counting(vec![sample(5), sample(9)], AtomicUsize::new(0));
        let samples = [SampleRef::new("rec", 1, 1), SampleRef::new("rec", 0, 0)];
        let spec = spec(BinMode::Or, 5);
        let files = export(&source, &samples, &spec, dir.path()).unwrap();
        assert_eq!(
            source.1.load(Ordering::Relaxed),
            1,
            "one read per recording"
        );
        let path = &files["rec_01"];
        assert_eq!(std::fs::read(path).unwrap(), encode(&sample(9), &spec));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary left"
        );
        export(&source, &samples, &spec, dir.path()).unwrap();
        assert_eq!(source.1.load(Ordering::Relaxed), 1, "reused");
        let missing = [SampleRef::new("rec", 7, 7)];
        let e = export(&source, &missing, &spec, dir.path()).unwrap_err();
        assert!(e.to_string().contains("rec_07") && !e.is_io(), "{e}");
    }

    #[test]
    fn the_key_names_data_and_binning() {
        let s = spec(BinMode::Or, 5);
        let k = cache_key("fp", DataKind::default(), &s);
        assert_eq!(k.len(), 24);
        assert_eq!(k, cache_key("fp", DataKind::default(), &s));
        assert_ne!(k, cache_key("fp2", DataKind::default(), &s));
        assert_ne!(
            k,
            cache_key("fp", DataKind::default(), &spec(BinMode::Sum, 5))
        );
        assert_ne!(
            k,
            cache_key("fp", DataKind::default(), &spec(BinMode::Or, 6))
        );
    }
}

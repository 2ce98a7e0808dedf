//! The process-wide registry of frame caches: one per (data identity, frame
//! settings, device), built by the first job that needs it and reused by the
//! rest; a memory budget per device, shared by the slot processes of the
//! device ([`set_share`]). A cache no running job of the process uses is
//! evicted when another one is built on its device.
//!
//! Jobs run on OS threads; the locks here are `std` mutexes, never held across
//! an `.await`. A job holds its cache's slot lock while building, so a second
//! job with the same key waits and then reuses it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use spikecv_common::dataset::Dataset;
use tch::Device;

use super::{CacheError, CacheNeed, FrameCache, build, horizon_covers};
use crate::sample::{EventSource, LoadError};

/// How much memory the frame caches of one device may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Half of the host's RAM for the CPU; for a GPU, half of its free memory
    /// when the cache is built ([`DEFAULT_CUDA_BUDGET`] if that cannot be read).
    Auto,
    /// This many bytes per device (0 turns the cache off).
    Bytes(u64),
}

/// The automatic budget of a CUDA device whose free memory cannot be read.
pub const DEFAULT_CUDA_BUDGET: u64 = 8 << 30;
/// The automatic CPU budget when `/proc/meminfo` cannot be read.
const FALLBACK_CPU_BUDGET: u64 = 4 << 30;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    identity: String,
    settings: super::FrameSettings,
    device: String,
}

type Slot = Arc<Mutex<Option<Arc<FrameCache>>>>;

struct Registry {
    budget: Mutex<Budget>,
    share: Mutex<usize>,
    slots: Mutex<HashMap<Key, Slot>>,
    held: Mutex<HashMap<Key, u64>>,
    identities: Mutex<HashMap<String, String>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    budget: Mutex::new(Budget::Auto),
    share: Mutex::new(1),
    slots: Mutex::new(HashMap::new()),
    held: Mutex::new(HashMap::new()),
    identities: Mutex::new(HashMap::new()),
});

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the budget of every device for caches built from now on.
pub fn set_budget(budget: Budget) {
    *lock(&REGISTRY.budget) = budget;
}

/// Sets how many processes share each device's budget: this process's
/// caches get that fraction of it (`worker join` runs one process per slot,
/// so a device with two slots gives each half of its budget).
pub fn set_share(processes: usize) {
    *lock(&REGISTRY.share) = processes.max(1);
}

/// Bytes the caches of this process hold on `device` (as `format!("{device:?}")`).
fn held_on(device: &str) -> u64 {
    lock(&REGISTRY.held)
        .iter()
        .filter(|(k, _)| k.device == device)
        .map(|(_, b)| b)
        .sum()
}

/// Drops the caches of `device` that no running job uses (only the registry
/// holds them), except `keep`'s; a cache being built is left alone.
fn evict_unused(device: &str, keep: &Key) {
    let slots: Vec<(Key, Slot)> = lock(&REGISTRY.slots)
        .iter()
        .filter(|(k, _)| k.device == device && *k != keep)
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    for (key, slot) in slots {
        let Ok(mut held) = slot.try_lock() else {
            continue;
        };
        if held.as_ref().is_some_and(|c| Arc::strong_count(c) == 1) {
            *held = None;
            if let Some(bytes) = lock(&REGISTRY.held).remove(&key) {
                tracing::info!(device, bytes, "frame cache no running job uses evicted");
            }
        }
    }
}

fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The automatic budget of a GPU with `free` bytes free (`None`: unknown):
/// half of it, the rest left to the jobs' training.
pub fn cuda_auto_budget(free: Option<u64>) -> u64 {
    free.map_or(DEFAULT_CUDA_BUDGET, |f| f / 2)
}

/// The budget of `device` in bytes for this process: the device's (for a GPU
/// on `Auto`, half of its free memory read now plus what this process's
/// caches hold there, which the card counts as used) divided by the share
/// ([`set_share`]).
pub fn budget_bytes(device: Device) -> u64 {
    let budget = *lock(&REGISTRY.budget);
    let share = (*lock(&REGISTRY.share)).max(1) as u64;
    let whole = match (budget, device) {
        (Budget::Bytes(b), _) => b,
        (Budget::Auto, Device::Cuda(index)) => {
            let free = match crate::cuda_host::mem_info(index) {
                Ok((free, _total)) => Some(free + held_on(&format!("{device:?}"))),
                Err(e) => {
                    tracing::warn!(device = index, error = %e, "cannot read the GPU's free memory; frame cache budget {DEFAULT_CUDA_BUDGET} bytes");
                    None
                }
            };
            cuda_auto_budget(free)
        }
        (Budget::Auto, _) => mem_total().map_or(FALLBACK_CPU_BUDGET, |m| m / 2),
    };
    whole / share
}

/// A cheap signature of a data set's files (paths, sizes, modification
/// times), under which its content fingerprint is remembered.
fn signature(data: &Dataset) -> String {
    let mut sig = data.root().display().to_string();
    for path in data.used_files() {
        let meta = std::fs::metadata(&path).ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        let modified = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        sig.push_str(&format!("\n{}:{len}:{modified}", path.display()));
    }
    sig
}

/// The data set's content fingerprint, computed once per process for the
/// same files (`None`, with a warning, when it cannot be read).
pub fn dataset_identity(data: &Dataset) -> Option<String> {
    let sig = signature(data);
    let mut known = lock(&REGISTRY.identities);
    if let Some(fp) = known.get(&sig) {
        return Some(fp.clone());
    }
    match data.fingerprint() {
        Ok(fp) => {
            known.insert(sig, fp.clone());
            Some(fp)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot fingerprint the data set; frame cache off");
            None
        }
    }
}

/// The frame cache for a job's `need` on `device`: the registry's when it
/// covers the need, else a new one (holding what the old one held too) built
/// on every core. `Ok(None)` means the job runs uncached: the source has no
/// identity, the budget is 0 or too small (logged), or libtorch failed
/// (logged). A sample that cannot be read is an error.
pub fn acquire<S: EventSource + ?Sized>(
    source: &S,
    need: &CacheNeed,
    device: Device,
) -> Result<Option<Arc<FrameCache>>, LoadError> {
    let Some(identity) = source.cache_identity() else {
        return Ok(None);
    };
    let key = Key {
        identity,
        settings: need.settings,
        device: format!("{device:?}"),
    };
    evict_unused(&key.device, &key);
    let budget = budget_bytes(device);
    if budget == 0 {
        return Ok(None);
    }
    let slot = lock(&REGISTRY.slots)
        .entry(key.clone())
        .or_default()
        .clone();
    let mut current = lock(&slot);
    if let Some(cache) = current.as_ref().filter(|c| c.covers_need(need)) {
        return Ok(Some(cache.clone()));
    }
    let mut wanted = need.clone();
    if let Some(old) = current.as_ref() {
        for r in old.recordings() {
            if !wanted.recordings.iter().any(|w| w == r) {
                wanted.recordings.push(r.to_owned());
            }
        }
        if !horizon_covers(wanted.horizon, old.horizon()) {
            wanted.horizon = old.horizon();
        }
    }
    let others: u64 = lock(&REGISTRY.held)
        .iter()
        .filter(|(k, _)| k.device == key.device && **k != key)
        .map(|(_, b)| b)
        .sum();
    let left = budget.saturating_sub(others);
    let started = Instant::now();
    match build(source, &wanted, device, left) {
        Ok(cache) => {
            tracing::info!(
                device = %key.device,
                samples = cache.sample_count(),
                bytes = cache.bytes(),
                storage = ?cache.storage(),
                horizon = ?cache.horizon(),
                seconds = started.elapsed().as_secs_f64(),
                "frame cache built"
            );
            // Other jobs read the rows on their own streams: the copies
            // that filled them, queued on this thread's stream, finish first.
            if let Device::Cuda(index) = device
                && let Err(e) = crate::cuda_host::stream_synchronize(index)
            {
                tracing::warn!(error = %e, "frame cache not built; binning every batch instead");
                return Ok(None);
            }
            lock(&REGISTRY.held).insert(key, cache.bytes());
            let cache = Arc::new(cache);
            *current = Some(cache.clone());
            Ok(Some(cache))
        }
        Err(CacheError::Load(e)) => Err(*e),
        Err(e) => {
            tracing::warn!(error = %e, "frame cache not built; binning every batch instead");
            Ok(None)
        }
    }
}

/// Parses `--frame-cache-gib`: a non-negative number of GiB, or `auto`.
pub fn parse_budget(text: &str) -> Result<Budget, String> {
    if text == "auto" {
        return Ok(Budget::Auto);
    }
    match text.parse::<f64>() {
        Ok(gib) if gib.is_finite() && gib >= 0.0 => {
            Ok(Budget::Bytes((gib * f64::from(1u32 << 30)) as u64))
        }
        _ => Err(format!("{text:?} is not a number of GiB (>= 0) or `auto`")),
    }
}

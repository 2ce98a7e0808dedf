//! The frame cache budget of a process (a test binary of its own: the budget
//! is process-wide): it counts the caches the registry holds, a cache no
//! running job uses is evicted when another is built on its device, and a
//! device's budget is split between the slot processes sharing it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::Event;
use spikecv_common::events::frames::BinMode;
use spikecv_worker::cache::{self, Budget, CacheNeed, FrameSettings};
use spikecv_worker::loader::SampleSource;
use support::{Coarse, GRID, frame_spec, synthetic};
use tch::Device;

/// The coarse data set under an identity, so it may be cached.
struct Identified<'a>(Coarse<'a>);

impl SampleSource for Identified<'_> {
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        self.0.recording_samples(recording)
    }
    fn cache_identity(&self) -> Option<String> {
        Some("coarse synthetic, seed 5".into())
    }
}

#[test]
fn an_unused_cache_gives_way_and_a_shared_device_splits_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic(dir.path(), 5);
    let recordings = data.recordings(Variant::WHOLE);
    let need = |mode| CacheNeed {
        settings: FrameSettings::of(&frame_spec(mode, 8, GRID)),
        recordings: recordings.clone(),
        horizon: None,
    };
    let (or, sum) = (need(BinMode::Or), need(BinMode::Sum));
    let source = Identified(Coarse(&data));
    let size = |n: &CacheNeed| {
        cache::build(&source, n, Device::Cpu, u64::MAX)
            .unwrap()
            .bytes()
    };
    let (or_bytes, sum_bytes) = (size(&or), size(&sum));
    // Room for either cache, not for both.
    let budget = or_bytes.max(sum_bytes) + 1;
    assert!(budget < or_bytes + sum_bytes);
    cache::set_budget(Budget::Bytes(budget));
    cache::set_share(1);
    assert_eq!(cache::budget_bytes(Device::Cpu), budget);

    let held = cache::acquire(&source, &or, Device::Cpu).unwrap();
    assert!(held.is_some(), "the first cache fits");
    // A job still uses the first cache: the second does not fit beside it.
    assert!(
        cache::acquire(&source, &sum, Device::Cpu)
            .unwrap()
            .is_none(),
        "the budget counts the cache a running job holds"
    );
    drop(held);
    // No job uses the first one any more: it is evicted, the second is built.
    let second = cache::acquire(&source, &sum, Device::Cpu).unwrap();
    assert!(second.is_some(), "an unused cache gave way");
    // And the first is gone from the registry: while the second is in use,
    // the first no longer fits.
    assert!(cache::acquire(&source, &or, Device::Cpu).unwrap().is_none());

    // Two slot processes on the device: each gets half its budget.
    cache::set_share(2);
    assert_eq!(cache::budget_bytes(Device::Cpu), budget / 2);
    cache::set_budget(Budget::Auto);
    cache::set_share(1);
}

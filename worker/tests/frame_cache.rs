//! The frame cache gives the uncached loader's inputs bit for bit (every bin
//! mode, with and without random crop, a test `T` different from the training
//! `T`, counts past u8), falls back when over budget, and a job trained from
//! it ends identical to one trained without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use spikecv_common::dataset::error::DataError;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::Event;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::FrameSpec;
use spikecv_common::experiment::cv::FoldSplit;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_worker::cache::{
    self, Budget, CacheError, CacheNeed, FrameCache, FrameSettings, Placement, Storage,
};
use spikecv_worker::loader::{
    BatchData, HostBatch, HostForm, LoadError, SampleRef, SampleSource, WithCache, for_each_batch,
    samples_of,
};
use spikecv_worker::train::run_job_on;
use std::sync::Arc;
use support::{
    Coarse, Fixed, GRID, busy_sample, f32_bits, frame_spec, job_with, synthetic, with_draws,
};
use tch::Device;

/// The inputs of every batch of a pass, as f32 bit patterns, and whether each
/// batch came from the cache.
fn pass_inputs<S: SampleSource + ?Sized>(
    source: &S,
    samples: &[SampleRef],
    spec: &FrameSpec,
) -> (Vec<u32>, Vec<bool>) {
    let (mut bits, mut cached) = (Vec::new(), Vec::new());
    for_each_batch(
        source,
        samples,
        spec,
        5,
        2,
        HostForm::Floats,
        |b: HostBatch| {
            let from_cache = !matches!(b.data, BatchData::Host(_));
            cached.push(from_cache);
            let t = b.to_device(spec, Device::Cpu).inputs;
            if from_cache {
                // Time-major in memory: the first convolution's order.
                assert!(
                    t.permute([4, 0, 1, 2, 3]).is_contiguous(),
                    "cached input not time-major: strides {:?}",
                    t.stride()
                );
            }
            assert_eq!(
                t.size(),
                [
                    b.len as i64,
                    2,
                    spec.width as i64,
                    spec.height as i64,
                    spec.steps as i64
                ]
            );
            bits.extend(f32_bits(&t));
            Ok::<(), LoadError>(())
        },
    )
    .unwrap();
    (bits, cached)
}

/// Compares the cached and uncached inputs of `samples` for one spec.
fn assert_identical<S: SampleSource + ?Sized>(
    source: &S,
    cache: &Arc<FrameCache>,
    samples: &[SampleRef],
    spec: &FrameSpec,
    what: &str,
) {
    let cached_source = WithCache {
        inner: source,
        cache: Some(cache.clone()),
    };
    let (want, from_cache) = pass_inputs(source, samples, spec);
    assert!(
        from_cache.iter().all(|c| !c),
        "{what}: plain source used a cache"
    );
    let (got, from_cache) = pass_inputs(&cached_source, samples, spec);
    assert!(from_cache.iter().all(|c| *c), "{what}: cache not used");
    assert!(
        want.iter().any(|&b| b != 0),
        "{what}: all-zero inputs prove nothing"
    );
    assert_eq!(want.len(), got.len(), "{what}: lengths differ");
    let first = want.iter().zip(&got).position(|(a, b)| a != b);
    assert_eq!(
        first, None,
        "{what}: cached input differs at value {first:?}"
    );
}

/// Every bin mode, with and without random crop, with host and tensor rows.
fn modes_crops_placements() -> Vec<(BinMode, bool, Placement)> {
    let mut all = Vec::new();
    for mode in [BinMode::Or, BinMode::Sum, BinMode::SumNorm] {
        for crop in [false, true] {
            for placement in [Placement::Host, Placement::Tensor] {
                all.push((mode, crop, placement));
            }
        }
    }
    all
}

#[test]
fn cached_inputs_are_bit_identical_for_every_mode_crop_and_test_length() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic(dir.path(), 3);
    let source = Coarse(&data);
    let recs = data.recordings(Variant::WHOLE);
    let plain = samples_of(&recs, 19);
    // Tiny samples have about 10-20 windows of 30 ms: T = 8 crops most of
    // them, T = 24 pads them all with zero windows.
    let (train_t, test_t) = (8, 24);
    for (mode, random_crop, placement) in modes_crops_placements() {
        {
            let need = CacheNeed {
                settings: FrameSettings::of(&frame_spec(mode, train_t, GRID)),
                recordings: recs.clone(),
                horizon: (!random_crop).then_some(test_t),
            };
            let cache = Arc::new(
                cache::build_with(&source, &need, Device::Cpu, u64::MAX, placement).unwrap(),
            );
            assert_eq!(cache.placement(), placement);
            let expected = if mode == BinMode::Or {
                Storage::Bits
            } else {
                Storage::U8
            };
            assert_eq!(cache.storage(), expected);
            assert_eq!(cache.sample_count(), 3 * 19);
            let what = format!("{mode:?}, random crop {random_crop}, {placement:?}");
            let train = if random_crop {
                with_draws(&plain, 7)
            } else {
                plain.clone()
            };
            let train_spec = frame_spec(mode, train_t, GRID);
            assert!(
                cache.covers(&train, &train_spec),
                "{what}: train pass not covered"
            );
            assert_identical(
                &source,
                &cache,
                &train,
                &train_spec,
                &format!("{what}, train"),
            );
            let test_spec = frame_spec(mode, test_t, GRID);
            assert_identical(
                &source,
                &cache,
                &plain,
                &test_spec,
                &format!("{what}, test"),
            );
        }
    }
}

#[test]
fn counts_past_u8_are_kept_exact_in_a_wider_type() {
    for (n, storage) in [(300, Storage::I16), (40_000, Storage::I32)] {
        let source = Fixed(vec![busy_sample(n), busy_sample(17)]);
        let samples: Vec<SampleRef> = (0..2)
            .map(|class| SampleRef::new("r", class, class))
            .collect();
        let counting = modes_crops_placements()
            .into_iter()
            .filter(|(m, _, _)| *m != BinMode::Or);
        for (mode, random_crop, placement) in counting {
            {
                let need = CacheNeed {
                    settings: FrameSettings::of(&frame_spec(mode, 4, 8)),
                    recordings: vec!["r".into()],
                    horizon: (!random_crop).then_some(6),
                };
                let cache = Arc::new(
                    cache::build_with(&source, &need, Device::Cpu, u64::MAX, placement).unwrap(),
                );
                assert_eq!(cache.storage(), storage, "{n} events on a pixel");
                let train = if random_crop {
                    with_draws(&samples, 3)
                } else {
                    samples.clone()
                };
                let what = format!("{n} events, {mode:?}, crop {random_crop}, {placement:?}");
                assert_identical(&source, &cache, &train, &frame_spec(mode, 4, 8), &what);
                assert_identical(&source, &cache, &samples, &frame_spec(mode, 6, 8), &what);
            }
        }
    }
}

/// The coarse data set under an identity, so jobs may cache it.
struct Identified<'a>(Coarse<'a>);

impl SampleSource for Identified<'_> {
    fn recording_samples(&self, recording: &str) -> Result<Vec<Vec<Event>>, DataError> {
        self.0.recording_samples(recording)
    }
    fn cache_identity(&self) -> Option<String> {
        Some("coarse synthetic, seed 11".into())
    }
}

/// One test, because the budget is process-wide.
#[test]
fn jobs_share_the_cache_end_identical_and_fall_back_over_budget() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic(dir.path(), 3);
    let recs = data.recordings(Variant::WHOLE);
    let need = CacheNeed {
        settings: FrameSettings::of(&frame_spec(BinMode::Or, 8, GRID)),
        recordings: recs.clone(),
        horizon: None,
    };
    match cache::build(&Coarse(&data), &need, Device::Cpu, 100) {
        Err(CacheError::OverBudget { budget: 100, .. }) => {}
        other => panic!("expected OverBudget, got {other:?}"),
    }
    cache::set_budget(Budget::Bytes(100));
    let identified = Identified(Coarse(&data));
    assert!(
        cache::acquire(&identified, &need, Device::Cpu)
            .unwrap()
            .is_none()
    );
    cache::set_budget(Budget::Auto);
    // No identity: never cached.
    assert!(
        cache::acquire(&Coarse(&data), &need, Device::Cpu)
            .unwrap()
            .is_none()
    );

    let split = FoldSplit {
        train: recs[..2].to_vec(),
        val: recs[2..].to_vec(),
        test: recs[2..].to_vec(),
    };
    let run = |source: &dyn SampleSource, out: &std::path::Path| {
        let (spec, mut shape) = job_with(
            out.to_path_buf(),
            ProtocolKind::TrainValTest,
            split.clone(),
            2,
            8,
            12,
            "shuffle = true\nrandom_crop = true",
        );
        shape.train.mode = BinMode::SumNorm;
        shape.test.mode = BinMode::SumNorm;
        run_job_on(
            &spec,
            source,
            &shape,
            &mut spikecv_worker::train::NoObserver,
        )
        .unwrap()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let uncached = run(&Coarse(&data), a.path());
    let cached = run(&identified, b.path());
    // The job's cache is in the registry and holds every recording of the fold.
    let job_need = CacheNeed {
        settings: FrameSettings::of(&frame_spec(BinMode::SumNorm, 8, GRID)),
        recordings: recs.clone(),
        horizon: None,
    };
    let shared = cache::acquire(&identified, &job_need, Device::Cpu)
        .unwrap()
        .unwrap();
    let again = cache::acquire(&identified, &job_need, Device::Cpu)
        .unwrap()
        .unwrap();
    assert!(
        Arc::ptr_eq(&shared, &again),
        "the registry built a second cache"
    );
    assert_eq!(shared.sample_count(), 3 * 19);
    let key = |r: &spikecv_common::experiment::job::JobResult| {
        (
            r.best_epoch,
            r.test_accuracy.to_bits(),
            r.test_loss.to_bits(),
            r.val_loss.map(f64::to_bits),
            r.confusion.clone(),
            r.epochs
                .iter()
                .map(|e| (e.train_loss.to_bits(), e.train_accuracy.to_bits()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(key(&uncached), key(&cached));
    let (wa, _) =
        spikecv_worker::weights::read_tensors(&a.path().join("final.safetensors")).unwrap();
    let (wb, _) =
        spikecv_worker::weights::read_tensors(&b.path().join("final.safetensors")).unwrap();
    for (name, t) in &wa {
        assert!(t.equal(&wb[name]), "{name} differs with the cache");
    }
}

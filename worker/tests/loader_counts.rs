//! Batches binned as counts for a device (`HostForm::Counts`, `CountBatch`)
//! give the float batches' inputs bit for bit: every bin mode, with and
//! without random crop, counts past u8, a sample without events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use spikecv_common::dataset::variant::Variant;
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::FrameSpec;
use spikecv_worker::loader::{
    BatchData, HostBatch, HostForm, LoadError, SampleRef, SampleSource, for_each_batch, samples_of,
};
use support::{Coarse, Fixed, GRID, busy_sample, f32_bits, frame_spec, synthetic, with_draws};
use tch::Device;

/// Every batch's input as f32 bits, and the bytes its counts take (0 for
/// float batches).
fn pass<S: SampleSource + ?Sized>(
    source: &S,
    samples: &[SampleRef],
    spec: &FrameSpec,
    form: HostForm,
) -> (Vec<u32>, usize) {
    let (mut bits, mut bytes) = (Vec::new(), 0);
    for_each_batch(source, samples, spec, 5, 2, form, |b: HostBatch| {
        match (&b.data, form) {
            (BatchData::Counts(c), HostForm::Counts) => bytes += c.bytes(),
            (BatchData::Host(_), HostForm::Floats) => {}
            (other, _) => panic!("{form:?} pass gave {other:?}"),
        }
        bits.extend(f32_bits(&b.to_device(spec, Device::Cpu).inputs));
        Ok::<(), LoadError>(())
    })
    .unwrap();
    (bits, bytes)
}

fn assert_same(want: &[u32], got: &[u32], what: &str) {
    assert!(
        want.iter().any(|&b| b != 0),
        "{what}: all-zero inputs prove nothing"
    );
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    let first = want.iter().zip(got).position(|(a, b)| a != b);
    assert_eq!(
        first, None,
        "{what}: counts give another input at value {first:?}"
    );
}

#[test]
fn counts_give_the_float_inputs_for_every_mode_and_crop() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic(dir.path(), 3);
    let source = Coarse(&data);
    let plain = samples_of(&data.recordings(Variant::WHOLE), 19);
    let cropped = with_draws(&plain, 3);
    for mode in [BinMode::Or, BinMode::Sum, BinMode::SumNorm] {
        for (samples, steps, what) in [(&plain, 24, "first windows"), (&cropped, 8, "random crop")]
        {
            let spec = frame_spec(mode, steps, GRID);
            let what = format!("{mode:?}, {what}");
            let (want, _) = pass(&source, samples, &spec, HostForm::Floats);
            let (got, bytes) = pass(&source, samples, &spec, HostForm::Counts);
            assert_same(&want, &got, &what);
            // Counts below 256 here: one byte per value instead of four.
            assert_eq!(bytes, want.len(), "{what}: bytes of the counts");
        }
    }
}

#[test]
fn counts_past_u8_and_empty_samples_stay_exact() {
    // 300 needs i16, 40 000 needs i32; the empty sample divides by nothing.
    for (n, width) in [(300, 2), (40_000, 4)] {
        let source = Fixed(vec![busy_sample(n), busy_sample(17), Vec::new()]);
        let samples: Vec<SampleRef> = (0..3)
            .map(|class| SampleRef::new("r", class, class))
            .collect();
        for mode in [BinMode::Sum, BinMode::SumNorm] {
            let spec = frame_spec(mode, 4, 8);
            let what = format!("{n} events, {mode:?}");
            let (want, _) = pass(&source, &samples, &spec, HostForm::Floats);
            let (got, bytes) = pass(&source, &samples, &spec, HostForm::Counts);
            assert_same(&want, &got, &what);
            assert_eq!(bytes, want.len() * width, "{what}: bytes of the counts");
        }
    }
}

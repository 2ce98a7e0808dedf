//! The host heap (`spikecv_worker::allocator`) as libtorch's CPU allocator:
//! freed pages are reused, a request no single free range holds is assembled
//! from free ranges without growing the footprint, and tensors keep their
//! contents throughout. One test binary of its own: the heap is installed for
//! the whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_worker::allocator::{self, HostHeapError, HostHeapStats, MIN_BLOCK};
use tch::{Device, Kind, Tensor};

const MIB: i64 = 1 << 20;

/// A float tensor of `mib` MiB filled with `value`.
fn filled(mib: i64, value: f32) -> Tensor {
    Tensor::full(
        [mib * MIB / 4],
        f64::from(value),
        (Kind::Float, Device::Cpu),
    )
}

/// Whether every element of `t` equals `value`.
fn all_equal(t: &Tensor, value: f32) -> bool {
    t.eq(f64::from(value)).all().int64_value(&[]) == 1
}

fn stats() -> HostHeapStats {
    allocator::host_heap_stats().expect("installed")
}

#[test]
fn the_heap_reuses_and_assembles_freed_pages_and_keeps_contents() {
    // Allocated before the heap: its own allocator frees it later.
    let before = filled(4, 7.0);
    allocator::install_host_heap().unwrap();
    assert_eq!(
        allocator::install_host_heap(),
        Err(HostHeapError::AlreadyInstalled)
    );
    assert!(MIN_BLOCK <= (MIB as usize));

    // Three blocks side by side; freeing the outer two leaves two free ranges
    // of 4 MiB with a live one between them.
    let a = filled(4, 1.0);
    let b = filled(4, 2.0);
    let c = filled(4, 3.0);
    let start = stats();
    assert!(start.live_bytes >= 12 * MIB as u64, "{start:?}");
    drop(a);
    drop(c);
    let freed = stats();
    assert_eq!(freed.free_bytes, start.free_bytes + 8 * MIB as u64);

    // 8 MiB: more than either range, no more than both.
    let d = filled(8, 4.0);
    let after = stats();
    assert_eq!(
        after.reused + after.assembled,
        freed.reused + freed.assembled + 1
    );
    if after.assembled > freed.assembled {
        assert!(after.moved_bytes > freed.moved_bytes, "{after:?}");
    }
    // Served from the freed pages: the footprint did not grow.
    assert_eq!(after.high_water_bytes, freed.high_water_bytes);
    assert_eq!(after.free_bytes, freed.free_bytes - 8 * MIB as u64);
    assert!(all_equal(&b, 2.0));
    assert!(all_equal(&d, 4.0));
    assert!(all_equal(&before, 7.0));
    drop(before);

    // A freed block of the same size is reused as it is.
    drop(d);
    let again = stats();
    let e = filled(8, 5.0);
    let reused = stats();
    assert_eq!(reused.reused, again.reused + 1);
    assert_eq!(reused.assembled, again.assembled);
    assert!(all_equal(&e, 5.0));
    assert!(all_equal(&b, 2.0));
    drop((b, e));
    let end = stats();
    assert_eq!(end.live_bytes, start.live_bytes - 12 * MIB as u64);

    // Small tensors go to libtorch's own allocator.
    let small = Tensor::ones([MIB / 16], (Kind::Float, Device::Cpu));
    let tiny = Tensor::ones([16], (Kind::Float, Device::Cpu));
    assert_eq!(stats().live_bytes, end.live_bytes);
    drop((small, tiny));

    // Threads allocating and freeing at once keep their tensors' contents, and
    // the heap ends with nothing live that the test made.
    let workers: Vec<_> = (0..3)
        .map(|thread| {
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for i in 0..60_i64 {
                    let value = (thread * 100 + i) as f32;
                    held.push((filled(1 + (i * 7 + thread) % 6, value), value));
                    if held.len() > 4 {
                        let (t, v) = held.remove(((i + thread) % 4) as usize);
                        assert!(all_equal(&t, v));
                    }
                }
                for (t, v) in held {
                    assert!(all_equal(&t, v));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(stats().live_bytes, end.live_bytes);

    // Every assembly moves pages, which may split kernel mappings; after 1024
    // moves the heap gives its free ranges back and maps fresh pages, and
    // tensors alive across that keep their contents.
    // Free ranges are taken first (all 1 MiB multiples), so that each round's
    // 2 MiB request finds only the two 1 MiB ranges it freed.
    let mut drained = Vec::new();
    while stats().free_bytes > 0 {
        drained.push(filled(1, 8.0));
    }
    let older = filled(1, 9.0);
    let before_rounds = stats();
    for round in 0..3000 {
        let x = filled(1, 1.0);
        let y = filled(1, 2.0);
        let z = filled(1, 3.0);
        drop((x, z));
        let w = filled(2, round as f32);
        assert!(all_equal(&y, 2.0) && all_equal(&w, round as f32));
    }
    let after_rounds = stats();
    assert!(
        after_rounds.assembled >= before_rounds.assembled + 3000,
        "{after_rounds:?}"
    );
    assert!(
        after_rounds.resets >= before_rounds.resets + 2,
        "{after_rounds:?}"
    );
    assert_eq!(after_rounds.live_bytes, before_rounds.live_bytes);
    // A block handed out before a reset goes back to the system when freed.
    assert!(all_equal(&older, 9.0));
    drop(older);
    let last = stats();
    assert_eq!(last.live_bytes, after_rounds.live_bytes - MIB as u64);
    assert_eq!(last.free_bytes, after_rounds.free_bytes);
    assert!(drained.iter().all(|t| all_equal(t, 8.0)));

    // Free pages go back on request; live blocks stay, and the heap goes on.
    drop(drained);
    let before_release = stats();
    assert!(before_release.free_bytes > 0);
    assert_eq!(
        allocator::release_free_pages(),
        Some(before_release.free_bytes)
    );
    let released = stats();
    assert_eq!(released.free_bytes, 0);
    assert_eq!(released.live_bytes, before_release.live_bytes);
    let fresh = filled(2, 6.0);
    assert!(all_equal(&fresh, 6.0));
}

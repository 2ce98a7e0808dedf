//! Host tensors copied to a device without making the host wait.
//!
//! On CUDA a copy that does not block needs its source in page-locked (pinned)
//! memory. One-off uploads ([`upload`], [`try_upload`]: the frame cache's rows,
//! batch indices) copy into a pinned tensor from libtorch's caching host
//! allocator (allocated through `crate::cuda_host`, not the deprecated
//! `pin_memory(device)`, which prints a warning each call), which keeps the
//! block until its copy is done. A batch's tensors go through [`Staging`]:
//! pinned buffers that one training thread allocates once and reuses for every
//! batch, each with an event so that a buffer is refilled only after the copy
//! out of it has finished. A batch's copy runs on a copy stream of its own
//! ([`crate::cuda_host::DeviceEvent::upload_on_copy_stream`]), which the
//! compute stream waits on through the same event, so it overlaps the compute
//! queued before it. A staged tensor keeps its memory order (the frame
//! cache's time-major input stays time-major on the device). Elsewhere (the
//! CPU) a plain copy, none on the CPU.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use tch::{Device, Kind, TchError, Tensor};

use crate::cuda_host::{self, DeviceEvent};

/// Host-to-device copies asked for through [`try_upload`] and
/// [`staged_upload`] (one device copy each on CUDA; none on the CPU, where the
/// same calls copy nothing).
static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// How many host-to-device copies this process has asked for so far
/// ([`upload`], [`try_upload`], [`staged_upload`], whatever the device): the
/// operation count (`crate::op_count`) adds them for a CPU run, on which they
/// issue no operation.
pub fn uploads_asked() -> u64 {
    UPLOADS.load(Ordering::Relaxed)
}

/// Copies a host tensor to `device` without making the host wait (see the
/// module docs).
///
/// # Panics
/// On a libtorch failure, as tch's infallible calls do (callers guard).
pub fn upload(host: &Tensor, device: Device) -> Tensor {
    match try_upload(host, device) {
        Ok(t) => t,
        Err(e) => panic!("copying a batch to {device:?}: {e}"),
    }
}

/// [`upload`], failing instead of panicking.
pub fn try_upload(host: &Tensor, device: Device) -> Result<Tensor, TchError> {
    UPLOADS.fetch_add(1, Ordering::Relaxed);
    match device {
        Device::Cuda(_) => {
            let bytes = byte_len(host);
            let pinned = cuda_host::pinned_empty(bytes)?;
            let mut staged = as_typed(&pinned, host)?;
            staged.f_copy_(host)?;
            staged.f_to_device_(device, host.kind(), true, false)
        }
        _ => host.f_to_device(device),
    }
}

/// Bytes of a tensor's values.
fn byte_len(t: &Tensor) -> usize {
    t.numel() * t.kind().elt_size_in_bytes()
}

/// The first bytes of a uint8 buffer seen as a tensor of `like`'s kind and shape.
fn as_typed(buffer: &Tensor, like: &Tensor) -> Result<Tensor, TchError> {
    buffer
        .f_narrow(0, 0, byte_len(like) as i64)?
        .f_view_dtype(like.kind())?
        .f_view(like.size().as_slice())
}

/// `t`'s dimensions outermost first in memory (by falling stride; ties, as
/// size-1 dimensions make, in their given order): `t` permuted by it is
/// contiguous when `t` is a permuted view of a contiguous tensor.
fn memory_order(t: &Tensor) -> Vec<i64> {
    let strides = t.stride();
    let mut order: Vec<usize> = (0..strides.len()).collect();
    order.sort_by_key(|&d| std::cmp::Reverse(strides[d]));
    order.into_iter().map(|d| d as i64).collect()
}

/// The permutation that undoes `order`.
fn inverse(order: &[i64]) -> Vec<i64> {
    let mut back = vec![0; order.len()];
    for (i, &d) in order.iter().enumerate() {
        back[d as usize] = i as i64;
    }
    back
}

/// What a staged tensor is, each with its own buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The network input or its counts.
    Input,
    /// Each sample's largest count (SUM_NORM).
    Scale,
    /// The labels.
    Labels,
}

/// Buffers per role: a buffer is refilled two batches after its last copy,
/// which has then almost always finished, so the host runs ahead of the device.
pub const DEPTH: usize = 2;

/// One reusable buffer and the event recorded after the copy out of it.
#[derive(Debug)]
struct Buffer {
    bytes: Tensor,
    copied: Option<DeviceEvent>,
}

/// Reusable host buffers for a thread's batch uploads (see the module docs).
#[derive(Debug)]
pub struct Staging {
    pinned: bool,
    rings: [[Option<Buffer>; DEPTH]; 3],
    turns: [usize; 3],
    allocations: usize,
}

impl Staging {
    /// Buffers in page-locked memory, for uploads to CUDA.
    pub fn pinned() -> Staging {
        Staging::with(true)
    }

    /// Buffers in ordinary host memory (what the CPU needs; tests use it to
    /// check the reuse without a GPU).
    pub fn pageable() -> Staging {
        Staging::with(false)
    }

    fn with(pinned: bool) -> Staging {
        Staging {
            pinned,
            rings: Default::default(),
            turns: [0; 3],
            allocations: 0,
        }
    }

    /// Buffers allocated so far (a buffer is allocated again only to grow).
    pub fn allocations(&self) -> usize {
        self.allocations
    }

    /// `host`'s values copied into the next buffer of `role` (allocated, or
    /// grown, when too small), as a tensor of its kind and shape over that
    /// buffer. Waits first for the last copy out of that buffer to finish.
    pub fn stage(&mut self, role: Role, host: &Tensor) -> Result<(Tensor, usize), TchError> {
        let r = role as usize;
        let turn = self.turns[r] % DEPTH;
        self.turns[r] = self.turns[r].wrapping_add(1);
        let need = byte_len(host).max(1);
        let slot = &mut self.rings[r][turn];
        if let Some(buffer) = slot.as_mut()
            && let Some(event) = buffer.copied.as_mut()
        {
            event.synchronize()?;
        }
        if slot.as_ref().is_none_or(|b| (b.bytes.numel()) < need) {
            let bytes = if self.pinned {
                cuda_host::pinned_empty(need)?
            } else {
                Tensor::f_empty([need as i64], (Kind::Uint8, Device::Cpu))?
            };
            self.allocations += 1;
            *slot = Some(Buffer {
                bytes,
                copied: None,
            });
        }
        let Some(buffer) = slot.as_ref() else {
            return Err(TchError::Torch("staging buffer missing".into()));
        };
        // Staged in the host tensor's memory order (a permuted view, such as
        // the frame cache's time-major input, keeps its layout on the device).
        let order = memory_order(host);
        let in_order = order.iter().enumerate().all(|(i, &d)| i as i64 == d);
        let dense = if in_order {
            host.shallow_clone()
        } else {
            host.f_permute(order.as_slice())?
        };
        let mut staged = as_typed(&buffer.bytes, &dense)?;
        staged.f_copy_(&dense)?;
        if !in_order {
            staged = staged.f_permute(inverse(&order).as_slice())?;
        }
        Ok((staged, turn))
    }

    /// Copies `host` to `device` through the next buffer of `role` on the
    /// copy stream, without blocking (CUDA), or plainly elsewhere.
    pub fn upload(
        &mut self,
        role: Role,
        host: &Tensor,
        device: Device,
    ) -> Result<Tensor, TchError> {
        let Device::Cuda(index) = device else {
            return host.f_to_device(device);
        };
        let (staged, turn) = self.stage(role, host)?;
        let Some(buffer) = self.rings[role as usize][turn].as_mut() else {
            return Err(TchError::Torch("staging buffer missing".into()));
        };
        let event = match buffer.copied.take() {
            Some(event) => event,
            None => DeviceEvent::new()?,
        };
        buffer
            .copied
            .insert(event)
            .upload_on_copy_stream(&staged, index)
    }
}

thread_local! {
    /// The calling thread's staging buffers (a slot's training thread keeps
    /// one set for all its batches), made on its first upload to CUDA.
    static THREAD_STAGING: RefCell<Option<Staging>> = const { RefCell::new(None) };
}

/// [`Staging::upload`] through the calling thread's pinned buffers.
pub fn staged_upload(role: Role, host: &Tensor, device: Device) -> Result<Tensor, TchError> {
    UPLOADS.fetch_add(1, Ordering::Relaxed);
    if !device.is_cuda() {
        return host.f_to_device(device);
    }
    THREAD_STAGING.with(|cell| {
        let mut staging = cell.borrow_mut();
        staging
            .get_or_insert_with(Staging::pinned)
            .upload(role, host, device)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ptr(t: &Tensor) -> usize {
        t.data_ptr() as usize
    }

    #[test]
    fn buffers_are_reused_by_turn_and_grown_only_when_too_small() {
        let mut s = Staging::pageable();
        let small = Tensor::from_slice(&[1u8, 2, 3, 4, 5, 6]);
        let (a, _) = s.stage(Role::Input, &small).unwrap();
        let (b, _) = s.stage(Role::Input, &small).unwrap();
        assert_ne!(ptr(&a), ptr(&b), "two buffers in turn");
        let (a2, _) = s.stage(Role::Input, &small.narrow(0, 0, 4)).unwrap();
        assert_eq!(ptr(&a), ptr(&a2), "the first buffer again, smaller fits");
        assert_eq!(s.allocations(), 2);
        let big = Tensor::arange(100, (Kind::Float, Device::Cpu));
        let (grown, _) = s.stage(Role::Input, &big).unwrap();
        assert_eq!(s.allocations(), 3, "only the too-small buffer grew");
        assert!(grown.equal(&big));
        let (_, _) = s.stage(Role::Labels, &small).unwrap();
        assert_eq!(s.allocations(), 4, "each role has its own buffers");
    }

    #[test]
    fn staged_values_kinds_and_shapes_are_the_hosts() {
        let mut s = Staging::pageable();
        let inputs = [
            Tensor::from_slice(&[0u8, 255, 7]).view([3, 1]),
            Tensor::from_slice(&[-3i16, 300, 32767, 0]).view([2, 2]),
            Tensor::from_slice(&[1.5f32, -0.0, f32::MAX]),
            Tensor::from_slice(&[18i64, 0, 5]),
        ];
        for host in &inputs {
            let (staged, _) = s.stage(Role::Scale, host).unwrap();
            assert_eq!(staged.kind(), host.kind());
            assert_eq!(staged.size(), host.size());
            assert!(staged.equal(host), "{host:?}");
        }
    }

    #[test]
    fn a_permuted_view_is_staged_in_its_memory_order() {
        let mut s = Staging::pageable();
        // [T, N, C] in memory, seen as [N, C, T] (as the cache's input is).
        let time_major = Tensor::arange(24, (Kind::Float, Device::Cpu)).view([4, 3, 2]);
        let host = time_major.permute([1, 2, 0]);
        let (staged, _) = s.stage(Role::Input, &host).unwrap();
        assert_eq!(staged.size(), host.size());
        assert_eq!(staged.stride(), host.stride(), "time-major kept");
        assert!(staged.equal(&host));
        assert!(staged.permute([2, 0, 1]).is_contiguous());
        // A contiguous tensor stays contiguous, a size-1 dimension included.
        let one = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([1, 2, 3]);
        let (staged, _) = s.stage(Role::Input, &one).unwrap();
        assert!(staged.is_contiguous() && staged.equal(&one));
        assert_eq!(inverse(&[1, 2, 0]), vec![2, 0, 1]);
    }

    #[test]
    fn a_cpu_upload_is_the_plain_copy() {
        let mut s = Staging::pageable();
        let host = Tensor::from_slice(&[3i64, 1, 4]);
        let out = s.upload(Role::Labels, &host, Device::Cpu).unwrap();
        assert!(out.equal(&host));
        assert_eq!(s.allocations(), 0, "no staging on the CPU");
        let out = staged_upload(Role::Labels, &host, Device::Cpu).unwrap();
        assert!(out.equal(&host));
    }
}

//! The bottom layer: event files and what is made of them. [`Event`] (one
//! change of brightness seen by one pixel of an event camera), the AEDAT
//! readers, SL-Animals' tag files, slicing, frames, `.npy` and rendering.
//! Nothing here knows a data set's layout or an experiment.

pub mod aedat;
pub mod frames;
pub mod npy;
pub mod render;
pub mod slicing;
pub mod tags;

/// One event, as every reader returns it.
///
/// Coordinates follow the reference pipeline's DVS128 decoding (DESIGN.md, "Data
/// semantics"): `x = (addr >> 8) & 0x7f`, `y = (addr >> 1) & 0x7f`,
/// `p = addr & 1`. jAER's own viewer swaps x and y and inverts the polarity; this
/// project keeps the reference's convention so weights trained by it load as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Event {
    /// Time stamp in microseconds (unwrapped, so it never decreases in a file).
    pub t: i64,
    /// Column, `0..width`.
    pub x: u16,
    /// Row, `0..height`.
    pub y: u16,
    /// Polarity: `true` for ON (brightness went up in the reference convention).
    pub p: bool,
}

impl Event {
    /// Builds an event.
    pub fn new(t: i64, x: u16, y: u16, p: bool) -> Self {
        Event { t, x, y, p }
    }
}

/// The sensor's size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SensorSize {
    /// Columns (the range of `x`).
    pub width: u16,
    /// Rows (the range of `y`).
    pub height: u16,
}

impl SensorSize {
    /// The DVS128 (128 × 128) used by SL-Animals-DVS.
    pub const DVS128: SensorSize = SensorSize {
        width: 128,
        height: 128,
    };
}

/// An order-sensitive checksum of an event sequence, simple enough to recompute
/// with numpy (wrapping u64 arithmetic): `Σ (i + 1) · (t · 1_000_003 + x · 65_537
/// + y · 257 + p)`. Tests and `coordinator data inspect` use it to compare readers.
pub fn checksum(events: &[Event]) -> u64 {
    events.iter().enumerate().fold(0u64, |h, (i, e)| {
        let v = (e.t as u64)
            .wrapping_mul(1_000_003)
            .wrapping_add(u64::from(e.x) * 65_537)
            .wrapping_add(u64::from(e.y) * 257)
            .wrapping_add(u64::from(e.p));
        h.wrapping_add((i as u64 + 1).wrapping_mul(v))
    })
}

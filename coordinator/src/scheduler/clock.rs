//! Time for the scheduler: the system clock in production, a hand-driven one in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> UnixMillis;
}

/// The system's time for the scheduler: the wall-clock time when the clock
/// was made, advanced by the monotonic clock since. A wall-clock step after
/// that (an NTP correction, `date -s`) does not move it, so it can neither
/// expire every lease at once nor keep dead ones alive; what it writes stays
/// close to wall time (the two differ only by the slewing NTP applies). A
/// restarted coordinator anchors afresh, and gives open leases a grace period
/// from its new "now" ([`super::Scheduler::grant_restart_grace`]).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    anchor_ms: UnixMillis,
    anchor: Instant,
}

impl SystemClock {
    /// A clock anchored at the wall-clock time now.
    pub fn new() -> Self {
        Self::anchored_at(wall_now_ms())
    }

    /// A clock that reads `anchor_ms` now and moves with the monotonic clock.
    pub fn anchored_at(anchor_ms: UnixMillis) -> Self {
        Self {
            anchor_ms,
            anchor: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMillis {
        let elapsed = i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.anchor_ms.saturating_add(elapsed)
    }
}

/// The wall clock, in milliseconds since the Unix epoch.
fn wall_now_ms() -> UnixMillis {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A clock that moves only when told to (clones share the same time).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: UnixMillis) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the clock forward by `s` seconds.
    pub fn advance_s(&self, s: i64) {
        self.advance_ms(s * 1000);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_follows_the_monotonic_clock_from_its_anchor_not_the_wall() {
        // An anchor far from the wall clock stands for a wall clock that jumped
        // after start: the clock keeps counting from its anchor.
        let c = SystemClock::anchored_at(1_000);
        let a = c.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = c.now_ms();
        assert!((1_000..1_000 + 60_000).contains(&a), "{a}");
        assert!(b >= a + 20 && b < a + 60_000, "{a} {b}");
        let wall = wall_now_ms();
        assert!((SystemClock::new().now_ms() - wall).abs() < 60_000);
    }
}

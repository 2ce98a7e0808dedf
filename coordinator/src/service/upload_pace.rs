//! The minimum rate of a checkpoint upload, measured over windows: after a
//! grace at the start, every window must bring at least the minimum rate
//! times its length, else the upload is too slow. A trickle (a byte every
//! few seconds) is cut off within one window of the grace, whatever size it
//! declared; an honest upload that stalls briefly inside a window still
//! passes on its average.

use std::time::{Duration, Instant};

/// The bytes an upload received in its current window, checked against the
/// minimum rate at each window's end (plain bookkeeping, no clock of its own).
#[derive(Debug, Clone)]
pub struct UploadPace {
    min_rate: u64,
    grace_until: Instant,
    window_start: Instant,
    in_window: u64,
}

/// An upload that brought too few bytes in its last window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow {
    /// Bytes received in the window.
    pub bytes: u64,
    /// The window's length.
    pub window: Duration,
    /// Bytes the minimum rate asks of that window.
    pub wanted: u64,
}

impl UploadPace {
    /// The pace of an upload that started at `started`, held to `min_rate`
    /// bytes per second once `grace` has passed.
    pub fn new(min_rate: u64, grace: Duration, started: Instant) -> Self {
        Self {
            min_rate,
            grace_until: started + grace,
            window_start: started,
            in_window: 0,
        }
    }

    /// Counts `bytes` received.
    pub fn add(&mut self, bytes: usize) {
        self.in_window = self.in_window.saturating_add(bytes as u64);
    }

    /// Ends the window at `now`: `Err` when it lies after the grace and
    /// brought less than the minimum rate over its length. A new window
    /// starts at `now` either way.
    pub fn end_window(&mut self, now: Instant) -> Result<(), TooSlow> {
        let window = now.saturating_duration_since(self.window_start);
        let bytes = std::mem::take(&mut self.in_window);
        let checked = self.window_start >= self.grace_until;
        self.window_start = now;
        if !checked {
            return Ok(());
        }
        let wanted = u64::try_from(u128::from(self.min_rate) * window.as_millis() / 1000)
            .unwrap_or(u64::MAX);
        if bytes < wanted {
            return Err(TooSlow {
                bytes,
                window,
                wanted,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_in_the_grace_are_not_checked_and_later_ones_need_the_rate() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut pace = UploadPace::new(1000, 2 * s, t0);
        // Nothing at all in the grace: fine.
        assert_eq!(pace.end_window(t0 + s), Ok(()));
        assert_eq!(pace.end_window(t0 + 2 * s), Ok(()));
        // 1000 bytes in a second after the grace: just enough.
        pace.add(600);
        pace.add(400);
        assert_eq!(pace.end_window(t0 + 3 * s), Ok(()));
        // One byte in the next second: too slow, naming what was wanted.
        pace.add(1);
        assert_eq!(
            pace.end_window(t0 + 4 * s),
            Err(TooSlow {
                bytes: 1,
                window: s,
                wanted: 1000,
            })
        );
    }

    #[test]
    fn a_window_that_started_in_the_grace_is_not_held_to_the_rate() {
        let t0 = Instant::now();
        let mut pace = UploadPace::new(1000, Duration::from_millis(1500), t0);
        assert_eq!(pace.end_window(t0 + Duration::from_secs(1)), Ok(()));
        // Started at 1 s, inside the 1.5 s grace.
        assert_eq!(pace.end_window(t0 + Duration::from_secs(2)), Ok(()));
        // Started at 2 s, after it: 1.5 s at 1000 bytes/s wants 1500.
        pace.add(1499);
        assert_eq!(
            pace.end_window(t0 + Duration::from_millis(3500))
                .err()
                .map(|e| e.wanted),
            Some(1500)
        );
    }
}

//! A per-address rate limit for guesses at a secret (the dashboard's login
//! and bearer tokens): a token bucket per peer address, `burst` attempts at
//! once and one more every `interval`. An attempt takes a token before the
//! secret is compared and gives it back when the secret was right, so only
//! wrong guesses use the allowance, and a burst sent all at once cannot
//! slip past the count. An address whose bucket is empty is answered 429
//! with `Retry-After`, right or wrong.
//!
//! IPv6 peers are counted by their /64 prefix (one host usually holds a whole
//! /64). The table holds at most [`MAX_PEERS`] addresses; beyond it, the full
//! buckets (peers that have not guessed lately) are dropped, and when none
//! is full, new addresses share one bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The peer address of a request, set by [`crate::web`]'s listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Addresses tracked at most (see the module docs).
pub const MAX_PEERS: usize = 4096;

/// The address standing for every peer beyond [`MAX_PEERS`], and for a
/// request without a [`PeerAddr`].
const SHARED: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every peer (cheap to clone; clones share them).
#[derive(Debug, Clone)]
pub struct PeerBuckets {
    burst: f64,
    interval: Duration,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

/// An attempt's token, taken from its peer's bucket.
#[derive(Debug)]
pub struct Attempt {
    peer: IpAddr,
}

impl PeerBuckets {
    /// `burst` attempts at once per address (at least one), one more every
    /// `interval`.
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
            buckets: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// `bucket` refilled up to `now`.
    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let earned = now.duration_since(bucket.at).as_secs_f64() / self.interval.as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + earned).min(self.burst),
            at: now,
        }
    }

    /// Takes a token for an attempt from `peer` (none: the shared bucket);
    /// `Err` with the time until one is there when the bucket is empty.
    pub fn take(&self, peer: Option<&PeerAddr>) -> Result<Attempt, Duration> {
        let key = peer.map_or(SHARED, |p| key(p.0.ip()));
        let now = Instant::now();
        let mut buckets = self.lock();
        if !buckets.contains_key(&key) && buckets.len() >= MAX_PEERS {
            buckets.retain(|_, b| self.refilled(*b, now).tokens < self.burst);
        }
        let key = if buckets.contains_key(&key) || buckets.len() < MAX_PEERS {
            key
        } else {
            SHARED
        };
        let full = Bucket {
            tokens: self.burst,
            at: now,
        };
        let bucket = buckets.entry(key).or_insert(full);
        *bucket = self.refilled(*bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(Attempt { peer: key });
        }
        let wait = self.interval.as_secs_f64() * (1.0 - bucket.tokens);
        Err(Duration::from_secs_f64(wait))
    }

    /// Gives `attempt`'s token back: the secret was right.
    pub fn give_back(&self, attempt: Attempt) {
        if let Some(b) = self.lock().get_mut(&attempt.peer) {
            b.tokens = (b.tokens + 1.0).min(self.burst);
        }
    }
}

/// The bucket key of `ip`: itself, or its /64 prefix for IPv6 (an
/// IPv4-mapped IPv6 address counts as the IPv4 one).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The `Retry-After` value for `wait`: whole seconds, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> PeerAddr {
        PeerAddr(SocketAddr::new(
            text.parse().unwrap_or_else(|e| panic!("{e}")),
            1,
        ))
    }

    #[test]
    fn a_burst_then_refusals_right_guesses_cost_nothing_and_peers_are_apart() {
        let buckets = PeerBuckets::new(3, Duration::from_secs(3600));
        let a = peer("10.0.0.1");
        for _ in 0..3 {
            assert!(buckets.take(Some(&a)).is_ok());
        }
        let wait = buckets.take(Some(&a)).unwrap_err();
        assert!(wait > Duration::from_secs(3000), "{wait:?}");
        // Another address has its own bucket; a right guess gives its token back.
        let b = peer("10.0.0.2");
        for _ in 0..10 {
            let attempt = buckets.take(Some(&b)).unwrap_or_else(|w| panic!("{w:?}"));
            buckets.give_back(attempt);
        }
        // One IPv6 host: its /64 shares a bucket.
        let v6a = peer("2001:db8:1:2::1");
        let v6b = peer("2001:db8:1:2:ffff::9");
        for _ in 0..3 {
            assert!(buckets.take(Some(&v6a)).is_ok());
        }
        assert!(buckets.take(Some(&v6b)).is_err());
        assert!(buckets.take(Some(&peer("2001:db8:1:3::1"))).is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
    }
}

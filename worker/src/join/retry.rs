//! Retrying calls while the coordinator is unreachable: capped exponential
//! backoff with jitter, and which gRPC codes mean "try again" rather than
//! "refused".

use std::future::Future;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::{Code, Status};

/// Exponential backoff from 200 ms, doubling up to a cap, each wait drawn
/// uniformly from the upper half of its step ("equal jitter"), so that many
/// workers cut off together do not all come back in the same instant.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
    rng: ChaCha8Rng,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);

    /// A backoff that never waits longer than `cap`, jittered from OS entropy.
    pub fn new(cap: Duration) -> Self {
        Self::with_rng(cap, ChaCha8Rng::from_os_rng())
    }

    /// Like [`Backoff::new`], with the jitter drawn from `rng`.
    pub fn with_rng(cap: Duration, rng: ChaCha8Rng) -> Self {
        Self {
            next: Self::FIRST.min(cap),
            cap,
            rng,
        }
    }

    /// The wait before the next try: a uniform draw in `[step / 2, step]`,
    /// where the step doubles each time up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.cap);
        let half = step / 2;
        half + half.mul_f64(self.rng.random::<f64>())
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.next = Self::FIRST.min(self.cap);
    }
}

/// Whether a failed call may succeed when repeated (connection trouble, a
/// coordinator restarting) as opposed to a refusal (fenced, bad token, bad data).
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::Cancelled
    )
}

/// Whether a refusal means the attempt is no longer ours (fenced, forgotten,
/// or the coordinator does not take this worker as its owner).
pub fn is_fenced(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::FailedPrecondition | Code::NotFound | Code::PermissionDenied
    )
}

/// Whether the coordinator answered but could not take the call now (out of
/// room, an internal error): worth a few more tries, not endless ones.
pub fn is_server_error(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::ResourceExhausted | Code::Internal | Code::Aborted
    )
}

/// Tries of a droppable call (a checkpoint upload) that the coordinator keeps
/// answering with a server error ([`is_server_error`]).
pub const SERVER_ERROR_TRIES: u32 = 4;

/// Repeats `call` with backoff while it fails transiently, until `give_up()`
/// says to stop (then the last error is returned).
pub async fn with_retry<T, F, Fut>(
    what: &'static str,
    cap: Duration,
    give_up: impl Fn() -> bool,
    call: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    retry_loop(what, cap, give_up, u32::MAX, call).await
}

/// Like [`with_retry`] for a call that may be dropped: after
/// `server_error_tries` server errors ([`is_server_error`]) it gives up, while
/// connection trouble is still retried until `give_up()`.
pub async fn with_bounded_retry<T, F, Fut>(
    what: &'static str,
    cap: Duration,
    give_up: impl Fn() -> bool,
    server_error_tries: u32,
    call: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    retry_loop(what, cap, give_up, server_error_tries, call).await
}

async fn retry_loop<T, F, Fut>(
    what: &'static str,
    cap: Duration,
    give_up: impl Fn() -> bool,
    server_error_tries: u32,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = Backoff::new(cap);
    let mut server_errors = 0u32;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(status)
                if is_server_error(&status) && {
                    server_errors += 1;
                    server_errors >= server_error_tries
                } =>
            {
                return Err(status);
            }
            Err(status) if is_transient(&status) && !give_up() => {
                let d = backoff.next_delay();
                tracing::warn!(call = what, code = ?status.code(), message = status.message(), retry_in = ?d, "call failed; retrying");
                tokio::time::sleep(d).await;
            }
            Err(status) => return Err(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(1000));
        let steps = [200u128, 400, 800, 1000, 1000];
        for step in steps {
            let d = b.next_delay().as_millis();
            assert!(
                (step / 2..=step).contains(&d),
                "{d} ms for a {step} ms step"
            );
        }
        b.reset();
        assert!((100..=200).contains(&b.next_delay().as_millis()));
    }

    #[test]
    fn workers_cut_off_together_spread_their_retries() {
        // A thousand workers' first retry after the cap is reached.
        let cap = Duration::from_secs(10);
        let waits: Vec<f64> = (0..1000u64)
            .map(|w| {
                let mut b = Backoff::with_rng(cap, ChaCha8Rng::seed_from_u64(w));
                (0..8)
                    .map(|_| b.next_delay())
                    .last()
                    .unwrap_or_default()
                    .as_secs_f64()
            })
            .collect();
        let (lo, hi) = waits
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &w| (lo.min(w), hi.max(w)));
        assert!(lo >= 5.0 && hi <= 10.0, "waits in [5 s, 10 s]: {lo}..{hi}");
        // Spread over the interval: each one-second bin holds 15-25 % of them.
        let mut bins = [0usize; 5];
        for w in &waits {
            bins[((w - 5.0) as usize).min(4)] += 1;
        }
        assert!(bins.iter().all(|&n| n > 150 && n < 250), "{bins:?}");
    }

    #[tokio::test]
    async fn a_droppable_call_stops_after_a_few_server_errors() {
        let cap = Duration::from_millis(2);
        for code in [Code::ResourceExhausted, Code::Internal] {
            let calls = std::cell::Cell::new(0u32);
            let r: Result<(), Status> = with_bounded_retry(
                "upload",
                cap,
                || false,
                SERVER_ERROR_TRIES,
                || {
                    calls.set(calls.get() + 1);
                    std::future::ready(Err(Status::new(code, "full")))
                },
            )
            .await;
            assert_eq!(r.map_err(|s| s.code()), Err(code));
            assert_eq!(calls.get(), SERVER_ERROR_TRIES);
        }
        // Connection trouble in between does not count against the limit.
        let calls = std::cell::Cell::new(0u32);
        let r: Result<u32, Status> = with_bounded_retry(
            "upload",
            cap,
            || false,
            2,
            || {
                calls.set(calls.get() + 1);
                std::future::ready(match calls.get() {
                    1 => Err(Status::internal("busy")),
                    2..=5 => Err(Status::unavailable("down")),
                    n => Ok(n),
                })
            },
        )
        .await;
        assert_eq!(r.ok(), Some(6));
    }

    #[test]
    fn fencing_is_not_transient() {
        assert!(is_transient(&Status::unavailable("down")));
        assert!(!is_transient(&Status::failed_precondition("fenced")));
        assert!(is_fenced(&Status::failed_precondition("fenced")));
        assert!(!is_transient(&Status::unauthenticated("token")));
    }
}

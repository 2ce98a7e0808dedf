//! Retrying calls while the coordinator is unreachable: capped exponential
//! backoff, and which gRPC codes mean "try again" rather than "refused".

use std::future::Future;
use std::time::Duration;

use tonic::{Code, Status};

/// Exponential backoff from 200 ms, doubling up to a cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);

    /// A backoff that never waits longer than `cap`.
    pub fn new(cap: Duration) -> Self {
        Self {
            next: Self::FIRST.min(cap),
            cap,
        }
    }

    /// The wait before the next try (doubles each time, up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.cap);
        d
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

/// Repeats `call` with backoff while it fails transiently, until `give_up()`
/// says to stop (then the last error is returned).
pub async fn with_retry<T, F, Fut>(
    what: &'static str,
    cap: Duration,
    give_up: impl Fn() -> bool,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = Backoff::new(cap);
    loop {
        match call().await {
            Ok(v) => return Ok(v),
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
        let seen: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seen, vec![200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 200);
    }

    #[test]
    fn fencing_is_not_transient() {
        assert!(is_transient(&Status::unavailable("down")));
        assert!(!is_transient(&Status::failed_precondition("fenced")));
        assert!(is_fenced(&Status::failed_precondition("fenced")));
        assert!(!is_transient(&Status::unauthenticated("token")));
    }
}

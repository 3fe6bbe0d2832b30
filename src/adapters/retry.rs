//! Retries for EC2 calls, bounded by the invocation's deadline rather than a fixed count.
//!
//! Why not the SDK's own retries: EC2 throttles route writes with a token bucket per
//! account and region (50 burst, refilling 5 per second). A burst of 104 writes (the
//! original tool's best-known user: 26 routes x 4 tables) needs about 11 s of refill. The
//! SDK's standard mode gives up after 3 attempts, and its exponential back-off (up to 20 s)
//! leaves refilled tokens unused for seconds, far above the bucket's floor. So the EC2
//! client has SDK retries off and this loop retries instead:
//! - throttling: as long as the deadline allows, with full-jitter back-off capped at
//!   `THROTTLE_CAP`, so that waiting writers (from every concurrent function process)
//!   pick up each refilled token within a fraction of a second;
//! - transient faults (5xx, timeouts, dropped connections): a few attempts only, since a
//!   failing endpoint is better reported than hammered;
//! - anything else: at once, it would fail the same way again.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::sync::{AwsError, RetryClass, WriteError};

const BASE_DELAY: Duration = Duration::from_millis(50);
const THROTTLE_CAP: Duration = Duration::from_millis(1000);
const TRANSIENT_CAP: Duration = Duration::from_millis(1000);
/// Attempts in all, the first included, for a transient fault.
const TRANSIENT_ATTEMPTS: u32 = 4;

pub trait Retryable {
    fn retry_class(&self) -> RetryClass;
}

impl Retryable for AwsError {
    fn retry_class(&self) -> RetryClass {
        self.retry
    }
}

impl Retryable for WriteError {
    fn retry_class(&self) -> RetryClass {
        match self {
            WriteError::Aws(error) => error.retry,
            WriteError::AlreadyExists | WriteError::NotFound => RetryClass::Permanent,
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the next wait would pass
/// `deadline`. Returns the last error in the two latter cases.
pub async fn with_retries<T, E, F, Fut>(
    operation: &'static str,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let cap = match error.retry_class() {
            RetryClass::Permanent => return Err(error),
            RetryClass::Transient if attempts >= TRANSIENT_ATTEMPTS => return Err(error),
            RetryClass::Transient => TRANSIENT_CAP,
            RetryClass::Throttled => THROTTLE_CAP,
        };
        let delay = full_jitter(attempts, cap);
        if Instant::now() + delay >= deadline {
            tracing::warn!(operation, attempts, error = %error, "giving up: the invocation's deadline is near");
            return Err(error);
        }
        tracing::debug!(operation, attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
        tokio::time::sleep(delay).await;
    }
}

/// "Full jitter" (AWS Architecture Blog, Exponential Backoff And Jitter): a uniform wait in
/// [0, min(cap, base * 2^attempt)), which spreads competing clients best.
fn full_jitter(attempt: u32, cap: Duration) -> Duration {
    let ceiling = BASE_DELAY.saturating_mul(1u32 << attempt.min(16)).min(cap);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn error(retry: RetryClass) -> AwsError {
        AwsError {
            operation: "CreateRoute",
            code: Some("X".into()),
            message: "x".into(),
            retry,
        }
    }

    async fn run(
        class: RetryClass,
        failures: u32,
        budget: Duration,
    ) -> (Result<u32, AwsError>, u32) {
        let calls = AtomicU32::new(0);
        let result = with_retries("CreateRoute", Instant::now() + budget, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n <= failures {
                    Err(error(class))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn throttling_is_retried_until_it_clears() {
        let (result, calls) = run(RetryClass::Throttled, 6, Duration::from_secs(60)).await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls, 7);
    }

    #[tokio::test]
    async fn throttling_stops_at_the_deadline() {
        let (result, calls) =
            run(RetryClass::Throttled, u32::MAX, Duration::from_millis(1500)).await;
        assert_eq!(result.unwrap_err().retry, RetryClass::Throttled);
        assert!(calls >= 3, "only {calls} attempts in 1.5 s");
    }

    #[tokio::test]
    async fn transient_faults_get_a_few_attempts() {
        let (result, calls) = run(RetryClass::Transient, 3, Duration::from_secs(60)).await;
        assert_eq!(result, Ok(4));
        let (result, calls_after) = run(RetryClass::Transient, 10, Duration::from_secs(60)).await;
        assert!(result.is_err());
        assert_eq!((calls, calls_after), (4, TRANSIENT_ATTEMPTS));
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let (result, calls) = run(RetryClass::Permanent, 1, Duration::from_secs(60)).await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn jitter_stays_under_its_cap() {
        for attempt in 1..40 {
            assert!(full_jitter(attempt, THROTTLE_CAP) < THROTTLE_CAP);
        }
    }
}

//! Retries for EC2 calls, bounded by the invocation's deadline rather than a fixed count.
//!
//! Why not the SDK's own retries: EC2 throttles route writes with a token bucket per
//! account and region (50 burst, refilling 5 per second). A burst of 104 writes (the
//! original tool's best-known user: 26 routes x 4 tables) needs about 11 s of refill. The
//! SDK's standard mode gives up after 3 attempts, and its exponential back-off (up to 20 s)
//! leaves refilled tokens unused for seconds, far above the bucket's floor. So the EC2
//! client has SDK retries off and this loop retries instead:
//! - throttling: as long as the deadline allows, each attempt at its turn from the
//!   action's `Pacer`, which slows the whole process down to what the bucket refills;
//! - transient faults (5xx, timeouts, dropped connections): a few attempts with
//!   full-jitter back-off, since a failing endpoint is better reported than hammered;
//! - anything else: at once, it would fail the same way again.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::adapters::pacer::Pacer;
use crate::domain::sync::{AwsError, RetryClass, WriteError};

const BASE_DELAY: Duration = Duration::from_millis(50);
const TRANSIENT_CAP: Duration = Duration::from_millis(1000);
/// Attempts in all, the first included, for a transient fault.
const TRANSIENT_ATTEMPTS: u32 = 4;

pub trait Retryable {
    fn retry_class(&self) -> RetryClass;
    /// The error of a call not made, or cut off, because the deadline came first.
    fn deadline(operation: &'static str) -> Self;
}

impl Retryable for AwsError {
    fn retry_class(&self) -> RetryClass {
        self.retry
    }

    fn deadline(operation: &'static str) -> Self {
        AwsError::deadline(operation)
    }
}

impl Retryable for WriteError {
    fn retry_class(&self) -> RetryClass {
        match self {
            WriteError::Aws(error) => error.retry,
            WriteError::AlreadyExists | WriteError::NotFound | WriteError::TableNotFound => {
                RetryClass::Permanent
            }
        }
    }

    fn deadline(operation: &'static str) -> Self {
        WriteError::Aws(AwsError::deadline(operation))
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the next try would pass
/// `deadline`; returns the last error in the two latter cases. Every attempt waits for its
/// turn with `pacer`, the process-wide pacing of this EC2 action, and tells it how it went.
pub async fn with_retries<T, E, F, Fut>(
    operation: &'static str,
    deadline: Instant,
    pacer: &Pacer,
    mut attempt: F,
) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // No attempt starts at or past the deadline, and none runs past it: a write cut off
    // there may or may not have landed, which the next invocation's read tells.
    if !pacer.wait_turn(deadline).await {
        return Err(E::deadline(operation));
    }
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let error = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => {
                pacer.on_success();
                return Ok(value);
            }
            Ok(Err(error)) => error,
            Err(_) => return Err(E::deadline(operation)),
        };
        match error.retry_class() {
            RetryClass::Permanent | RetryClass::Deadline => return Err(error),
            RetryClass::Transient if attempts >= TRANSIENT_ATTEMPTS => return Err(error),
            // The pacer spaces the next attempt; no timer of our own on top of it.
            RetryClass::Throttled => pacer.on_throttled(),
            RetryClass::Transient => {
                let delay = full_jitter(attempts, TRANSIENT_CAP);
                if Instant::now() + delay >= deadline {
                    return give_up(operation, attempts, error);
                }
                tokio::time::sleep(delay).await;
            }
        }
        tracing::debug!(operation, attempts, rate = pacer.rate(), error = %error, "retrying");
        if !pacer.wait_turn(deadline).await {
            return give_up(operation, attempts, error);
        }
    }
}

fn give_up<T, E: std::fmt::Display>(
    operation: &'static str,
    attempts: u32,
    error: E,
) -> Result<T, E> {
    tracing::warn!(operation, attempts, error = %error, "giving up: the invocation's deadline is near");
    Err(error)
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
        let pacer = Pacer::default();
        let result = with_retries("CreateRoute", Instant::now() + budget, &pacer, || {
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
        // Paced at about 2 calls a second after the first throttle: ~1.5 s.
        let (result, calls) = run(RetryClass::Throttled, 3, Duration::from_secs(60)).await;
        assert_eq!(result, Ok(4));
        assert_eq!(calls, 4);
    }

    #[tokio::test]
    async fn throttling_stops_at_the_deadline() {
        let (result, calls) =
            run(RetryClass::Throttled, u32::MAX, Duration::from_millis(1500)).await;
        assert_eq!(result.unwrap_err().retry, RetryClass::Throttled);
        assert!(
            (2..=4).contains(&calls),
            "{calls} attempts in 1.5 s at 2 a second"
        );
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
            assert!(full_jitter(attempt, TRANSIENT_CAP) < TRANSIENT_CAP);
        }
    }
}

//! Client-side pacing for one EC2 action, shared by every call this process makes.
//!
//! EC2 throttles each action with a token bucket per account and region. Retrying each
//! throttled call on its own timer is not enough: with 16 writes in flight per process
//! and several processes, the retries alone can outrun the refill rate, and if EC2 counts
//! throttled calls against the bucket (its documentation does not say it doesn't), the
//! bucket never gets out of debt: a livelock in which no write lands.
//!
//! So the process paces itself, AIMD style (as TCP does): unpaced until EC2 first says
//! `RequestLimitExceeded`; then at most `rate` calls a second, cut to 70% on a throttle
//! (at most once per `DECREASE_INTERVAL`, so that a herd of throttles from one burst
//! counts once) and raised by `RATE_GAIN_PER_SECOND` each second of successes, or by
//! `RELATIVE_GAIN_PER_SECOND` of what the rate is above EC2's default refill besides,
//! until it is unpaced again.
//! Between the first throttle and the first cut, each success adds a call a second instead,
//! up to 4 times the rate a second (TCP's slow start): 2 calls a second is a guess, and a
//! bucket whose refill AWS raised is found in seconds rather than left a third unused while
//! the rate creeps up to it.
//! Processes pacing this way share the bucket's refill between them without talking to
//! each other, and hover just under it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Calls a second right after the first throttle: below EC2's default refill of 5/s, as
/// several processes usually throttle together.
const RATE_AFTER_THROTTLE: f64 = 2.0;
const MIN_RATE: f64 = 0.2;
const DECREASE_FACTOR: f64 = 0.7;
/// Additive increase: calls a second gained per second of successes (each success adds
/// this divided by the rate, so the gain does not depend on how fast calls succeed).
const RATE_GAIN_PER_SECOND: f64 = 0.5;
/// EC2's default refill of a write bucket, calls a second: below it the gain is additive.
const DEFAULT_REFILL: f64 = 5.0;
/// Above `DEFAULT_REFILL`, the rate also grows by a quarter of its excess a second: a bucket
/// whose limits AWS raised (20/s) is otherwise reached only after many seconds at a fraction
/// of its pace (measured on issue 13's scaled failover through the queue: a tenth of the rate
/// a second, 1.28-1.37x the floor).
const RELATIVE_GAIN_PER_SECOND: f64 = 0.25;
/// Above this, pacing stops: far above any bucket's refill.
const UNPACED_RATE: f64 = 50.0;
const DECREASE_INTERVAL: Duration = Duration::from_millis(1000);
/// Slow start: each success adds this many calls a second, so `rate` successes a second
/// double the rate each second.
const SLOW_START_GAIN_PER_SUCCESS: f64 = 1.0;
/// Slow start's bound: 2/s may reach 16/s after 1.5 s. Measured on issue 13's scaled failover
/// through the queue (20 + 20/s): doubling a second, 1.30-1.32x the floor; unbounded (the
/// first herd of answers raised the rate at once), 1.12-1.17x but 4 times the throttled calls
/// on EC2's default bucket.
const SLOW_START_GROWTH_PER_SECOND: f64 = 4.0;

#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<State>,
    /// Throttled answers seen, for the `Throttled` metric.
    throttled: std::sync::atomic::AtomicU32,
}

#[derive(Debug, Default)]
struct State {
    /// Calls a second; `None` while unpaced.
    rate: Option<f64>,
    next_slot: Option<Instant>,
    last_decrease: Option<Instant>,
    /// From the first throttle until the first cut: when it began and the rate then.
    slow_start: Option<(Instant, f64)>,
}

impl Pacer {
    /// The instant this call may go out (now, when unpaced), reserving that slot.
    pub fn reserve(&self) -> Instant {
        self.reserve_before(None).unwrap_or_else(Instant::now)
    }

    /// As `reserve`, but only a slot before `deadline`: a slot past it is not taken, so a
    /// call that gives up at the deadline leaves no reservation behind. (Abandoned
    /// reservations would push every later call of the process back: 16 writes giving up
    /// at 2 calls a second left 8 s of empty slots to the next `watch` pass.)
    pub fn reserve_before_deadline(&self, deadline: Instant) -> Option<Instant> {
        self.reserve_before(Some(deadline))
    }

    fn reserve_before(&self, deadline: Option<Instant>) -> Option<Instant> {
        let mut state = self.lock();
        let now = Instant::now();
        let Some(rate) = state.rate else {
            return Some(now);
        };
        let slot = state.next_slot.map_or(now, |next| next.max(now));
        if deadline.is_some_and(|deadline| slot >= deadline) {
            return None;
        }
        state.next_slot = Some(slot + Duration::from_secs_f64(1.0 / rate));
        Some(slot)
    }

    pub fn on_throttled(&self) {
        self.throttled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.lock();
        let now = Instant::now();
        if state
            .last_decrease
            .is_some_and(|last| now.duration_since(last) < DECREASE_INTERVAL)
        {
            return;
        }
        state.last_decrease = Some(now);
        // The first throttle starts pacing (in slow start); every later one cuts the rate.
        // (Halving at the end of slow start, as TCP does, measured worse: 1.28-1.38x against
        // 1.17-1.29x the floor of issue 13's scaled failover through the queue.)
        let rate = state.rate.map_or(RATE_AFTER_THROTTLE, |rate| {
            (rate * DECREASE_FACTOR).max(MIN_RATE)
        });
        state.slow_start = state.rate.is_none().then_some((now, rate));
        state.rate = Some(rate);
        // Slots handed out at the old rate would let a burst through: start over.
        state.next_slot = Some(now + Duration::from_secs_f64(1.0 / rate));
    }

    pub fn on_success(&self) {
        let mut state = self.lock();
        if let Some(rate) = state.rate {
            // Each success adds the gain a second divided by the calls a second.
            let raised = match state.slow_start {
                // At most `SLOW_START_GROWTH_PER_SECOND` times a second: the answers to calls
                // sent before the first throttle (16 in flight per request) are no sign of
                // what the bucket takes.
                Some((since, base)) => {
                    let cap =
                        base * SLOW_START_GROWTH_PER_SECOND.powf(since.elapsed().as_secs_f64());
                    (rate + SLOW_START_GAIN_PER_SUCCESS).min(cap.max(rate))
                }
                None => {
                    let per_second = RATE_GAIN_PER_SECOND
                        + RELATIVE_GAIN_PER_SECOND * (rate - DEFAULT_REFILL).max(0.0);
                    rate + per_second / rate
                }
            };
            state.rate = (raised < UNPACED_RATE).then_some(raised);
            if state.rate.is_none() {
                state.slow_start = None;
            }
        }
    }

    /// Throttled answers seen by this pacer since the process started.
    pub fn throttled(&self) -> u32 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls a second, or `None` while unpaced (for tests and logs).
    pub fn rate(&self) -> Option<f64> {
        self.lock().rate
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is three plain values, consistent after every statement.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_until_the_first_throttle() {
        let pacer = Pacer::default();
        let now = Instant::now();
        for _ in 0..100 {
            assert!(pacer.reserve() <= Instant::now());
        }
        assert!(Instant::now().duration_since(now) < Duration::from_millis(50));
        assert_eq!(pacer.rate(), None);
    }

    #[test]
    fn a_throttle_spaces_the_following_calls() {
        let pacer = Pacer::default();
        pacer.on_throttled();
        assert_eq!(pacer.rate(), Some(RATE_AFTER_THROTTLE));
        let slots: Vec<Instant> = (0..4).map(|_| pacer.reserve()).collect();
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(500));
        }
    }

    #[test]
    fn a_slot_past_the_deadline_is_not_reserved() {
        let pacer = Pacer::default();
        pacer.on_throttled();
        let first = pacer.reserve();
        let deadline = first + Duration::from_millis(100);
        // The next slot (500 ms later) is past the deadline: refused, and not taken.
        assert_eq!(pacer.reserve_before_deadline(deadline), None);
        assert_eq!(pacer.reserve_before_deadline(deadline), None);
        assert_eq!(pacer.reserve(), first + Duration::from_millis(500));
    }

    #[test]
    fn a_herd_of_throttles_lowers_the_rate_once() {
        let pacer = Pacer::default();
        pacer.on_throttled();
        for _ in 0..16 {
            pacer.on_throttled();
        }
        assert_eq!(pacer.rate(), Some(RATE_AFTER_THROTTLE));
    }

    /// After the first throttle, until the first cut, each success adds one call a second,
    /// and the rate grows at most 4 times a second: 2/s reaches 16/s in 1.5 s, and a herd of
    /// answers to calls sent before pacing began does not jump it.
    #[test]
    fn slow_start_until_the_first_cut() {
        let pacer = Pacer::default();
        pacer.on_throttled();
        for _ in 0..16 {
            pacer.on_success();
        }
        let after_herd = pacer.rate().expect("paced");
        assert!(after_herd < RATE_AFTER_THROTTLE * 1.1, "{after_herd}");

        // 1.5 s into slow start: up to 2 * 4^1.5 = 16 calls a second.
        let since = Instant::now()
            .checked_sub(Duration::from_millis(1500))
            .expect("the clock is past 1.5 s");
        pacer.lock().slow_start = Some((since, RATE_AFTER_THROTTLE));
        for _ in 0..100 {
            pacer.on_success();
        }
        let rate = pacer.rate().expect("paced");
        assert!((rate - 16.0).abs() < 0.1, "{rate}");
        // Still slow start: a throttle within DECREASE_INTERVAL of the first counts once.
        pacer.on_throttled();
        assert_eq!(pacer.rate(), Some(rate));
    }

    /// A cut ends slow start: from there the gain is additive, then relative.
    fn pacer_past_slow_start() -> Pacer {
        let pacer = Pacer::default();
        pacer.on_throttled();
        pacer.lock().last_decrease = Some(Instant::now() - DECREASE_INTERVAL);
        pacer.lock().rate = Some(RATE_AFTER_THROTTLE / DECREASE_FACTOR);
        pacer.on_throttled();
        assert!((pacer.rate().expect("paced") - RATE_AFTER_THROTTLE).abs() < 1e-9);
        pacer
    }

    #[test]
    fn successes_raise_the_rate_until_pacing_stops() {
        let pacer = pacer_past_slow_start();
        pacer.on_success();
        let rate = pacer.rate().expect("paced");
        assert!(
            (rate - (RATE_AFTER_THROTTLE + RATE_GAIN_PER_SECOND / RATE_AFTER_THROTTLE)).abs()
                < 1e-9,
            "{rate}"
        );
        for _ in 0..100_000 {
            pacer.on_success();
        }
        assert_eq!(pacer.rate(), None);
    }

    /// Each success adds the gain a second divided by the rate: up to EC2's default refill
    /// the rate gains 0.5 a second, as before; above it, a tenth of itself.
    #[test]
    fn the_gain_is_additive_up_to_the_default_refill_and_relative_above() {
        let gain_of_one_success = |pacer: &Pacer| {
            let rate = pacer.rate().expect("paced");
            pacer.on_success();
            pacer.rate().expect("paced") - rate
        };
        let pacer = pacer_past_slow_start();
        let gain = gain_of_one_success(&pacer);
        assert!(
            (gain - RATE_GAIN_PER_SECOND / RATE_AFTER_THROTTLE).abs() < 1e-9,
            "at 2/s: {gain}"
        );

        while pacer.rate().is_some_and(|r| r < 10.0) {
            pacer.on_success();
        }
        let gain = gain_of_one_success(&pacer);
        assert!(
            (gain - (RATE_GAIN_PER_SECOND + RELATIVE_GAIN_PER_SECOND * 5.0) / 10.0).abs() < 1e-3,
            "at 10/s: {gain}"
        );
    }
}

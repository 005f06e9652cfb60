//! Token buckets with injected time (DESIGN §7).
//!
//! The algorithm is `governor`'s GCRA (a maintained crate; GCRA is an exact
//! token bucket). governor reads time from a `Clock`; ours is a cell the
//! bucket sets to the time passed in just before each check, so the core
//! stays free of real clocks and the simulator stays deterministic.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::time::Time;

/// A rate and the burst allowed above it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSpec {
    /// Tokens added per second.
    pub per_second: NonZeroU32,
    /// The most tokens held at once.
    pub burst: NonZeroU32,
}

impl RateSpec {
    /// A spec, or `None` when either number is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<RateSpec> {
        Some(RateSpec {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }
}

/// Why a take was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    /// When the same take would succeed.
    pub retry_after: Duration,
}

#[derive(Clone, Debug, Default)]
struct InjectedClock(Arc<AtomicU64>);

impl Clock for InjectedClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.load(Ordering::Relaxed))
    }
}

impl InjectedClock {
    fn set(&self, now: Time) {
        let nanos = now.as_micros().saturating_mul(1000);
        // Never backwards, whatever the caller passes.
        self.0.fetch_max(nanos, Ordering::Relaxed);
    }
}

/// A token bucket (governor's) driven by the core's injected time.
pub struct TokenBucket {
    limiter: RateLimiter<NotKeyed, InMemoryState, InjectedClock, NoOpMiddleware<Nanos>>,
    clock: InjectedClock,
    burst: u32,
}

impl std::fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBucket")
            .field("burst", &self.burst)
            .finish()
    }
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(spec: RateSpec, now: Time) -> TokenBucket {
        let clock = InjectedClock::default();
        clock.set(now);
        let quota = Quota::per_second(spec.per_second).allow_burst(spec.burst);
        TokenBucket {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            burst: spec.burst.get(),
        }
    }

    /// Takes `n` tokens at `now`, or says when that would be possible. A take
    /// larger than the burst is capped at the burst: it empties a full
    /// bucket rather than being refused forever.
    pub fn try_take(&self, now: Time, n: u32) -> Result<(), Limited> {
        self.clock.set(now);
        let n = NonZeroU32::new(n.min(self.burst)).unwrap_or(NonZeroU32::MIN);
        match self.limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            // Unreachable after the cap above; refusing is the safe answer.
            Err(_) => Err(Limited {
                retry_after: Duration::from_secs(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket::new(
            RateSpec::new(rate, burst).unwrap(),
            Time::from_millis(1_000),
        )
    }

    #[test]
    fn a_full_bucket_allows_its_burst_then_refuses_with_a_retry_time() {
        let b = bucket(10, 3);
        let t = Time::from_millis(1_000);
        for _ in 0..3 {
            assert_eq!(b.try_take(t, 1), Ok(()));
        }
        let err = b.try_take(t, 1).unwrap_err();
        assert_eq!(err.retry_after, Duration::from_millis(100));
    }

    #[test]
    fn tokens_come_back_at_the_configured_rate() {
        let b = bucket(10, 1);
        let t = Time::from_millis(1_000);
        assert!(b.try_take(t, 1).is_ok());
        assert!(b.try_take(t + Duration::from_millis(50), 1).is_err());
        assert!(b.try_take(t + Duration::from_millis(100), 1).is_ok());
        // Over one second at 10/s, exactly 10 more.
        let mut allowed = 0;
        for ms in 0..1000 {
            if b.try_take(t + Duration::from_millis(100 + ms + 1), 1)
                .is_ok()
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    #[test]
    fn byte_sized_takes_consume_many_tokens_and_oversized_ones_are_capped() {
        let b = bucket(1000, 1000);
        let t = Time::from_millis(1_000);
        assert!(b.try_take(t, 600).is_ok());
        assert!(b.try_take(t, 600).is_err());
        let later = t + Duration::from_secs(1);
        assert!(b.try_take(later, 5000).is_ok(), "capped at the burst");
        assert!(b.try_take(later, 1).is_err());
    }
}

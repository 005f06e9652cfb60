//! The core's [`Time`] from the process clocks: the wall clock read once at
//! start, advanced by the monotonic clock, so it never jumps backwards when
//! NTP steps the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::gossip::Time;

#[derive(Copy, Clone, Debug)]
pub struct Clock {
    wall_at_start: Time,
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Clock {
            wall_at_start: Time::from_micros(wall),
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Time {
        self.wall_at_start + self.start.elapsed()
    }

    /// The tokio instant at which the core's time will be `t`.
    pub fn instant(&self, t: Time) -> Instant {
        self.start + t.since(self.wall_at_start)
    }
}

/// RFC 3339 text for a core time (UTC, microseconds).
pub fn rfc3339(t: Time) -> String {
    let st = UNIX_EPOCH + std::time::Duration::from_micros(t.as_micros());
    humantime::format_rfc3339_micros(st).to_string()
}

/// A tick every `period` on one schedule shared by the whole process, so
/// that the sidecar's periodic checks (the key files, the peers file) fall
/// on the same instants and wake it once, not once each.
pub fn shared_ticks(period: std::time::Duration) -> tokio::time::Interval {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    let elapsed = base.elapsed().as_nanos();
    let step = period.as_nanos().max(1);
    let next = base
        + std::time::Duration::from_nanos(
            u64::try_from((elapsed / step + 1) * step).unwrap_or(u64::MAX),
        );
    let mut ticks = tokio::time::interval_at(next, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks
}

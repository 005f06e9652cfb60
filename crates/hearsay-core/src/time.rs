//! Time as the core sees it: a number passed in by the driver, never read
//! from a clock. This is what lets the simulator run 10,000 nodes on one
//! thread and lets tests step time exactly.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Microseconds since the Unix epoch as this node perceives it.
///
/// A driver anchors it to the wall clock once at start and then advances it
/// with a monotonic clock, so it never goes backwards within one process.
/// Nodes compare each other's times only for the publish timestamp of an
/// event (propagation delay, "published before I started"), where clock skew
/// is a documented limit.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The start of the clock.
    pub const ZERO: Time = Time(0);
    /// Later than any real time; used where a time is unknown and must be
    /// treated conservatively ("it may be recent").
    pub const MAX: Time = Time(u64::MAX);

    /// A time `us` microseconds after the start.
    pub const fn from_micros(us: u64) -> Time {
        Time(us)
    }

    /// A time `ms` milliseconds after the start.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms.saturating_mul(1000))
    }

    /// Microseconds since the start.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the start.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// The time elapsed since `earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// This time less `d`, no earlier than the start.
    pub fn saturating_sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(duration_micros(d)))
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(duration_micros(d)))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, earlier: Time) -> Duration {
        self.since(earlier)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Time::from_millis(5);
        assert_eq!(t.since(Time::from_millis(7)), Duration::ZERO);
        assert_eq!(Time::MAX + Duration::from_secs(1), Time::MAX);
        assert_eq!(t.saturating_sub(Duration::from_secs(1)), Time::ZERO);
        assert_eq!((t + Duration::from_millis(3)).as_millis(), 8);
        assert_eq!(Time::from_millis(8) - t, Duration::from_millis(3));
    }
}

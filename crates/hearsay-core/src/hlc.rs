//! A hybrid logical clock for config versions: physical milliseconds in the
//! high 48 bits, a counter in the low 16. It never goes backwards, stays
//! close to wall time, and after observing a remote version always issues
//! a later one, so "last writer" means the same thing on every node.

use super::time::Time;

#[derive(Clone, Debug, Default)]
/// A hybrid logical clock: milliseconds in the high bits, a counter in the
/// low 16.
pub struct Hlc {
    last: u64,
}

impl Hlc {
    /// A fresh timestamp, later than every one issued or observed.
    pub fn tick(&mut self, now: Time) -> u64 {
        let physical = now.as_millis() << 16;
        self.last = physical.max(self.last.saturating_add(1));
        self.last
    }

    /// Moves past a timestamp seen from another node.
    pub fn observe(&mut self, remote: u64) {
        self.last = self.last.max(remote);
    }

    /// The wall-clock milliseconds part of a timestamp.
    pub fn millis(ts: u64) -> u64 {
        ts >> 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_the_clock_stalls() {
        let mut h = Hlc::default();
        let t = Time::from_millis(5);
        let a = h.tick(t);
        let b = h.tick(t);
        assert!(b > a);
        assert_eq!(Hlc::millis(a), 5);
    }

    #[test]
    fn a_tick_after_observing_a_later_remote_is_later_than_it() {
        let mut h = Hlc::default();
        let remote = Time::from_millis(10_000).as_millis() << 16;
        h.observe(remote);
        assert!(h.tick(Time::from_millis(5)) > remote);
    }
}

//! Replay protection for authenticated frames.
//!
//! A tag proves who sealed a frame, not that it is new. Two checks make a
//! captured frame useless to an attacker:
//!
//! - the sender's clock must be within `max_age` of ours (`stale`);
//! - within that age, each sender incarnation's frame seqs are tracked with
//!   a sliding window of the last 64 (as IPsec does), so a seq seen before
//!   is refused (`replayed`), while frames that arrive a little out of order
//!   (two connections during a reconnect) still pass.
//!
//! A window is kept at least `max_age` after its last use, so every frame
//! the window has forgotten is already stale. (The tag binds a frame to its
//! receiver, so replaying it to another peer fails there; see `frame`.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::gossip::{Origin, PeerId};

/// Why a frame was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Replayed,
    Stale,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Replayed => "replayed",
            Refusal::Stale => "stale",
        }
    }
}

const WINDOW: u64 = 64;

#[derive(Clone, Copy, Debug)]
struct Window {
    highest: u64,
    /// Bit i set: seq `highest - i` was seen.
    seen: u64,
    last_used_ms: u64,
}

impl Window {
    fn new(seq: u64, now_ms: u64) -> Window {
        Window {
            highest: seq,
            seen: 1,
            last_used_ms: now_ms,
        }
    }

    fn accept(&mut self, seq: u64, now_ms: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = seq;
        } else {
            let age = self.highest - seq;
            if age >= WINDOW || self.seen & (1 << age) != 0 {
                return false;
            }
            self.seen |= 1 << age;
        }
        self.last_used_ms = now_ms;
        true
    }
}

pub struct ReplayGuard {
    windows: Mutex<HashMap<(PeerId, Origin), Window>>,
    max_age_ms: u64,
    max_windows: usize,
}

impl ReplayGuard {
    pub fn new(max_age: Duration, max_windows: usize) -> ReplayGuard {
        ReplayGuard {
            windows: Mutex::new(HashMap::new()),
            max_age_ms: max_age.as_millis() as u64,
            max_windows,
        }
    }

    pub fn check(
        &self,
        sender: PeerId,
        origin: Origin,
        seq: u64,
        sent_at_ms: u64,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if sent_at_ms.abs_diff(now_ms) > self.max_age_ms {
            return Err(Refusal::Stale);
        }
        // A std mutex: held for a map lookup, never across an await.
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = windows.get_mut(&(sender, origin)) {
            return if w.accept(seq, now_ms) {
                Ok(())
            } else {
                Err(Refusal::Replayed)
            };
        }
        if windows.len() >= self.max_windows {
            let max_age = self.max_age_ms;
            windows.retain(|_, w| now_ms.saturating_sub(w.last_used_ms) <= max_age);
        }
        if windows.len() >= self.max_windows {
            // Still full of live senders: refuse rather than forget one
            // whose frames could then be replayed.
            return Err(Refusal::Replayed);
        }
        windows.insert((sender, origin), Window::new(seq, now_ms));
        Ok(())
    }

    pub fn tracked(&self) -> usize {
        self.windows.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn guard() -> ReplayGuard {
        ReplayGuard::new(Duration::from_secs(60), 16)
    }

    #[test]
    fn each_frame_passes_once() {
        let g = guard();
        for seq in 0..10 {
            assert_eq!(g.check(PeerId(1), Origin(1), seq, NOW, NOW), Ok(()));
        }
        assert_eq!(
            g.check(PeerId(1), Origin(1), 5, NOW, NOW),
            Err(Refusal::Replayed)
        );
        // Another incarnation of the same peer starts its own window.
        assert_eq!(g.check(PeerId(1), Origin(2), 5, NOW, NOW), Ok(()));
    }

    #[test]
    fn slightly_out_of_order_frames_pass_and_old_ones_do_not() {
        let g = guard();
        assert_eq!(g.check(PeerId(1), Origin(1), 100, NOW, NOW), Ok(()));
        assert_eq!(g.check(PeerId(1), Origin(1), 98, NOW, NOW), Ok(()));
        assert_eq!(
            g.check(PeerId(1), Origin(1), 98, NOW, NOW),
            Err(Refusal::Replayed)
        );
        assert_eq!(
            g.check(PeerId(1), Origin(1), 36, NOW, NOW),
            Err(Refusal::Replayed)
        );
        assert_eq!(g.check(PeerId(1), Origin(1), 500, NOW, NOW), Ok(()));
        assert_eq!(
            g.check(PeerId(1), Origin(1), 100, NOW, NOW),
            Err(Refusal::Replayed)
        );
    }

    #[test]
    fn frames_older_or_newer_than_the_clock_allows_are_stale() {
        let g = guard();
        assert_eq!(
            g.check(PeerId(1), Origin(1), 1, NOW - 61_000, NOW),
            Err(Refusal::Stale)
        );
        assert_eq!(
            g.check(PeerId(1), Origin(1), 1, NOW + 61_000, NOW),
            Err(Refusal::Stale)
        );
        assert_eq!(g.check(PeerId(1), Origin(1), 1, NOW - 59_000, NOW), Ok(()));
    }

    #[test]
    fn windows_are_bounded_and_only_idle_ones_are_forgotten() {
        let g = ReplayGuard::new(Duration::from_secs(60), 2);
        assert!(g.check(PeerId(1), Origin(1), 1, NOW, NOW).is_ok());
        assert!(g.check(PeerId(2), Origin(2), 1, NOW, NOW).is_ok());
        assert_eq!(
            g.check(PeerId(3), Origin(3), 1, NOW, NOW),
            Err(Refusal::Replayed)
        );
        let later = NOW + 61_000;
        assert!(g.check(PeerId(3), Origin(3), 1, later, later).is_ok());
        assert_eq!(g.tracked(), 1);
    }
}

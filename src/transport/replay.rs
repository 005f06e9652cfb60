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
//!
//! The windows live in memory and start empty when the receiver restarts.
//! What covers a restart: a bound frame's tag covers the receiver's
//! incarnation, so a frame sealed for the one before does not verify; and an
//! unbound frame (from a sender older than the hello) must have been sent
//! after this incarnation started, which no frame captured before the
//! restart was.
//!
//! A window idle longer than `max_age` starts afresh, and within a live
//! window a seq more than 2^32 ahead is refused (`implausible`): an honest
//! sender cannot send that many frames in `max_age`, and a single bogus
//! seq near `u64::MAX` would otherwise make every later frame of that
//! sender look replayed.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::gossip::{Origin, PeerId};

/// Why a frame was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Replayed,
    Stale,
    Implausible,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Replayed => "replayed",
            Refusal::Stale => "stale",
            Refusal::Implausible => "implausible",
        }
    }
}

const WINDOW: u64 = 64;
/// The furthest a frame seq may jump ahead within a live window.
const MAX_JUMP: u64 = 1 << 32;

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

    fn accept(&mut self, seq: u64, now_ms: u64) -> Result<(), Refusal> {
        if seq > self.highest.saturating_add(MAX_JUMP) {
            return Err(Refusal::Implausible);
        }
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
                return Err(Refusal::Replayed);
            }
            self.seen |= 1 << age;
        }
        self.last_used_ms = now_ms;
        Ok(())
    }
}

pub struct ReplayGuard {
    windows: Mutex<HashMap<(PeerId, Origin), Window>>,
    max_age_ms: u64,
    max_windows: usize,
    /// When this incarnation started: unbound frames sent before are refused.
    started_ms: u64,
}

/// The replay-relevant facts of one frame.
#[derive(Copy, Clone, Debug)]
pub struct FrameStamp {
    pub sender: PeerId,
    pub origin: Origin,
    pub seq: u64,
    pub sent_at_ms: u64,
    /// Sealed for this incarnation (see the module docs).
    pub bound: bool,
}

impl ReplayGuard {
    pub fn new(max_age: Duration, max_windows: usize, started_ms: u64) -> ReplayGuard {
        ReplayGuard {
            windows: Mutex::new(HashMap::default()),
            max_age_ms: max_age.as_millis() as u64,
            max_windows,
            started_ms,
        }
    }

    pub fn check(&self, f: FrameStamp, now_ms: u64) -> Result<(), Refusal> {
        let FrameStamp {
            sender,
            origin,
            seq,
            sent_at_ms,
            bound,
        } = f;
        if sent_at_ms.abs_diff(now_ms) > self.max_age_ms {
            return Err(Refusal::Stale);
        }
        if !bound && sent_at_ms < self.started_ms {
            return Err(Refusal::Stale);
        }
        // A std mutex: held for a map lookup, never across an await.
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let max_age = self.max_age_ms;
        if let Some(w) = windows.get_mut(&(sender, origin)) {
            if now_ms.saturating_sub(w.last_used_ms) > max_age {
                // Every frame this window saw is stale by now.
                *w = Window::new(seq, now_ms);
                return Ok(());
            }
            return w.accept(seq, now_ms);
        }
        if windows.len() >= self.max_windows {
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
        ReplayGuard::new(Duration::from_secs(60), 16, 0)
    }

    /// A bound frame (the usual case) from `sender` as `origin`.
    fn f(sender: u64, origin: u64, seq: u64, sent_at_ms: u64) -> FrameStamp {
        FrameStamp {
            sender: PeerId(sender),
            origin: Origin(origin),
            seq,
            sent_at_ms,
            bound: true,
        }
    }

    #[test]
    fn each_frame_passes_once() {
        let g = guard();
        for seq in 0..10 {
            assert_eq!(g.check(f(1, 1, seq, NOW), NOW), Ok(()));
        }
        assert_eq!(g.check(f(1, 1, 5, NOW), NOW), Err(Refusal::Replayed));
        // Another incarnation of the same peer starts its own window.
        assert_eq!(g.check(f(1, 2, 5, NOW), NOW), Ok(()));
    }

    #[test]
    fn slightly_out_of_order_frames_pass_and_old_ones_do_not() {
        let g = guard();
        assert_eq!(g.check(f(1, 1, 100, NOW), NOW), Ok(()));
        assert_eq!(g.check(f(1, 1, 98, NOW), NOW), Ok(()));
        assert_eq!(g.check(f(1, 1, 98, NOW), NOW), Err(Refusal::Replayed));
        assert_eq!(g.check(f(1, 1, 36, NOW), NOW), Err(Refusal::Replayed));
        assert_eq!(g.check(f(1, 1, 500, NOW), NOW), Ok(()));
        assert_eq!(g.check(f(1, 1, 100, NOW), NOW), Err(Refusal::Replayed));
    }

    #[test]
    fn frames_older_or_newer_than_the_clock_allows_are_stale() {
        let g = guard();
        assert_eq!(g.check(f(1, 1, 1, NOW - 61_000), NOW), Err(Refusal::Stale));
        assert_eq!(g.check(f(1, 1, 1, NOW + 61_000), NOW), Err(Refusal::Stale));
        assert_eq!(g.check(f(1, 1, 1, NOW - 59_000), NOW), Ok(()));
    }

    #[test]
    fn windows_are_bounded_and_only_idle_ones_are_forgotten() {
        let g = ReplayGuard::new(Duration::from_secs(60), 2, 0);
        assert!(g.check(f(1, 1, 1, NOW), NOW).is_ok());
        assert!(g.check(f(2, 2, 1, NOW), NOW).is_ok());
        assert_eq!(g.check(f(3, 3, 1, NOW), NOW), Err(Refusal::Replayed));
        let later = NOW + 61_000;
        assert!(g.check(f(3, 3, 1, later), later).is_ok());
        assert_eq!(g.tracked(), 1);
    }

    #[test]
    fn a_seq_far_ahead_is_refused_without_locking_the_sender_out() {
        let g = guard();
        assert_eq!(g.check(f(1, 1, 10, NOW), NOW), Ok(()));
        assert_eq!(
            g.check(f(1, 1, u64::MAX, NOW), NOW),
            Err(Refusal::Implausible)
        );
        assert_eq!(g.check(f(1, 1, 11, NOW), NOW), Ok(()));
        // After an idle stretch longer than the age bound, a big jump is fine.
        let later = NOW + 61_000;
        assert_eq!(g.check(f(1, 1, 1 << 40, later), later), Ok(()));
    }

    #[test]
    fn an_unbound_frame_sent_before_this_incarnation_started_is_stale() {
        let g = ReplayGuard::new(Duration::from_secs(60), 16, NOW);
        let unbound = |sent| FrameStamp {
            bound: false,
            ..f(1, 1, 1, sent)
        };
        assert_eq!(g.check(unbound(NOW - 1), NOW), Err(Refusal::Stale));
        assert_eq!(g.check(unbound(NOW), NOW), Ok(()));
        // A bound frame is covered by its tag instead.
        assert_eq!(g.check(f(2, 2, 1, NOW - 1), NOW), Ok(()));
    }
}

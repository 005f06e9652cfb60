//! How the core acts on the world: every effect goes through a `Runtime`
//! the driver supplies (the sidecar's owner task, the simulator, a test).
//! The shape follows foca's `Runtime`: the core calls it, never the reverse.

use std::sync::Arc;

use super::event::{Event, EventId};
use super::membership::PeerId;
use super::message::Item;
use super::time::Time;

/// Timers the core asks for. They cannot be cancelled; the core ignores
/// one that fires after it stopped mattering.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    SyncWithRandomPeer,
    FlushLazyQueue,
    GraftMissing(EventId),
    RetryOutbound,
}

/// Why the app is told to flush.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FlushReason {
    /// A gap stayed open longer than `gap_flush_after`.
    GapTimeout,
    /// A peer reported events this node lacks as gone from its buffer.
    GapUnrecoverable,
}

impl FlushReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::GapTimeout => "gap_timeout",
            FlushReason::GapUnrecoverable => "gap_unrecoverable",
        }
    }
}

pub trait Runtime {
    /// Send these items to a peer (one frame, or merged with whatever else
    /// is queued for it).
    fn send(&mut self, to: PeerId, items: Vec<Item>);
    /// Hand an event to the local app. `hop` is how many hops it travelled.
    fn deliver(&mut self, event: &Arc<Event>, hop: u8);
    /// Tell the local app to drop a cache (`None`: every cache).
    fn flush(&mut self, cache: Option<&str>, reason: FlushReason);
    /// Call `Node::timer` with this timer at (or after) `at`.
    fn schedule(&mut self, at: Time, timer: Timer);
}

/// Effects as values, for drivers that want to process them after the call
/// and for tests that assert on exactly what the core did.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Send {
        to: PeerId,
        items: Vec<Item>,
    },
    Deliver {
        event: Arc<Event>,
        hop: u8,
    },
    Flush {
        cache: Option<String>,
        reason: FlushReason,
    },
    Schedule {
        at: Time,
        timer: Timer,
    },
}

impl Runtime for Vec<Effect> {
    fn send(&mut self, to: PeerId, items: Vec<Item>) {
        self.push(Effect::Send { to, items });
    }
    fn deliver(&mut self, event: &Arc<Event>, hop: u8) {
        self.push(Effect::Deliver {
            event: event.clone(),
            hop,
        });
    }
    fn flush(&mut self, cache: Option<&str>, reason: FlushReason) {
        self.push(Effect::Flush {
            cache: cache.map(str::to_owned),
            reason,
        });
    }
    fn schedule(&mut self, at: Time, timer: Timer) {
        self.push(Effect::Schedule { at, timer });
    }
}

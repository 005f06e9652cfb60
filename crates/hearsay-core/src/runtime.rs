//! How the core acts on the world: every effect goes through a `Runtime`
//! the driver supplies (the sidecar's owner task, the simulator, a test).
//! The shape follows foca's `Runtime`: the core calls it, never the reverse.

use std::sync::Arc;

use super::event::{Event, EventId, Origin, Version};
use super::membership::PeerId;
use super::message::Item;
use super::time::Time;

/// Timers the core asks for. They cannot be cancelled; the core ignores
/// one that fires after it stopped mattering.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Anti-entropy: exchange digests with one random peer.
    SyncWithRandomPeer,
    /// Send the lazy links their queued announcements.
    FlushLazyQueue,
    /// An announced event has not arrived eagerly: graft it.
    GraftMissing(EventId),
    /// Retry what could not be sent to peers.
    RetryOutbound,
    /// Ask replicas still pending on tracked events again.
    AskPendingReplicas,
}

/// Why the app is told to flush: the one list of reasons, used for the
/// `reason` the app receives and the `reason` label of
/// `hearsay_flushes_total`. The core raises the gap reasons; the delivery
/// queue the others.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlushReason {
    /// A gap stayed open longer than `gap_flush_after`.
    GapTimeout,
    /// A peer reported events this node lacks as gone from its buffer.
    GapUnrecoverable,
    /// Too many keys pending for one cache.
    CacheOverflow,
    /// Too many caches pending at once.
    QueueOverflow,
    /// The app kept failing past the retry budget.
    WebhookBudget,
    /// This sidecar (re)started: whatever the app missed while it was down
    /// is covered.
    SidecarStart,
    /// A new subscription stream without `Last-Event-ID`: the subscriber
    /// cannot know what it missed.
    Subscribe,
    /// A stream resumed from an id the delivered log no longer holds.
    ResumeGap,
    /// A subscriber too slow for its bounded buffer.
    SlowSubscriber,
    /// No stream was connected for longer than the retry budget.
    NoSubscriber,
}

impl FlushReason {
    /// Every reason, in a stable order.
    pub const ALL: [FlushReason; 10] = [
        FlushReason::GapTimeout,
        FlushReason::GapUnrecoverable,
        FlushReason::CacheOverflow,
        FlushReason::QueueOverflow,
        FlushReason::WebhookBudget,
        FlushReason::SidecarStart,
        FlushReason::Subscribe,
        FlushReason::ResumeGap,
        FlushReason::SlowSubscriber,
        FlushReason::NoSubscriber,
    ];

    /// The label value, as metrics and the app see it.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::GapTimeout => "gap_timeout",
            FlushReason::GapUnrecoverable => "gap_unrecoverable",
            FlushReason::CacheOverflow => "cache_overflow",
            FlushReason::QueueOverflow => "queue_overflow",
            FlushReason::WebhookBudget => "webhook_budget",
            FlushReason::SidecarStart => "sidecar_start",
            FlushReason::Subscribe => "subscribe",
            FlushReason::ResumeGap => "resume_gap",
            FlushReason::SlowSubscriber => "slow_subscriber",
            FlushReason::NoSubscriber => "no_subscriber",
        }
    }

    /// Raised by the gossip core (and counted in its [`super::Stats`]), as
    /// opposed to the delivery queue.
    pub fn is_gap(self) -> bool {
        matches!(
            self,
            FlushReason::GapTimeout | FlushReason::GapUnrecoverable
        )
    }
}

/// The effects the core has on the world, supplied by its driver.
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
    /// A live config key was evicted to stay under the register cap: the
    /// app's view of it ends here (see `registers`).
    fn config_evicted(&mut self, key: &str, version: Version);
    /// A tracked event's confirmation is finished: every replica settled,
    /// or one rejected it (see `Node::confirmation`). Drivers without
    /// waiters ignore it.
    fn confirmed(&mut self, _id: EventId) {}
    /// Seqs of `origin` this node will never receive were covered (a gap
    /// given up on); the flush that covers them follows in the same call.
    /// Drivers that track what the app has settled note them.
    fn lost(&mut self, _origin: Origin, _first: u64, _last: u64) {}
    /// Seqs of `origin` this node does not hand to its app: published
    /// before the app existed, or a config write older than the value here.
    /// Drivers that track what the app has settled settle them.
    fn not_delivered(&mut self, _origin: Origin, _first: u64, _last: u64) {}
}

/// Effects as values, for drivers that want to process them after the call
/// and for tests that assert on exactly what the core did.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// [`Runtime::send`].
    Send {
        /// The peer.
        to: PeerId,
        /// What to send it.
        items: Vec<Item>,
    },
    /// [`Runtime::deliver`].
    Deliver {
        /// The event.
        event: Arc<Event>,
        /// Hops it travelled.
        hop: u8,
    },
    /// [`Runtime::flush`].
    Flush {
        /// The cache, or `None` for every cache.
        cache: Option<String>,
        /// Why.
        reason: FlushReason,
    },
    /// [`Runtime::schedule`].
    Schedule {
        /// When.
        at: Time,
        /// Which timer.
        timer: Timer,
    },
    /// [`Runtime::config_evicted`].
    ConfigEvicted {
        /// The evicted key.
        key: String,
        /// The version it had.
        version: Version,
    },
    /// [`Runtime::confirmed`].
    Confirmed(EventId),
    /// [`Runtime::lost`].
    Lost {
        /// The origin.
        origin: Origin,
        /// The first seq never received.
        first: u64,
        /// The last.
        last: u64,
    },
    /// [`Runtime::not_delivered`].
    NotDelivered {
        /// The origin.
        origin: Origin,
        /// The first seq.
        first: u64,
        /// The last.
        last: u64,
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
    fn config_evicted(&mut self, key: &str, version: Version) {
        self.push(Effect::ConfigEvicted {
            key: key.to_owned(),
            version,
        });
    }
    fn confirmed(&mut self, id: EventId) {
        self.push(Effect::Confirmed(id));
    }
    fn lost(&mut self, origin: Origin, first: u64, last: u64) {
        self.push(Effect::Lost {
            origin,
            first,
            last,
        });
    }
    fn not_delivered(&mut self, origin: Origin, first: u64, last: u64) {
        self.push(Effect::NotDelivered {
            origin,
            first,
            last,
        });
    }
}

//! The simulated network and the runtime each node talks to: a priority
//! queue of timed actions, links with latency, jitter, loss and partitions,
//! and the bookkeeping of who received what.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use rustc_hash::FxHashMap;

use crate::codec;
use crate::confirm::Outcome;
use crate::message::SettledRange;
use crate::{
    Event, EventId, FlushReason, Item, Origin, PeerId, Runtime, Settled, Time, Timer, Version,
};

/// Something that happens at a virtual time.
#[derive(Debug)]
pub enum Action {
    Frame {
        to: usize,
        to_incarnation: u32,
        from: PeerId,
        sender_origin: Origin,
        bytes: usize,
        items: Vec<Item>,
    },
    Timer {
        node: usize,
        incarnation: u32,
        timer: Timer,
    },
    Publish(usize),
    Crash(usize),
    Restart(usize),
    PartitionStart,
    PartitionHeal,
}

struct Scheduled {
    at: Time,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest, ties in insertion order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One published event and, per node, its first delivery.
pub struct Tracked {
    pub origin_node: usize,
    pub published_at: Time,
    pub cache: String,
    /// Per node: (incarnation, time, hop) of the first delivery.
    pub delivered: Vec<Option<(u32, Time, u8)>>,
    /// When its origin learned that every replica confirmed it (tracked
    /// runs only).
    pub confirmed_at: Option<Time>,
}

/// A flush the app was told to do.
pub struct FlushRecord {
    pub incarnation: u32,
    pub at: Time,
    pub cache: Option<String>,
}

#[derive(Default)]
pub struct Counters {
    pub frames: u64,
    pub frames_lost: u64,
    pub bytes: u64,
    pub payload_items: u64,
    pub control_frames: u64,
    pub duplicate_deliveries: u64,
    pub deliveries_before_start: u64,
    /// Confirmation items sent (asks and reports).
    pub confirm_items: u64,
    /// Frames that carried nothing but confirmation items.
    pub confirm_frames: u64,
}

pub struct Network {
    pub latency: Duration,
    pub jitter: Duration,
    pub loss: f64,
    /// Per node: on the cut-off side of the current partition.
    pub cut_off: Option<Vec<bool>>,
}

/// Everything but the nodes themselves, so a node can be borrowed mutably
/// while its runtime borrows the world.
pub struct World {
    pub now: Time,
    queue: BinaryHeap<Scheduled>,
    next_seq: u64,
    pub rng: Xoshiro256PlusPlus,
    pub net: Network,
    pub incarnation: Vec<u32>,
    pub up: Vec<bool>,
    pub started: Vec<Time>,
    pub tracked: Vec<Tracked>,
    pub index: FxHashMap<EventId, usize>,
    pub flushes: Vec<Vec<FlushRecord>>,
    pub counters: Counters,
    /// Apps settle what they are handed (tracked runs).
    pub apps_settle: bool,
    /// What apps settled during the current call: (node, incarnation, what).
    pub to_settle: Vec<(usize, u32, Settled)>,
}

impl World {
    pub fn new(nodes: usize, net: Network, rng: Xoshiro256PlusPlus) -> World {
        World {
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            next_seq: 0,
            rng,
            net,
            incarnation: vec![0; nodes],
            up: vec![true; nodes],
            started: vec![Time::ZERO; nodes],
            tracked: Vec::new(),
            index: FxHashMap::default(),
            flushes: (0..nodes).map(|_| Vec::new()).collect(),
            counters: Counters::default(),
            apps_settle: false,
            to_settle: Vec::new(),
        }
    }

    pub fn push(&mut self, at: Time, action: Action) {
        self.next_seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.next_seq,
            action,
        });
    }

    /// The next action due at or before `until`.
    pub fn pop_until(&mut self, until: Time) -> Option<(Time, Action)> {
        if self.queue.peek()?.at > until {
            return None;
        }
        let s = self.queue.pop()?;
        Some((s.at, s.action))
    }

    pub fn track(&mut self, event: &Arc<Event>, origin_node: usize, nodes: usize) {
        let cache = match &event.body {
            crate::EventBody::Invalidate(inv) => inv.cache.clone(),
            _ => String::new(),
        };
        self.index.insert(event.id, self.tracked.len());
        self.tracked.push(Tracked {
            origin_node,
            published_at: event.published_at,
            cache,
            delivered: vec![None; nodes],
            confirmed_at: None,
        });
    }

    fn latency(&mut self) -> Duration {
        let j = self.net.jitter.as_micros() as i64;
        let offset = if j == 0 {
            0
        } else {
            self.rng.random_range(-j..=j)
        };
        let us = (self.net.latency.as_micros() as i64 + offset).max(1);
        Duration::from_micros(us as u64)
    }
}

/// The runtime handed to one node for one call.
pub struct SimRuntime<'a> {
    pub world: &'a mut World,
    pub node: usize,
    pub me: PeerId,
    pub origin: Origin,
}

pub fn peer_of(node: usize) -> PeerId {
    PeerId(node as u64)
}

pub fn node_of(peer: PeerId) -> Option<usize> {
    usize::try_from(peer.0).ok()
}

impl SimRuntime<'_> {
    fn settle_range(&mut self, origin: Origin, first: u64, last: u64) {
        let w = &mut *self.world;
        if w.apps_settle {
            let inc = w.incarnation[self.node];
            let range = SettledRange {
                first,
                last,
                outcome: Outcome::Flushed,
            };
            w.to_settle
                .push((self.node, inc, Settled { origin, range }));
        }
    }
}

impl Runtime for SimRuntime<'_> {
    fn send(&mut self, to: PeerId, items: Vec<Item>) {
        let Some(to) = node_of(to).filter(|t| *t < self.world.up.len()) else {
            return;
        };
        let w = &mut *self.world;
        let payload = items.iter().filter(|i| i.is_payload()).count() as u64;
        let confirm = items.iter().filter(|i| i.is_confirmation()).count() as u64;
        w.counters.confirm_items += confirm;
        if confirm as usize == items.len() {
            w.counters.confirm_frames += 1;
        }
        let bytes = codec::HEADER_LEN + items.iter().map(codec::item_len).sum::<usize>();
        w.counters.frames += 1;
        w.counters.bytes += bytes as u64;
        w.counters.payload_items += payload;
        if payload == 0 {
            w.counters.control_frames += 1;
        }
        let partitioned = w
            .net
            .cut_off
            .as_ref()
            .is_some_and(|side| side[self.node] != side[to]);
        if partitioned || (w.net.loss > 0.0 && w.rng.random_bool(w.net.loss)) {
            w.counters.frames_lost += 1;
            return;
        }
        let at = w.now + w.latency();
        let to_incarnation = w.incarnation[to];
        w.push(
            at,
            Action::Frame {
                to,
                to_incarnation,
                from: self.me,
                sender_origin: self.origin,
                bytes,
                items,
            },
        );
    }

    fn deliver(&mut self, event: &Arc<Event>, hop: u8) {
        let w = &mut *self.world;
        let Some(&i) = w.index.get(&event.id) else {
            return;
        };
        let inc = w.incarnation[self.node];
        let t = &mut w.tracked[i];
        if t.published_at < w.started[self.node] {
            w.counters.deliveries_before_start += 1;
            return;
        }
        match t.delivered[self.node] {
            Some((prev, _, _)) if prev == inc => w.counters.duplicate_deliveries += 1,
            _ => t.delivered[self.node] = Some((inc, w.now, hop)),
        }
        if w.apps_settle {
            let s = Settled::event(event.id, Outcome::Acknowledged);
            w.to_settle.push((self.node, inc, s));
        }
    }

    fn confirmed(&mut self, id: EventId) {
        let w = &mut *self.world;
        if let Some(&i) = w.index.get(&id) {
            w.tracked[i].confirmed_at.get_or_insert(w.now);
        }
    }

    // The app acknowledges the flush that follows at once.
    fn lost(&mut self, origin: Origin, first: u64, last: u64) {
        self.settle_range(origin, first, last);
    }

    fn not_delivered(&mut self, origin: Origin, first: u64, last: u64) {
        self.settle_range(origin, first, last);
    }

    fn flush(&mut self, cache: Option<&str>, _reason: FlushReason) {
        let w = &mut *self.world;
        let incarnation = w.incarnation[self.node];
        w.flushes[self.node].push(FlushRecord {
            incarnation,
            at: w.now,
            cache: cache.map(str::to_owned),
        });
    }

    fn schedule(&mut self, at: Time, timer: Timer) {
        let incarnation = self.world.incarnation[self.node];
        self.world.push(
            at,
            Action::Timer {
                node: self.node,
                incarnation,
                timer,
            },
        );
    }

    /// The simulator publishes invalidations only; config never reaches the
    /// register cap here.
    fn config_evicted(&mut self, _key: &str, _version: Version) {}
}

//! The node: one replica's whole protocol state, driven from outside.
//!
//! Every public method takes the current time and a [`Runtime`] and returns
//! after emitting its effects. Nothing here blocks, sleeps, reads a clock or
//! touches a socket. The work is split by job across this module's files:
//! publishing and the outbox here, `config` for config writes and the
//! registers, `receive` for frames from peers, `overlay` for the broadcast
//! tree, `sync` for anti-entropy and housekeeping, `inspect` for what a
//! node shows of itself.

mod config;
mod confirm;
mod inspect;
mod overlay;
mod receive;
mod sync;

pub use confirm::Settled;

use std::sync::Arc;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rustc_hash::FxHashMap;
use thiserror::Error;

use super::bloom::RotatingBloom;
use super::codec;
use super::confirm::outcomes::Outcomes;
use super::confirm::tracker::Tracker;
use super::event::{Event, EventBody, EventError, EventId, Invalidation, Origin};
use super::hlc::Hlc;
use super::membership::{MembershipUpdate, PeerId, PeerSet};
use super::message::Item;
use super::ratelimit::TokenBucket;
use super::records::{Mark, Records};
use super::registers::Registers;
use super::retention::Retention;
use super::runtime::{FlushReason, Runtime, Timer};
use super::settings::NodeConfig;
use super::stats::Stats;
use super::time::Time;
use super::tree::Tree;

/// Why a local publish was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PublishError {
    #[error(transparent)]
    /// The event breaks a limit.
    Invalid(#[from] EventError),
    #[error("publish rate limit reached; retry in {retry_after:?}")]
    /// The publish rate limit is reached.
    RateLimited {
        /// When a token is next available.
        retry_after: Duration,
    },
    #[error("no config key {key:?}")]
    /// A delete names a key that holds no value.
    NoSuchKey {
        /// The key.
        key: String,
    },
}

struct InboundLimits {
    frames: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
    last_used: Time,
}

/// Outcome ranges kept per origin for confirmations; a run of events with
/// one outcome is one range, so this is far more events.
const OUTCOME_RANGES_PER_ORIGIN: usize = 4096;

/// A peer's inbound buckets idle this long are full again, so forgetting
/// them loses nothing and keeps the map to the peers actually talking.
const INBOUND_IDLE_FORGET: Duration = Duration::from_secs(5);

/// One node of the protocol: every input goes through its methods, every
/// effect through the [`Runtime`] they are given.
pub struct Node {
    cfg: Arc<NodeConfig>,
    me: PeerId,
    origin: Origin,
    started: Time,
    /// Events published before this are of no use to this node's app.
    since: Time,
    rng: Xoshiro256PlusPlus,
    seq: u64,
    hlc: Hlc,
    members: Arc<PeerSet>,
    records: Records,
    bloom: RotatingBloom,
    retention: Retention,
    tree: Tree,
    registers: Registers,
    publish_bucket: Option<TokenBucket>,
    inbound: FxHashMap<PeerId, InboundLimits>,
    outbound: Option<TokenBucket>,
    /// Items queued for each peer during the current call; sent at its end,
    /// so one call produces at most one send per peer.
    outbox: Vec<(PeerId, Vec<Item>)>,
    /// Items held back by the outbound byte limit.
    deferred: Vec<(PeerId, Vec<Item>)>,
    retry_outbound_armed: bool,
    /// Peers that recently sent a new event over the tree, and when: this
    /// node's current parents. A duplicate from one of them does not prune
    /// it; with several origins publishing at once (and grafts adding
    /// links), pruning every link that carried a duplicate can cut a whole
    /// subtree off.
    parents: Vec<(PeerId, Time)>,
    /// Announcements were queued during this call (the timer is armed in
    /// `finish`, where the runtime is at hand).
    lazy_flush_wanted: bool,
    lazy_flush_armed: bool,
    pending_flush: Option<FlushReason>,
    /// Seqs covered during this call without reaching the app, for the
    /// driver (`lost` ones are followed by the flush): origin, first,
    /// last, lost.
    uncovered: Vec<(Origin, u64, u64, bool)>,
    /// Events this node published with tracking, and what became of them.
    tracker: Tracker,
    /// What became of other origins' events at this node's app.
    outcomes: Outcomes,
    /// The next local publish is tracked ([`Node::track_next`]).
    track_next: bool,
    ask_armed: bool,
    stats: Stats,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("me", &self.me)
            .field("origin", &self.origin)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node that started at `now`. `seed` drives its random choices (peer
    /// picks, jitter); a driver passes OS entropy, a test a constant.
    pub fn new(cfg: Arc<NodeConfig>, me: PeerId, origin: Origin, now: Time, seed: u64) -> Node {
        let publish_bucket = cfg.publish_rate.map(|s| TokenBucket::new(s, now));
        let outbound = cfg.outbound_bytes.map(|s| TokenBucket::new(s, now));
        let tracker = Tracker::new(origin, cfg.retention, cfg.max_tracked);
        let outcomes = Outcomes::new(cfg.retention, OUTCOME_RANGES_PER_ORIGIN);
        Node {
            bloom: RotatingBloom::new(cfg.bloom.clone(), now),
            retention: Retention::new(cfg.retention, cfg.retention_bytes),
            since: now.saturating_sub(cfg.skew_margin),
            cfg,
            me,
            origin,
            started: now,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            seq: 0,
            hlc: Hlc::default(),
            members: Arc::new(PeerSet::default()),
            records: Records::default(),
            tree: Tree::default(),
            registers: Registers::default(),
            publish_bucket,
            inbound: FxHashMap::default(),
            outbound,
            outbox: Vec::new(),
            deferred: Vec::new(),
            retry_outbound_armed: false,
            parents: Vec::new(),
            lazy_flush_wanted: false,
            lazy_flush_armed: false,
            pending_flush: None,
            uncovered: Vec::new(),
            tracker,
            outcomes,
            track_next: false,
            ask_armed: false,
            stats: Stats::default(),
        }
    }

    /// Arms the anti-entropy timer and opens the first overlay links.
    pub fn start<R: Runtime + ?Sized>(&mut self, now: Time, rt: &mut R) {
        self.records.set_member(self.origin, self.me, now);
        self.schedule_sync(now, rt);
        self.ensure_view();
        self.finish(now, rt);
    }

    /// Publishes an invalidation from the local app.
    pub fn publish<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        inv: Invalidation,
        rt: &mut R,
    ) -> Result<EventId, PublishError> {
        self.originate(now, EventBody::Invalidate(inv), rt)
    }

    fn originate<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        body: EventBody,
        rt: &mut R,
    ) -> Result<EventId, PublishError> {
        let track = std::mem::take(&mut self.track_next);
        if let Err(e) = body.validate(&self.cfg.limits) {
            if e.is_size_limit() {
                self.stats.publish_too_large += 1;
            } else {
                self.stats.publish_invalid += 1;
            }
            return Err(e.into());
        }
        let event = Event {
            id: EventId {
                origin: self.origin,
                seq: self.seq + 1,
            },
            published_at: now,
            body,
        };
        let size = codec::event_len(&event);
        if size > self.cfg.limits.max_event_bytes {
            self.stats.publish_too_large += 1;
            return Err(EventError::EventTooLarge {
                size,
                max: self.cfg.limits.max_event_bytes,
            }
            .into());
        }
        if let Some(bucket) = &self.publish_bucket
            && let Err(limited) = bucket.try_take(now, 1)
        {
            self.stats.publish_rate_limited += 1;
            return Err(PublishError::RateLimited {
                retry_after: limited.retry_after,
            });
        }
        self.seq += 1;
        let event = Arc::new(event);
        let id = event.id;
        self.records
            .entry(self.origin, now)
            .mark(id.seq, now, self.cfg.max_out_of_order);
        self.bloom.insert(now, &id);
        self.retention.insert(now, event.clone(), 0, None, true);
        self.stats.published += 1;
        if !matches!(event.body, EventBody::Invalidate(_)) {
            self.apply_config(&event, now, rt);
        }
        if self.cfg.deliver_own {
            self.stats.events_delivered += 1;
            rt.deliver(&event, 0);
        }
        let relay = !self.is_direct_mode();
        self.disseminate(&event, 0, None, relay);
        if track {
            self.start_tracking(now, &event, rt);
        }
        self.finish(now, rt);
        Ok(id)
    }

    /// Hands an event that is new to this node to its app, or applies it to
    /// the config registers.
    fn deliver_local<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        event: &Arc<Event>,
        hop: u8,
        rt: &mut R,
    ) {
        if let Some((_, version)) = event.body.config_version() {
            self.hlc.observe(version.hlc);
            if self.apply_config(event, now, rt) {
                self.stats.config_applied += 1;
                self.stats.events_delivered += 1;
                rt.deliver(event, hop);
            } else {
                // A newer value is here: the app has it, or will.
                rt.not_delivered(event.id.origin, event.id.seq, event.id.seq);
            }
            return;
        }
        if event.published_at < self.since {
            // The app did not exist when this was published; its cache
            // cannot hold what this invalidates.
            self.stats.events_predating_start += 1;
            rt.not_delivered(event.id.origin, event.id.seq, event.id.seq);
            return;
        }
        self.stats.events_delivered += 1;
        rt.deliver(event, hop);
    }

    /// Marks a new event received; false if it was not new (or not
    /// trackable yet). `relayed`: it is being pushed on along the tree now.
    fn accept(
        &mut self,
        now: Time,
        event: &Arc<Event>,
        hop: u8,
        from: PeerId,
        relayed: bool,
    ) -> bool {
        let id = event.id;
        match self
            .records
            .entry(id.origin, now)
            .mark(id.seq, now, self.cfg.max_out_of_order)
        {
            Mark::New => {}
            Mark::Duplicate => {
                self.stats.duplicates_suppressed += 1;
                return false;
            }
            Mark::OutOfWindow => {
                self.stats.events_out_of_window += 1;
                return false;
            }
        }
        self.bloom.insert(now, &id);
        self.retention
            .insert(now, event.clone(), hop, Some(from), relayed);
        self.tree.received(&id);
        true
    }

    fn queue(&mut self, to: PeerId, item: Item) {
        if item.is_payload() {
            self.stats.events_sent += 1;
        }
        match self.outbox.iter_mut().find(|(p, _)| *p == to) {
            Some((_, items)) => items.push(item),
            None => self.outbox.push((to, vec![item])),
        }
    }

    /// Asks for one flush of every cache at the end of this call. Several
    /// requests in one call make one flush, counted once, with the first
    /// reason.
    fn request_flush(&mut self, reason: FlushReason) {
        if self.pending_flush.is_some() {
            return;
        }
        match reason {
            FlushReason::GapTimeout => self.stats.flush_gap_timeout += 1,
            FlushReason::GapUnrecoverable => self.stats.flush_gap_unrecoverable += 1,
            // The delivery queue raises and counts the others.
            _ => {}
        }
        self.pending_flush = Some(reason);
    }

    /// Ends every public call: one flush at most, then one send per peer,
    /// held back by the outbound byte limit if there is one.
    fn finish<R: Runtime + ?Sized>(&mut self, now: Time, rt: &mut R) {
        self.arm_lazy_flush(now, rt);
        for (origin, first, last, lost) in std::mem::take(&mut self.uncovered) {
            if lost {
                rt.lost(origin, first, last);
            } else {
                rt.not_delivered(origin, first, last);
            }
        }
        if let Some(reason) = self.pending_flush.take() {
            rt.flush(None, reason);
        }
        let outbox = std::mem::take(&mut self.outbox);
        for (peer, items) in outbox {
            let Some(bucket) = &self.outbound else {
                self.stats.frames_out += 1;
                rt.send(peer, items);
                continue;
            };
            let fresh = items.len() as u64;
            let mut all = match self.deferred.iter().position(|(p, _)| *p == peer) {
                Some(i) => self.deferred.swap_remove(i).1,
                None => Vec::new(),
            };
            all.extend(items);
            if all.is_empty() {
                continue;
            }
            let bytes: usize = all.iter().map(codec::item_len).sum();
            match bucket.try_take(now, u32::try_from(bytes).unwrap_or(u32::MAX)) {
                Ok(()) => {
                    self.stats.frames_out += 1;
                    rt.send(peer, all);
                }
                Err(limited) => {
                    self.stats.items_deferred_out += fresh;
                    self.deferred.push((peer, all));
                    if !self.retry_outbound_armed {
                        self.retry_outbound_armed = true;
                        rt.schedule(now + limited.retry_after, Timer::RetryOutbound);
                    }
                }
            }
        }
    }

    /// A timer the node asked for has fired.
    pub fn timer<R: Runtime + ?Sized>(&mut self, now: Time, timer: Timer, rt: &mut R) {
        match timer {
            Timer::SyncWithRandomPeer => self.sync_with_random_peer(now, rt),
            Timer::FlushLazyQueue => self.flush_lazy_queue(),
            Timer::GraftMissing(id) => self.graft_missing(now, id, rt),
            Timer::AskPendingReplicas => self.ask_pending(now, rt),
            Timer::RetryOutbound => {
                self.retry_outbound_armed = false;
                // An empty outbox entry per peer: `finish` merges what was
                // deferred into it, without counting those items (as sent or
                // as deferred) a second time.
                for (peer, _) in &self.deferred {
                    if !self.outbox.iter().any(|(p, _)| p == peer) {
                        self.outbox.push((*peer, Vec::new()));
                    }
                }
            }
        }
        self.finish(now, rt);
    }

    /// Discovery produced a new peer set.
    pub fn apply_membership<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        update: &MembershipUpdate,
        rt: &mut R,
    ) {
        let had_peers = self.members.ids().iter().any(|p| *p != self.me);
        self.members = update.members.clone();
        self.confirm_departed(now, &update.left, rt);
        for p in &update.left {
            self.tree.remove(*p);
            self.records.retire_member(*p, now);
            self.inbound.remove(p);
            self.deferred.retain(|(x, _)| x != p);
        }
        for p in &update.joined {
            self.records.unretire_member(*p);
        }
        if had_peers {
            self.sync_with_joined(&update.joined);
        }
        self.ensure_view();
        self.finish(now, rt);
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.rng.random_range(0.5..1.5))
    }
}

#[cfg(test)]
mod tests;

//! Frames from peers: admission by the per-peer inbound limits, then each
//! item in order. Bad items are counted and skipped; nothing here panics on
//! what a peer sends.

use std::sync::Arc;

use super::Node;
use super::overlay::event_item;
use crate::codec;
use crate::event::EventId;
use crate::membership::PeerId;
use crate::message::{Announcement, EventItem, Inbound, Item, Route};
use crate::ratelimit::TokenBucket;
use crate::records::MAX_SEQ;
use crate::runtime::{Runtime, Timer};
use crate::time::Time;
use crate::tree::Link;

impl Node {
    /// A decoded, authenticated frame.
    pub fn receive<R: Runtime + ?Sized>(&mut self, now: Time, frame: Inbound, rt: &mut R) {
        let Inbound {
            from,
            sender_origin,
            frame_len,
            items,
        } = frame;
        if from == self.me {
            return;
        }
        if !self.admit_inbound(now, from, frame_len) {
            return;
        }
        self.stats.frames_in += 1;
        self.stats.bytes_in += frame_len as u64;
        if sender_origin != self.origin {
            self.records.set_member(sender_origin, from, now);
        }
        for item in items {
            match item {
                Item::Event(ev) => self.on_event(now, from, ev, rt),
                Item::IHave(anns) => self.on_ihave(now, from, &anns, rt),
                Item::Graft(ids) => self.on_graft(from, &ids),
                Item::Prune => {
                    if self.tree.link(from).is_some() {
                        self.tree.make_lazy(from);
                    }
                }
                Item::Neighbor => {
                    self.adopt(from, Link::Eager);
                }
                Item::Disconnect => {
                    self.tree.remove(from);
                }
                Item::Digest(d) => self.on_digest(now, from, &d),
                Item::RepairInfo(list) => self.on_repair_info(now, &list),
                Item::ConfirmWant(w) => self.on_confirm_want(now, from, sender_origin, w),
                Item::ConfirmReport(r) => self.on_confirm_report(now, from, &r, rt),
            }
        }
        self.finish(now, rt);
    }

    /// Per-peer frames/s and bytes/s (DESIGN §7). A refused frame is
    /// counted; anti-entropy repairs what a legitimate peer lost.
    fn admit_inbound(&mut self, now: Time, from: PeerId, frame_len: usize) -> bool {
        let cfg = &self.cfg;
        if cfg.inbound_frames_per_peer.is_none() && cfg.inbound_bytes_per_peer.is_none() {
            return true;
        }
        let limits = self
            .inbound
            .entry(from)
            .or_insert_with(|| super::InboundLimits {
                frames: cfg
                    .inbound_frames_per_peer
                    .map(|s| TokenBucket::new(s, now)),
                bytes: cfg.inbound_bytes_per_peer.map(|s| TokenBucket::new(s, now)),
                last_used: now,
            });
        limits.last_used = now;
        if let Some(b) = &limits.frames
            && b.try_take(now, 1).is_err()
        {
            self.stats.frames_rate_limited_in += 1;
            return false;
        }
        if let Some(b) = &limits.bytes
            && b.try_take(now, u32::try_from(frame_len).unwrap_or(u32::MAX))
                .is_err()
        {
            self.stats.frames_rate_limited_in += 1;
            self.stats.bytes_rate_limited_in += frame_len as u64;
            return false;
        }
        true
    }

    fn on_event<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        item: EventItem,
        rt: &mut R,
    ) {
        self.stats.events_received += 1;
        let event = &item.event;
        let id = event.id;
        if id.seq > MAX_SEQ {
            self.stats.implausible_numbers += 1;
            return;
        }
        if event.body.validate(&self.cfg.limits).is_err()
            || codec::event_len(event) > self.cfg.limits.max_event_bytes
        {
            self.stats.events_invalid += 1;
            return;
        }
        if id.origin == self.origin {
            // Our own event coming back around the tree.
            self.stats.duplicates_suppressed += 1;
            if item.route == Route::TreeRelay {
                self.prune(from);
            }
            return;
        }
        match item.route {
            Route::Push => self.on_push(now, from, &item, rt),
            Route::TreeRelay => self.on_tree_relay(now, from, &item, rt),
            Route::GraftAnswer => self.on_graft_answer(now, from, &item, rt),
            Route::Repair => self.on_repair(now, from, &item, rt),
            Route::ConfigState => self.on_config_state(now, from, &item, rt),
        }
    }

    /// Whether an event was seen: on the exact record, or (for the fast
    /// path, DESIGN §6) also on the bloom filter. A bloom "seen" above the
    /// watermark is a false positive; it leaves a gap that anti-entropy
    /// (or a graft) fills.
    fn seen(&mut self, now: Time, id: EventId, bloom: bool) -> bool {
        if self.records.is_seen(id.origin, id.seq) {
            self.stats.duplicates_suppressed += 1;
            return true;
        }
        if bloom && self.bloom.contains(&id) {
            self.stats.duplicates_suppressed += 1;
            self.stats.bloom_false_positives += 1;
            self.records.entry(id.origin, now).note_exists(id.seq, now);
            return true;
        }
        false
    }

    /// The tree copy of an event a repair delivered first: the link is
    /// fine and the subtree below still needs it. True when that was so.
    fn relay_after_repair(&mut self, from: PeerId, item: &EventItem) -> bool {
        let id = item.event.id;
        if self.records.is_seen(id.origin, id.seq) && self.retention.mark_relayed(&id) {
            self.adopt(from, Link::Eager);
            self.disseminate(&item.event, item.hop, Some(from), true);
            return true;
        }
        false
    }

    /// Pushed by its origin to every member: keep it, send it nowhere.
    fn on_push<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        item: &EventItem,
        rt: &mut R,
    ) {
        if self.seen(now, item.event.id, true)
            || !self.accept(now, &item.event, item.hop, from, false)
        {
            return;
        }
        self.deliver_local(now, &item.event, item.hop, rt);
    }

    /// Along the tree: keep it and forward it; a duplicate prunes the
    /// link unless it is a recent parent.
    fn on_tree_relay<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        item: &EventItem,
        rt: &mut R,
    ) {
        if self.relay_after_repair(from, item) {
            return;
        }
        if self.seen(now, item.event.id, true) {
            if !self.is_recent_parent(now, from) {
                self.prune(from);
            }
            return;
        }
        if !self.accept(now, &item.event, item.hop, from, true) {
            return;
        }
        self.note_parent(now, from);
        self.adopt(from, Link::Eager);
        self.disseminate(&item.event, item.hop, Some(from), true);
        self.deliver_local(now, &item.event, item.hop, rt);
    }

    /// The answer to a graft: decided on the exact record, forwarded like
    /// the tree's copy, but not making its sender a parent (it is a
    /// repair, not the tree's usual path).
    fn on_graft_answer<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        item: &EventItem,
        rt: &mut R,
    ) {
        if self.relay_after_repair(from, item)
            || self.seen(now, item.event.id, false)
            || !self.accept(now, &item.event, item.hop, from, true)
        {
            return;
        }
        self.adopt(from, Link::Eager);
        self.disseminate(&item.event, item.hop, Some(from), true);
        self.deliver_local(now, &item.event, item.hop, rt);
    }

    /// Sent by anti-entropy: decided on the exact record, not forwarded.
    fn on_repair<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        item: &EventItem,
        rt: &mut R,
    ) {
        if self.seen(now, item.event.id, false)
            || !self.accept(now, &item.event, item.hop, from, false)
        {
            return;
        }
        self.stats.repairs_received += 1;
        self.deliver_local(now, &item.event, item.hop, rt);
    }

    fn note_parent(&mut self, now: Time, p: PeerId) {
        let window = self.cfg.parent_protection;
        self.parents
            .retain(|(x, t)| *x != p && now.since(*t) < window);
        self.parents.push((p, now));
    }

    fn is_recent_parent(&self, now: Time, p: PeerId) -> bool {
        let window = self.cfg.parent_protection;
        self.parents
            .iter()
            .any(|(x, t)| *x == p && now.since(*t) < window)
    }

    /// A config register sent by anti-entropy: applied by version, whatever
    /// the seq records say.
    fn on_config_state<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        item: &EventItem,
        rt: &mut R,
    ) {
        let event = &item.event;
        if !self.records.is_seen(event.id.origin, event.id.seq) {
            self.accept(now, event, item.hop, from, false);
        }
        if event.body.config_version().is_some() {
            self.deliver_local(now, event, item.hop, rt);
        } else {
            self.stats.events_invalid += 1;
        }
    }

    fn on_ihave<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        anns: &[Announcement],
        rt: &mut R,
    ) {
        if !self.adopt(from, Link::Lazy) {
            return;
        }
        for a in anns {
            let id = a.id;
            if id.origin == self.origin {
                continue;
            }
            if id.seq > MAX_SEQ {
                self.stats.implausible_numbers += 1;
                continue;
            }
            if self.records.is_seen(id.origin, id.seq) {
                continue;
            }
            self.records.entry(id.origin, now).note_exists(id.seq, now);
            if self.tree.note_missing(id, from, a.hop) {
                rt.schedule(now + self.cfg.graft_timeout, Timer::GraftMissing(id));
            }
        }
    }

    fn on_graft(&mut self, from: PeerId, ids: &[EventId]) {
        self.tree.make_eager(from);
        for id in ids {
            let Some(stored) = self.retention.get(id) else {
                continue;
            };
            let event: Arc<_> = stored.event.clone();
            let hop = stored.hop.saturating_add(1);
            self.stats.repairs_sent += 1;
            self.queue(from, event_item(&event, hop, Route::GraftAnswer));
        }
    }
}

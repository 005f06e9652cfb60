//! Frames from peers: admission by the per-peer inbound limits, then each
//! item in order. Bad items are counted and skipped; nothing here panics on
//! what a peer sends.

use std::sync::Arc;

use super::Node;
use super::overlay::event_item;
use crate::codec;
use crate::event::{EventId, Origin};
use crate::membership::PeerId;
use crate::message::{Announcement, EventItem, Item};
use crate::ratelimit::TokenBucket;
use crate::records::MAX_SEQ;
use crate::runtime::{Runtime, Timer};
use crate::time::Time;
use crate::tree::Link;

impl Node {
    /// A decoded, authenticated frame from `from`, whose process runs as
    /// `sender_origin`. `frame_len` is its size on the wire.
    pub fn receive<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        sender_origin: Origin,
        frame_len: usize,
        items: Vec<Item>,
        rt: &mut R,
    ) {
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
            if item.relay && !item.exact {
                self.prune(from);
            }
            return;
        }
        if item.state {
            self.on_config_state(now, from, &item, rt);
            return;
        }
        let record_seen = self.records.is_seen(id.origin, id.seq);
        // The fast path decides on the bloom filter (DESIGN §6). A requested
        // event (graft or repair) is decided on the exact record, which is
        // how a bloom false positive gets repaired.
        let seen = record_seen || (!item.exact && self.bloom.contains(&id));
        if record_seen && item.relay && self.retention.mark_relayed(&id) {
            // First received by a repair that overtook the tree: this is the
            // tree copy, so the link is fine and the subtree below still
            // needs it.
            self.adopt(from, Link::Eager);
            self.disseminate(event, item.hop, Some(from), true);
            return;
        }
        if seen {
            self.stats.duplicates_suppressed += 1;
            if !record_seen {
                // A bloom "seen" above the watermark: a false positive. It
                // leaves a gap that anti-entropy (or a graft) fills.
                self.stats.bloom_false_positives += 1;
                self.records.entry(id.origin, now).note_exists(id.seq, now);
            }
            if item.relay && !item.exact && !self.is_recent_parent(now, from) {
                self.prune(from);
            }
            return;
        }
        if !self.accept(now, event, item.hop, from, item.relay) {
            return;
        }
        if item.exact && !item.relay {
            self.stats.repairs_received += 1;
        }
        if item.relay {
            if !item.exact {
                // A graft answer is a repair, not the tree's usual path:
                // it does not make its sender a parent.
                self.note_parent(now, from);
            }
            self.adopt(from, Link::Eager);
            self.disseminate(event, item.hop, Some(from), true);
        }
        self.deliver_local(now, event, item.hop, rt);
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
            self.queue(from, event_item(&event, hop, true, true));
        }
    }
}

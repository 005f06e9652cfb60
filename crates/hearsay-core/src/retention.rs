//! The retention buffer: recent events kept to answer grafts and
//! anti-entropy repairs, bounded by age and by bytes.
//!
//! For each origin it also remembers what is gone: the highest seq evicted
//! or covered without being received, and the newest publish time among
//! those. That is what lets a repair tell an asker "skip these, they predate
//! you" apart from "these are lost, flush".

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::codec;
use super::event::{Event, EventId, Origin};
use super::membership::PeerId;
use super::message::OriginRepair;
use super::time::Time;

/// An event as this node received it.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The event.
    pub event: Arc<Event>,
    /// The hop count it arrived with (0 for the node's own events).
    pub hop: u8,
    /// Who sent it first (the parent on the broadcast tree), if a peer did.
    pub from: Option<PeerId>,
    /// Whether this node has pushed it on along the tree (an event first
    /// received by a repair is relayed when its tree copy arrives).
    pub relayed: bool,
    stored_at: Time,
    /// Encoded size (what a repair costs on the wire).
    wire_size: usize,
    /// Heap it holds here (see [`memory_of`]).
    memory: usize,
}

/// Heap an event holds in the buffer: the event itself (all of it, though
/// a queue may share it for a moment), its slot in the origin's map (a
/// B-tree's nodes are about two-thirds full) and in the age queue (which
/// doubles as it grows). `tests/memory.rs` checks this against a counting
/// allocator.
fn memory_of(event: &Event) -> usize {
    let map_slot = (std::mem::size_of::<u64>() + std::mem::size_of::<Stored>()) * 3 / 2;
    let queue_slot = std::mem::size_of::<(Time, EventId)>() * 2;
    event.heap_bytes() + map_slot + queue_slot
}

#[derive(Debug, Default)]
struct OriginBuffer {
    events: BTreeMap<u64, Stored>,
    gone_through: u64,
    gone_newest: Time,
    /// Seqs up to this were skipped here without ever arriving, because
    /// they predate this node; all were published before `skipped_newest`.
    /// This node knows nothing about them, so it cannot vouch for them to
    /// an asker that started earlier.
    skipped_through: u64,
    skipped_newest: Time,
}

/// What a repair answer holds for one origin.
#[derive(Debug, Default)]
pub struct RepairPlan {
    /// Events to send, oldest first.
    pub events: Vec<Stored>,
    /// What the answer says of the seqs it cannot send.
    pub info: Option<OriginRepair>,
    /// Encoded bytes of the events.
    pub bytes: usize,
}

#[derive(Debug)]
/// Recent events kept for grafts and repairs, bounded by age and bytes.
pub struct Retention {
    max_age: Duration,
    max_bytes: usize,
    bytes: usize,
    order: VecDeque<(Time, EventId)>,
    origins: FxHashMap<Origin, OriginBuffer>,
    evicted: u64,
}

impl Retention {
    /// Keeps events up to `max_age` old and `max_bytes` in all.
    pub fn new(max_age: Duration, max_bytes: usize) -> Retention {
        Retention {
            max_age,
            max_bytes,
            bytes: 0,
            order: VecDeque::new(),
            origins: FxHashMap::default(),
            evicted: 0,
        }
    }

    /// Heap held by the buffered events (estimated, see `memory_of`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Events kept.
    pub fn len(&self) -> usize {
        self.origins.values().map(|b| b.events.len()).sum()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Events evicted so far (by age or by bytes).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Keeps an event received at `now` with its hop count.
    pub fn insert(
        &mut self,
        now: Time,
        event: Arc<Event>,
        hop: u8,
        from: Option<PeerId>,
        relayed: bool,
    ) {
        let wire_size = codec::event_len(&event);
        let memory = memory_of(&event);
        let id = event.id;
        let buf = self.origins.entry(id.origin).or_default();
        if buf.events.contains_key(&id.seq) {
            return;
        }
        buf.events.insert(
            id.seq,
            Stored {
                event,
                hop,
                from,
                relayed,
                stored_at: now,
                wire_size,
                memory,
            },
        );
        self.bytes += memory;
        self.order.push_back((now, id));
        self.evict(now);
    }

    /// A kept event by id.
    pub fn get(&self, id: &EventId) -> Option<&Stored> {
        self.origins.get(&id.origin)?.events.get(&id.seq)
    }

    /// Marks an event relayed; true if it was not before.
    pub fn mark_relayed(&mut self, id: &EventId) -> bool {
        match self
            .origins
            .get_mut(&id.origin)
            .and_then(|b| b.events.get_mut(&id.seq))
        {
            Some(s) if !s.relayed => {
                s.relayed = true;
                true
            }
            _ => false,
        }
    }

    /// Drops events older than the age bound, then the oldest until the
    /// byte bound holds.
    pub fn evict(&mut self, now: Time) {
        while let Some(&(stored_at, id)) = self.order.front() {
            let too_old = now.since(stored_at) >= self.max_age;
            if !too_old && self.bytes <= self.max_bytes {
                break;
            }
            self.order.pop_front();
            let Some(buf) = self.origins.get_mut(&id.origin) else {
                continue;
            };
            if let Some(s) = buf.events.remove(&id.seq) {
                self.bytes -= s.memory;
                self.evicted += 1;
                buf.gone_through = buf.gone_through.max(id.seq);
                buf.gone_newest = buf.gone_newest.max(s.event.published_at);
            }
        }
    }

    /// Seqs up to `through` were covered without being received. `newest` is
    /// an upper bound on their publish times (`Time::MAX` if unknown).
    pub fn mark_gone(&mut self, origin: Origin, through: u64, newest: Time) {
        let buf = self.origins.entry(origin).or_default();
        buf.gone_through = buf.gone_through.max(through);
        buf.gone_newest = buf.gone_newest.max(newest);
    }

    /// Seqs up to `through` were skipped without being received: they were
    /// published before `newest` (this node's start).
    pub fn mark_skipped(&mut self, origin: Origin, through: u64, newest: Time) {
        let buf = self.origins.entry(origin).or_default();
        buf.skipped_through = buf.skipped_through.max(through);
        buf.skipped_newest = buf.skipped_newest.max(newest);
    }

    /// Drops every event of an origin that is gone.
    pub fn forget_origin(&mut self, origin: Origin) {
        if let Some(buf) = self.origins.remove(&origin) {
            self.bytes -= buf.events.values().map(|s| s.memory).sum::<usize>();
        }
    }

    /// Plans the answer to an asker whose watermark for `origin` is
    /// `asker_watermark`, who needs nothing published before `since`, given
    /// that this node's own watermark is `our_watermark`. Sends at most
    /// `budget` bytes of events, in seq order, and none that arrived here
    /// after `fresh_after` (those are most likely still on their way to the
    /// asker along the tree).
    ///
    /// Every seq at or below `our_watermark` that is not in the buffer is
    /// gone (evicted, or covered by this node's own skip or flush), so the
    /// answer can vouch for it; seqs above `our_watermark` that are absent
    /// may simply not have arrived yet, so it cannot.
    pub fn plan_repair(
        &self,
        origin: Origin,
        asker_watermark: u64,
        since: Time,
        our_watermark: u64,
        budget: usize,
        fresh_after: Time,
    ) -> RepairPlan {
        let buf = self.origins.get(&origin);
        let mut cover = Cover {
            through: asker_watermark,
            contiguous: true,
            our_watermark,
            vouching: Vouching::new(buf, since),
        };
        let mut plan = RepairPlan::default();
        let mut out_of_budget = false;
        for (&seq, stored) in buf
            .into_iter()
            .flat_map(|b| b.events.range(asker_watermark + 1..))
        {
            cover.hole_before(seq);
            if stored.stored_at > fresh_after {
                out_of_budget = true;
                break;
            }
            if stored.event.published_at >= since {
                if plan.bytes + stored.wire_size > budget {
                    out_of_budget = true;
                    break;
                }
                plan.bytes += stored.wire_size;
                plan.events.push(stored.clone());
            }
            if cover.contiguous {
                cover.through = seq;
            }
        }
        if !out_of_budget {
            cover.up_to_our_watermark();
        }
        if cover.through > asker_watermark {
            plan.info = Some(OriginRepair {
                origin,
                through: cover.through,
                lost: cover.vouching.lost,
            });
        }
        plan
    }
}

/// How far a repair answer covers the asker: every seq up to `through` is
/// sent, predates what the asker needs, or is vouched for as gone.
struct Cover {
    through: u64,
    /// No hole this node cannot vouch for yet: `through` still advances.
    contiguous: bool,
    our_watermark: u64,
    vouching: Vouching,
}

impl Cover {
    /// A hole before `seq`: vouch for the part at or below our watermark
    /// (gone), stop covering past it.
    fn hole_before(&mut self, seq: u64) {
        if !self.contiguous || seq <= self.through + 1 {
            return;
        }
        let vouch_to = (seq - 1).min(self.our_watermark);
        if vouch_to > self.through {
            if self.vouching.vouch(self.through + 1, vouch_to) {
                self.through = vouch_to;
            } else {
                self.contiguous = false;
            }
        }
        if seq - 1 > self.our_watermark {
            self.contiguous = false;
        }
    }

    /// After the last stored event: the rest up to our watermark is gone.
    fn up_to_our_watermark(&mut self) {
        if self.contiguous
            && self.our_watermark > self.through
            && self.vouching.vouch(self.through + 1, self.our_watermark)
        {
            self.through = self.our_watermark;
        }
    }
}

/// What this node can say of seqs it does not hold.
struct Vouching {
    /// Seqs this node skipped that may matter to an asker that started
    /// earlier: about those it must say nothing, so the asker asks a peer
    /// that had them.
    unknown_through: u64,
    skipped_through: u64,
    /// Whether seqs evicted or flushed here are ones the asker needed.
    gone_is_lost: bool,
    /// Whether the answer vouches for a seq the asker needed: lost.
    lost: bool,
}

impl Vouching {
    fn new(buf: Option<&OriginBuffer>, since: Time) -> Vouching {
        let (gone_newest, skipped_through, skipped_newest) = match buf {
            Some(b) => (b.gone_newest, b.skipped_through, b.skipped_newest),
            None => (Time::MAX, 0, Time::ZERO),
        };
        Vouching {
            unknown_through: if since < skipped_newest {
                skipped_through
            } else {
                0
            },
            skipped_through,
            gone_is_lost: gone_newest >= since,
            lost: false,
        }
    }

    /// Vouches for the hole `from..=to`: false if it cannot.
    fn vouch(&mut self, from: u64, to: u64) -> bool {
        if from <= self.unknown_through {
            return false;
        }
        if to > self.skipped_through || from > self.skipped_through {
            self.lost |= self.gone_is_lost;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventBody, Invalidation};

    fn ev(origin: u64, seq: u64, published_ms: u64) -> Arc<Event> {
        Arc::new(Event {
            id: EventId {
                origin: Origin(origin),
                seq,
            },
            published_at: Time::from_millis(published_ms),
            body: EventBody::Invalidate(Invalidation {
                cache: "c".into(),
                keys: vec!["k".into()],
                ..Default::default()
            }),
        })
    }

    fn seqs(plan: &RepairPlan) -> Vec<u64> {
        plan.events.iter().map(|s| s.event.id.seq).collect()
    }

    #[test]
    fn events_older_than_the_age_bound_are_evicted_and_remembered_as_gone() {
        let mut r = Retention::new(Duration::from_secs(10), 1 << 20);
        r.insert(Time::from_millis(0), ev(1, 1, 0), 1, None, true);
        r.insert(Time::from_millis(5_000), ev(1, 2, 5_000), 1, None, true);
        r.evict(Time::from_millis(10_000));
        assert_eq!(r.len(), 1);
        assert_eq!(r.evicted(), 1);
        // An asker that started after seq 1 was published skips it quietly.
        let plan = r.plan_repair(Origin(1), 0, Time::from_millis(1), 2, 1 << 20, Time::MAX);
        assert_eq!(seqs(&plan), vec![2]);
        assert_eq!(
            plan.info,
            Some(OriginRepair {
                origin: Origin(1),
                through: 2,
                lost: false
            })
        );
        // An asker older than seq 1 has lost it.
        let plan = r.plan_repair(Origin(1), 0, Time::ZERO, 2, 1 << 20, Time::MAX);
        assert!(plan.info.unwrap().lost);
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest_first() {
        let one = memory_of(&ev(1, 1, 0));
        let mut r = Retention::new(Duration::from_secs(60), one * 2);
        for s in 1..=3 {
            r.insert(Time::ZERO, ev(1, s, 0), 1, None, true);
        }
        assert!(r.bytes() <= one * 2);
        assert!(
            r.get(&EventId {
                origin: Origin(1),
                seq: 1
            })
            .is_none()
        );
        assert!(
            r.get(&EventId {
                origin: Origin(1),
                seq: 3
            })
            .is_some()
        );
    }

    #[test]
    fn a_repair_skips_what_predates_the_asker_and_sends_the_rest() {
        let mut r = Retention::new(Duration::from_secs(60), 1 << 20);
        for s in 1..=4 {
            r.insert(Time::ZERO, ev(1, s, s * 100), 1, None, true);
        }
        let plan = r.plan_repair(Origin(1), 0, Time::from_millis(250), 4, 1 << 20, Time::MAX);
        assert_eq!(seqs(&plan), vec![3, 4]);
        assert_eq!(plan.info.unwrap().through, 4);
        assert!(!plan.info.unwrap().lost);
    }

    #[test]
    fn a_repair_cut_by_its_budget_vouches_only_for_what_it_sent() {
        let mut r = Retention::new(Duration::from_secs(60), 1 << 20);
        for s in 1..=4 {
            r.insert(Time::ZERO, ev(1, s, 0), 1, None, true);
        }
        let one = codec::event_len(&ev(1, 1, 0));
        let plan = r.plan_repair(Origin(1), 0, Time::ZERO, 4, one * 2, Time::MAX);
        assert_eq!(seqs(&plan), vec![1, 2]);
        assert_eq!(plan.info.unwrap().through, 2);
    }

    #[test]
    fn a_repair_does_not_vouch_above_its_own_watermark() {
        let mut r = Retention::new(Duration::from_secs(60), 1 << 20);
        r.insert(Time::ZERO, ev(1, 1, 0), 1, None, true);
        r.insert(Time::ZERO, ev(1, 4, 0), 1, None, true);
        // This node has 1 and 4, watermark 1: it has not seen 2 and 3 and
        // cannot say they are gone.
        let plan = r.plan_repair(Origin(1), 0, Time::ZERO, 1, 1 << 20, Time::MAX);
        assert_eq!(seqs(&plan), vec![1, 4]);
        assert_eq!(plan.info.unwrap().through, 1);
    }

    #[test]
    fn events_that_just_arrived_are_left_for_the_tree() {
        let mut r = Retention::new(Duration::from_secs(60), 1 << 20);
        r.insert(Time::from_millis(0), ev(1, 1, 0), 1, None, true);
        r.insert(Time::from_millis(900), ev(1, 2, 0), 1, None, true);
        let fresh_after = Time::from_millis(800);
        let plan = r.plan_repair(Origin(1), 0, Time::ZERO, 2, 1 << 20, fresh_after);
        assert_eq!(seqs(&plan), vec![1]);
        assert_eq!(
            plan.info.unwrap().through,
            1,
            "no promise past what was sent"
        );
    }

    #[test]
    fn seqs_covered_by_a_flush_are_lost_to_every_asker() {
        let mut r = Retention::new(Duration::from_secs(60), 1 << 20);
        r.mark_gone(Origin(1), 5, Time::MAX);
        let plan = r.plan_repair(Origin(1), 2, Time::ZERO, 5, 1 << 20, Time::MAX);
        assert_eq!(
            plan.info,
            Some(OriginRepair {
                origin: Origin(1),
                through: 5,
                lost: true
            })
        );
        // An unknown origin the node has a watermark for is lost too.
        let plan = r.plan_repair(Origin(2), 0, Time::ZERO, 3, 1 << 20, Time::MAX);
        assert!(plan.info.unwrap().lost);
    }

    #[test]
    fn seqs_skipped_as_predating_this_node_are_not_vouched_for_to_an_earlier_asker() {
        let mut r = Retention::new(Duration::from_secs(30), 1 << 20);
        // This node started at 5 s and skipped seqs 1..=3 as older than it.
        let started = Time::from_millis(5_000);
        r.mark_skipped(Origin(1), 3, started);
        r.insert(started, ev(1, 4, 5_100), 1, None, true);
        // An asker that started at 1 s may need 1..=3: no word on them, but
        // seq 4 is sent.
        let plan = r.plan_repair(
            Origin(1),
            0,
            Time::from_millis(1_000),
            4,
            1 << 20,
            Time::MAX,
        );
        assert_eq!(seqs(&plan), vec![4]);
        assert!(plan.info.is_none(), "{:?}", plan.info);
        // One that started after them may skip them: not lost.
        let plan = r.plan_repair(
            Origin(1),
            0,
            Time::from_millis(6_000),
            4,
            1 << 20,
            Time::MAX,
        );
        let info = plan.info.unwrap();
        assert_eq!((info.through, info.lost), (4, false));
    }
}

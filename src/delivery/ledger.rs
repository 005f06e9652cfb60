//! What this replica's app has settled, for confirmations (DESIGN §10a):
//! every event handed to the outlets is an entry until every outlet has
//! settled it, then it leaves as one [`Settled`] for the core.
//!
//! - The app answered 2xx to a batch holding the event, or a merge standing
//!   for it: acknowledged. A config write acknowledged also settles older
//!   writes of its key the queue dropped for it.
//! - The app acknowledged a flush covering it: flushed. A flush covers
//!   what this replica had received when the flush was sent (its cache
//!   was dropped after those events were published), whatever its place in
//!   the queue; a flush of one cache covers that cache's invalidations.
//!   Seqs this node gave up on (`lost`) are entries a flush of every cache
//!   settles.
//! - The app refused a batch holding it (a 4xx): rejected.
//!
//! With several outlets (webhook and streams) an entry settles when all
//! have, with the worst outcome. Sans-IO; the owner drives it. Bounded:
//! past `max` entries the oldest is dropped (its origin sees the replica
//! pending), counted.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use crate::delivery::queue::AppMessage;
use crate::gossip::confirm::Outcome;
use crate::gossip::message::SettledRange;
use crate::gossip::{Event, EventBody, EventId, Origin, Settled};

#[derive(Debug)]
enum What {
    Event(Arc<Event>),
    /// Seqs never received, covered by the flush that follows.
    Lost {
        origin: Origin,
        first: u64,
        last: u64,
    },
}

#[derive(Debug)]
struct Entry {
    what: What,
    /// One bit per outlet still to settle it.
    pending: u8,
    outcome: Outcome,
}

/// Where a batch was taken: entries numbered below it were received
/// before (what a flush in it covers).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark(u64);

#[derive(Debug)]
pub struct Ledger {
    all: u8,
    /// Entry `first + i` at index `i`; settled ones are `None` until they
    /// reach the front.
    entries: VecDeque<Option<Entry>>,
    first: u64,
    by_id: HashMap<EventId, u64>,
    max: usize,
    /// Entries dropped to stay under `max`.
    pub dropped: u64,
}

fn worse(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o| match o {
        Outcome::Acknowledged => 0,
        Outcome::Flushed => 1,
        Outcome::Rejected => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

impl Ledger {
    /// A ledger for `outlets` outlets (at most 8), holding at most `max`
    /// entries.
    pub fn new(outlets: usize, max: usize) -> Ledger {
        let outlets = outlets.clamp(1, 8);
        Ledger {
            all: u8::MAX >> (8 - outlets),
            entries: VecDeque::new(),
            first: 0,
            by_id: HashMap::default(),
            max: max.max(1),
            dropped: 0,
        }
    }

    fn next_no(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    fn push(&mut self, what: What) {
        if self.entries.len() >= self.max {
            self.dropped += 1;
            if let Some(Some(Entry {
                what: What::Event(e),
                ..
            })) = self.entries.front()
            {
                self.by_id.remove(&e.id);
            }
            self.entries.pop_front();
            self.first += 1;
            self.trim();
        }
        self.entries.push_back(Some(Entry {
            what,
            pending: self.all,
            outcome: Outcome::Acknowledged,
        }));
    }

    /// An event handed to every outlet.
    pub fn delivered(&mut self, event: &Arc<Event>) {
        let no = self.next_no();
        self.by_id.insert(event.id, no);
        self.push(What::Event(event.clone()));
    }

    /// Seqs given up on; the flush of every cache that covers them follows.
    pub fn lost(&mut self, origin: Origin, first: u64, last: u64) {
        self.push(What::Lost {
            origin,
            first,
            last,
        });
    }

    /// Where a batch is taken now.
    pub fn mark(&self) -> Mark {
        Mark(self.next_no())
    }

    /// Entries waiting for some outlet.
    pub fn len(&self) -> usize {
        self.by_id.len()
            + self
                .entries
                .iter()
                .flatten()
                .filter(|e| matches!(e.what, What::Lost { .. }))
                .count()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(Option::is_none)
    }

    /// Outlet `outlet`'s app acknowledged `batch`, taken at `mark`.
    pub fn acknowledged(
        &mut self,
        outlet: usize,
        batch: &[AppMessage],
        mark: Mark,
        out: &mut Vec<Settled>,
    ) {
        for m in batch {
            match m {
                AppMessage::Event(e) => {
                    // Older writes of its key first, while its own entry
                    // still says where it stands.
                    if let Some((key, _)) = e.body.config_version() {
                        self.settle_older_config(outlet, key, e.id, out);
                    }
                    self.settle_id(outlet, e.id, Outcome::Acknowledged, out);
                }
                AppMessage::Merged { ids, .. } => {
                    for id in ids {
                        self.settle_id(outlet, *id, Outcome::Acknowledged, out);
                    }
                }
                AppMessage::Flush { cache, .. } => {
                    self.settle_covered(outlet, cache.as_deref(), mark, Outcome::Flushed, out);
                }
                AppMessage::ConfigEvicted { .. } => {}
            }
        }
        self.trim();
    }

    /// Outlet `outlet`'s app refused `batch` permanently.
    pub fn rejected(
        &mut self,
        outlet: usize,
        batch: &[AppMessage],
        mark: Mark,
        out: &mut Vec<Settled>,
    ) {
        for m in batch {
            match m {
                AppMessage::Event(e) => self.settle_id(outlet, e.id, Outcome::Rejected, out),
                AppMessage::Merged { ids, .. } => {
                    for id in ids {
                        self.settle_id(outlet, *id, Outcome::Rejected, out);
                    }
                }
                AppMessage::Flush { cache, .. } => {
                    self.settle_covered(outlet, cache.as_deref(), mark, Outcome::Rejected, out);
                }
                AppMessage::ConfigEvicted { .. } => {}
            }
        }
        self.trim();
    }

    fn settle_id(&mut self, outlet: usize, id: EventId, outcome: Outcome, out: &mut Vec<Settled>) {
        if let Some(&no) = self.by_id.get(&id) {
            self.settle_no(outlet, no, outcome, out);
        }
    }

    fn settle_older_config(
        &mut self,
        outlet: usize,
        key: &str,
        id: EventId,
        out: &mut Vec<Settled>,
    ) {
        let Some(&upto) = self.by_id.get(&id) else {
            return;
        };
        let older: Vec<u64> = self
            .numbered()
            .filter(|(no, e)| {
                *no < upto
                    && matches!(&e.what, What::Event(ev)
                        if ev.body.config_version().is_some_and(|(k, _)| k == key))
            })
            .map(|(no, _)| no)
            .collect();
        for no in older {
            self.settle_no(outlet, no, Outcome::Acknowledged, out);
        }
    }

    fn settle_covered(
        &mut self,
        outlet: usize,
        cache: Option<&str>,
        mark: Mark,
        outcome: Outcome,
        out: &mut Vec<Settled>,
    ) {
        let bit = 1u8 << outlet;
        let covered: Vec<u64> = self
            .numbered()
            .filter(|(no, e)| *no < mark.0 && e.pending & bit != 0)
            .filter(|(_, e)| match (&e.what, cache) {
                (What::Lost { .. }, None) => true,
                (What::Lost { .. }, Some(_)) => false,
                (What::Event(ev), c) => match &ev.body {
                    EventBody::Invalidate(inv) => c.is_none_or(|c| c == inv.cache),
                    // A flush does not restore a config value.
                    _ => false,
                },
            })
            .map(|(no, _)| no)
            .collect();
        for no in covered {
            self.settle_no(outlet, no, outcome, out);
        }
    }

    fn numbered(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (self.first + i as u64, e)))
    }

    fn settle_no(&mut self, outlet: usize, no: u64, outcome: Outcome, out: &mut Vec<Settled>) {
        let Some(i) = no.checked_sub(self.first) else {
            return;
        };
        let Some(slot) = self.entries.get_mut(i as usize) else {
            return;
        };
        let Some(e) = slot else { return };
        let bit = 1u8 << outlet;
        if e.pending & bit == 0 {
            return;
        }
        e.pending &= !bit;
        e.outcome = worse(e.outcome, outcome);
        if e.pending != 0 {
            return;
        }
        let Some(e) = slot.take() else { return };
        let (origin, first, last) = match e.what {
            What::Event(ev) => {
                self.by_id.remove(&ev.id);
                (ev.id.origin, ev.id.seq, ev.id.seq)
            }
            What::Lost {
                origin,
                first,
                last,
            } => (origin, first, last),
        };
        out.push(Settled {
            origin,
            range: SettledRange {
                first,
                last,
                outcome: e.outcome,
            },
        });
    }

    /// Drops settled entries from the front.
    fn trim(&mut self) {
        while let Some(None) = self.entries.front() {
            self.entries.pop_front();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::{FlushReason, Invalidation, Time, Version};

    fn inv(seq: u64, cache: &str) -> Arc<Event> {
        Arc::new(Event {
            id: EventId {
                origin: Origin(5),
                seq,
            },
            published_at: Time::ZERO,
            body: EventBody::Invalidate(Invalidation {
                cache: cache.into(),
                keys: vec![format!("k{seq}")],
                ..Invalidation::default()
            }),
        })
    }

    fn config(seq: u64, key: &str) -> Arc<Event> {
        Arc::new(Event {
            id: EventId {
                origin: Origin(5),
                seq,
            },
            published_at: Time::ZERO,
            body: EventBody::Config {
                key: key.into(),
                value: "v".into(),
                version: Version {
                    hlc: seq,
                    origin: Origin(5),
                },
            },
        })
    }

    fn flush(cache: Option<&str>) -> AppMessage {
        AppMessage::Flush {
            cache: cache.map(str::to_owned),
            reason: FlushReason::QueueOverflow,
        }
    }

    fn seqs(out: &[Settled], outcome: Outcome) -> Vec<u64> {
        out.iter()
            .filter(|s| s.range.outcome == outcome)
            .flat_map(|s| s.range.first..=s.range.last)
            .collect()
    }

    #[test]
    fn an_event_settles_when_every_outlet_acknowledged_it() {
        let mut l = Ledger::new(2, 100);
        let e = inv(1, "a");
        l.delivered(&e);
        let mut out = Vec::new();
        let batch = [AppMessage::Event(e)];
        l.acknowledged(0, &batch, l.mark(), &mut out);
        assert!(out.is_empty(), "the streams have not yet");
        l.acknowledged(1, &batch, l.mark(), &mut out);
        assert_eq!(seqs(&out, Outcome::Acknowledged), [1]);
        assert!(l.is_empty());
    }

    #[test]
    fn a_flush_covers_what_was_received_before_it_was_sent_of_its_cache() {
        let mut l = Ledger::new(1, 100);
        for (seq, cache) in [(1, "a"), (2, "b"), (3, "a")] {
            l.delivered(&inv(seq, cache));
        }
        l.delivered(&config(4, "color"));
        l.lost(Origin(5), 10, 12);
        let mark = l.mark();
        l.delivered(&inv(5, "a"));
        let mut out = Vec::new();
        l.acknowledged(0, &[flush(Some("a"))], mark, &mut out);
        assert_eq!(seqs(&out, Outcome::Flushed), [1, 3]);
        out.clear();
        l.acknowledged(0, &[flush(None)], mark, &mut out);
        assert_eq!(
            seqs(&out, Outcome::Flushed),
            [2, 10, 11, 12],
            "config is never flushed; seq 5 came after"
        );
        out.clear();
        let newer = config(6, "color");
        l.delivered(&newer);
        l.acknowledged(0, &[AppMessage::Event(newer)], l.mark(), &mut out);
        assert_eq!(
            seqs(&out, Outcome::Acknowledged),
            [4, 6],
            "4 was superseded by 6"
        );
    }

    #[test]
    fn a_rejection_is_the_worst_outcome_and_merges_settle_each_id() {
        let mut l = Ledger::new(2, 100);
        l.delivered(&inv(1, "a"));
        l.delivered(&inv(2, "a"));
        let merged = AppMessage::Merged {
            cache: "a".into(),
            keys: Default::default(),
            prefixes: Default::default(),
            tags: Default::default(),
            all: false,
            ids: vec![inv(1, "a").id, inv(2, "a").id],
        };
        let mut out = Vec::new();
        l.rejected(0, std::slice::from_ref(&merged), l.mark(), &mut out);
        l.acknowledged(1, &[merged], l.mark(), &mut out);
        assert_eq!(seqs(&out, Outcome::Rejected), [1, 2]);
    }

    #[test]
    fn the_ledger_is_bounded() {
        let mut l = Ledger::new(1, 2);
        for seq in 1..=3 {
            l.delivered(&inv(seq, "a"));
        }
        assert_eq!(l.dropped, 1);
        let mut out = Vec::new();
        l.acknowledged(0, &[AppMessage::Event(inv(1, "a"))], l.mark(), &mut out);
        assert!(out.is_empty(), "seq 1 was dropped");
        assert_eq!(l.len(), 2);
    }
}

//! One subscriber's pending entries, bounded. Past the bound they are
//! coalesced as the app queue does it (invalidations of one cache merged,
//! keeping every id; then a flush of everything, reason `slow_subscriber`):
//! a slow subscriber gets fewer, bigger records, never a silent gap.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::entry::Entry;
use super::log::ResumeLog;
use crate::delivery::cloudevents::Encoder;
use crate::delivery::queue::{AppMessage, AppQueue, AppQueueConfig};
use crate::gossip::{EventId, FlushReason, Time};

/// What a buffer did under pressure, for the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Relief {
    /// Events merged into another of the same cache.
    pub coalesced: u64,
    /// Flushes made, by reason.
    pub flushes: Vec<FlushReason>,
}

#[derive(Debug)]
pub struct SubBuffer {
    items: VecDeque<Arc<Entry>>,
    max: usize,
    max_merged_keys: usize,
}

/// What coalescing needs besides the buffer: ids for new records, and the
/// log to name their positions.
pub struct Ctx<'a> {
    pub encoder: &'a mut Encoder,
    pub log: &'a mut ResumeLog,
    pub now: Time,
}

impl SubBuffer {
    pub fn new(max: usize, max_merged_keys: usize) -> SubBuffer {
        SubBuffer {
            items: VecDeque::new(),
            max: max.max(1),
            max_merged_keys,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn pop(&mut self) -> Option<Arc<Entry>> {
        self.items.pop_front()
    }

    /// Adds an entry; past the bound, coalesces what is pending.
    pub fn push(&mut self, e: Arc<Entry>, cx: &mut Ctx<'_>) -> Relief {
        self.items.push_back(e);
        if self.items.len() <= self.max {
            return Relief::default();
        }
        self.coalesce(cx)
    }

    /// Adds a record made for this stream alone (its opening flush), at
    /// the log's current position.
    pub fn push_own(&mut self, msg: AppMessage, cx: &mut Ctx<'_>) -> Relief {
        let e = own_entry(msg, cx.log.head(), cx);
        self.push(e, cx)
    }

    fn coalesce(&mut self, cx: &mut Ctx<'_>) -> Relief {
        let mut q = AppQueue::new(
            AppQueueConfig {
                max_pending: self.max,
                max_batch: usize::MAX,
                requests: None,
                max_merged_keys: self.max_merged_keys,
                overflow_reason: FlushReason::SlowSubscriber,
            },
            cx.now,
        );
        // What each entry was, to keep the ones that come out unchanged
        // and to place the merges.
        let mut kept: HashMap<Key, Arc<Entry>> = HashMap::new();
        let mut seq_of: HashMap<EventId, u64> = HashMap::new();
        for e in self.items.drain(..) {
            match &e.msg {
                AppMessage::Event(ev) => {
                    seq_of.insert(ev.id, e.seq);
                }
                AppMessage::Merged { ids, .. } => {
                    for id in ids {
                        seq_of.insert(*id, e.seq);
                    }
                }
                _ => {}
            }
            q.push_message(e.msg.clone());
            kept.insert(key(&e.msg), e);
        }
        let mut relief = Relief {
            coalesced: q.stats().coalesced,
            flushes: Vec::new(),
        };
        for m in q.drain_all() {
            if let Some(e) = kept.remove(&key(&m)) {
                self.items.push_back(e);
                continue;
            }
            let seq = match &m {
                // Resuming after a merge replays what came after its first
                // event: some of it again, none of it lost.
                AppMessage::Merged { ids, .. } => ids
                    .iter()
                    .filter_map(|i| seq_of.get(i))
                    .min()
                    .copied()
                    .unwrap_or_else(|| cx.log.head()),
                AppMessage::Flush { reason, .. } => {
                    relief.flushes.push(*reason);
                    cx.log.head()
                }
                _ => cx.log.head(),
            };
            self.items.push_back(own_entry(m, seq, cx));
        }
        relief
    }
}

fn own_entry(msg: AppMessage, seq: u64, cx: &mut Ctx<'_>) -> Arc<Entry> {
    let record = cx.encoder.record(&msg, cx.now);
    cx.log.alias(&record.id, seq);
    Arc::new(Entry::new(seq, cx.now, msg, record))
}

/// What identifies an entry across coalescing.
#[derive(Hash, PartialEq, Eq)]
enum Key {
    Event(EventId),
    Merged(Vec<EventId>),
    Flush(Option<String>, &'static str),
    Evicted(String),
}

fn key(m: &AppMessage) -> Key {
    match m {
        AppMessage::Event(e) => Key::Event(e.id),
        AppMessage::Merged { ids, .. } => Key::Merged(ids.clone()),
        AppMessage::Flush { cache, reason } => Key::Flush(cache.clone(), reason.as_str()),
        AppMessage::ConfigEvicted { key, .. } => Key::Evicted(key.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::gossip::{Event, EventBody, Invalidation, Origin};

    fn inv(seq: u64, cache: &str) -> AppMessage {
        AppMessage::Event(Arc::new(Event {
            id: EventId {
                origin: Origin(7),
                seq,
            },
            published_at: Time::ZERO,
            body: EventBody::Invalidate(Invalidation {
                cache: cache.into(),
                keys: vec![format!("k{seq}")],
                ..Invalidation::default()
            }),
        }))
    }

    fn logged(log: &mut ResumeLog, enc: &mut Encoder, m: AppMessage) -> Arc<Entry> {
        let r = enc.record(&m, Time::ZERO);
        log.append(m, r, Time::ZERO)
    }

    #[test]
    fn a_full_buffer_merges_by_cache_then_flushes_everything() {
        let mut log = ResumeLog::new(Duration::from_secs(30), 1000);
        let mut enc = Encoder::new(Origin(1));
        let mut b = SubBuffer::new(3, 100);
        let mut relief = Relief::default();
        for s in 1..=4 {
            let e = logged(&mut log, &mut enc, inv(s, "a"));
            let mut cx = Ctx {
                encoder: &mut enc,
                log: &mut log,
                now: Time::ZERO,
            };
            let r = b.push(e, &mut cx);
            relief.coalesced += r.coalesced;
            relief.flushes.extend(r.flushes);
        }
        assert_eq!(b.len(), 1);
        let merged = b.pop().unwrap();
        let AppMessage::Merged { ids, .. } = &merged.msg else {
            panic!("expected a merge, got {:?}", merged.msg)
        };
        assert_eq!(ids.len(), 4);
        assert_eq!(merged.seq, 1, "a resume after it replays from the first");
        assert_eq!(log.position(&merged.record.id), Some(1));
        assert_eq!(relief.coalesced, 3);
        assert!(relief.flushes.is_empty());

        for (s, cache) in (10..).zip(["w", "x", "y", "z"]) {
            let e = logged(&mut log, &mut enc, inv(s, cache));
            let mut cx = Ctx {
                encoder: &mut enc,
                log: &mut log,
                now: Time::ZERO,
            };
            relief.flushes.extend(b.push(e, &mut cx).flushes);
        }
        assert_eq!(relief.flushes, [FlushReason::SlowSubscriber]);
        let flush = b.pop().unwrap();
        assert_eq!(
            flush.msg,
            AppMessage::Flush {
                cache: None,
                reason: FlushReason::SlowSubscriber
            }
        );
        assert_eq!(flush.seq, log.head(), "it covers everything logged");
        assert!(b.is_empty());
    }

    #[test]
    fn entries_that_fit_are_kept_as_they_are() {
        let mut log = ResumeLog::new(Duration::from_secs(30), 1000);
        let mut enc = Encoder::new(Origin(1));
        let mut b = SubBuffer::new(2, 100);
        let first = logged(&mut log, &mut enc, inv(1, "a"));
        let mut cx = Ctx {
            encoder: &mut enc,
            log: &mut log,
            now: Time::ZERO,
        };
        b.push(first.clone(), &mut cx);
        assert!(Arc::ptr_eq(&b.pop().unwrap(), &first));
    }
}

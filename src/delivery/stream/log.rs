//! The bounded log of what was written to the streams, for a subscriber
//! that resumes with `Last-Event-ID`: entries younger than the log's age
//! and at most so many, and the ids that name a position in it (an event's
//! id, or a flush or merge a single stream was given).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::entry::Entry;
use crate::delivery::cloudevents::Record;
use crate::delivery::queue::AppMessage;
use crate::gossip::Time;

#[derive(Debug)]
pub struct ResumeLog {
    entries: VecDeque<Arc<Entry>>,
    /// Id → position, for logged entries and for aliases.
    ids: HashMap<String, u64>,
    /// Aliases in the order they were made, to forget them with the log.
    aliases: VecDeque<(u64, String)>,
    /// The number the next entry gets; the first is 1.
    next_seq: u64,
    max_age: Duration,
    max_entries: usize,
}

impl ResumeLog {
    pub fn new(max_age: Duration, max_entries: usize) -> ResumeLog {
        ResumeLog {
            entries: VecDeque::new(),
            ids: HashMap::new(),
            aliases: VecDeque::new(),
            next_seq: 1,
            max_age,
            max_entries: max_entries.max(1),
        }
    }

    /// The position of the latest entry (0 before the first).
    pub fn head(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn append(&mut self, msg: AppMessage, record: Record, now: Time) -> Arc<Entry> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ids.insert(record.id.clone(), seq);
        let e = Arc::new(Entry::new(seq, now, msg, record));
        self.entries.push_back(e.clone());
        self.prune(now);
        e
    }

    /// Names position `seq` by an id that is not a logged entry's (a
    /// stream's own flush or merge).
    pub fn alias(&mut self, id: &str, seq: u64) {
        self.ids.insert(id.to_owned(), seq);
        self.aliases.push_back((seq, id.to_owned()));
    }

    /// The position `id` names, if every entry after it is still held.
    pub fn position(&self, id: &str) -> Option<u64> {
        let seq = *self.ids.get(id)?;
        let first = self.entries.front().map_or(self.next_seq, |e| e.seq);
        (seq + 1 >= first).then_some(seq)
    }

    /// The entries after position `seq`.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Arc<Entry>> {
        let first = self.entries.front().map_or(self.next_seq, |e| e.seq);
        let skip = usize::try_from((seq + 1).saturating_sub(first)).unwrap_or(usize::MAX);
        self.entries.iter().skip(skip)
    }

    /// Forgets entries older than the age or beyond the count, and the
    /// ids of positions no longer resumable.
    pub fn prune(&mut self, now: Time) {
        while let Some(e) = self.entries.front() {
            if self.entries.len() <= self.max_entries && now.since(e.at) <= self.max_age {
                break;
            }
            if self.ids.get(&e.record.id) == Some(&e.seq) {
                self.ids.remove(&e.record.id);
            }
            self.entries.pop_front();
        }
        let first = self.entries.front().map_or(self.next_seq, |e| e.seq);
        while let Some((seq, _)) = self.aliases.front() {
            if seq + 1 >= first {
                break;
            }
            if let Some((seq, id)) = self.aliases.pop_front()
                && self.ids.get(&id) == Some(&seq)
            {
                self.ids.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::cloudevents::TYPE_FLUSH;
    use crate::gossip::FlushReason;

    fn flush(id: &str) -> (AppMessage, Record) {
        (
            AppMessage::Flush {
                cache: None,
                reason: FlushReason::GapTimeout,
            },
            Record {
                id: id.into(),
                kind: TYPE_FLUSH,
                json: "{}".into(),
            },
        )
    }

    fn ids(log: &ResumeLog, after: u64) -> Vec<String> {
        log.after(after).map(|e| e.record.id.clone()).collect()
    }

    #[test]
    fn a_known_id_resumes_right_after_it() {
        let mut log = ResumeLog::new(Duration::from_secs(30), 100);
        for id in ["a", "b", "c"] {
            let (m, r) = flush(id);
            log.append(m, r, Time::ZERO);
        }
        let at = log.position("a").unwrap();
        assert_eq!(ids(&log, at), ["b", "c"]);
        assert_eq!(ids(&log, log.position("c").unwrap()), Vec::<String>::new());
        assert_eq!(log.position("zzz"), None);
    }

    #[test]
    fn ids_leave_with_their_entries_by_count_and_by_age() {
        let mut log = ResumeLog::new(Duration::from_secs(2), 2);
        for id in ["a", "b", "c"] {
            let (m, r) = flush(id);
            log.append(m, r, Time::ZERO);
        }
        assert_eq!(log.len(), 2);
        assert_eq!(log.position("a"), None, "a left with the count");
        // b is held, so resuming after a would need a: still refused; after
        // b works.
        assert_eq!(ids(&log, log.position("b").unwrap()), ["c"]);
        log.alias("own-flush", log.head());
        assert_eq!(log.position("own-flush"), Some(3));
        log.prune(Time::from_millis(2_001));
        assert_eq!(log.len(), 0);
        assert_eq!(log.position("b"), None, "b left with the age");
        assert_eq!(log.position("c"), None);
        assert_eq!(
            log.position("own-flush"),
            Some(3),
            "nothing after it was lost"
        );
        let (m, r) = flush("d");
        log.append(m, r, Time::from_millis(2_002));
        assert_eq!(ids(&log, log.position("own-flush").unwrap()), ["d"]);
    }
}

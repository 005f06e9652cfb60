//! What waits to be delivered to the local app (DESIGN §7, §10): batches in
//! arrival order, limited to so many requests per second and so many events
//! per request. The queue is bounded; under pressure it coalesces instead of
//! dropping, and loses nothing silently:
//!
//! 1. invalidations of the same cache merge into one (keys, prefixes and
//!    tags united; the ids of everything merged are kept);
//! 2. a merged invalidation with too many keys becomes a flush of its cache;
//! 3. if distinct caches alone still overflow, every pending invalidation
//!    becomes one flush of all caches.
//!
//! Config writes are never turned into flushes (a flush does not restore a
//! config value); a newer write to a key replaces an older pending one.
//! The webhook shell drives this queue; the queue has no I/O.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::gossip::event::{Event, EventBody, EventId, Version};
use crate::gossip::ratelimit::{RateSpec, TokenBucket};
pub use crate::gossip::runtime::FlushReason;
use crate::gossip::time::Time;

/// One entry for the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppMessage {
    Event(Arc<Event>),
    /// Several invalidations of one cache, merged under pressure.
    Merged {
        cache: String,
        keys: BTreeSet<String>,
        prefixes: BTreeSet<String>,
        tags: BTreeSet<String>,
        all: bool,
        ids: Vec<EventId>,
    },
    Flush {
        /// `None`: every cache.
        cache: Option<String>,
        reason: FlushReason,
    },
    /// A live config key this node evicted to stay under the register cap
    /// (see `registers`): for this replica the key is gone.
    ConfigEvicted {
        key: String,
        version: Version,
    },
}

impl AppMessage {
    /// How many events it stands for (a flush stands for none).
    pub fn event_count(&self) -> usize {
        match self {
            AppMessage::Event(_) => 1,
            AppMessage::Merged { ids, .. } => ids.len(),
            AppMessage::Flush { .. } | AppMessage::ConfigEvicted { .. } => 0,
        }
    }

    fn cache(&self) -> Option<&str> {
        match self {
            AppMessage::Event(e) => match &e.body {
                EventBody::Invalidate(inv) => Some(&inv.cache),
                _ => None,
            },
            AppMessage::Merged { cache, .. } => Some(cache),
            AppMessage::Flush { .. } | AppMessage::ConfigEvicted { .. } => None,
        }
    }

    fn config_key(&self) -> Option<&str> {
        match self {
            AppMessage::Event(e) => e.body.config_version().map(|(k, _)| k),
            AppMessage::ConfigEvicted { key, .. } => Some(key),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppQueueConfig {
    /// Entries pending before coalescing starts.
    pub max_pending: usize,
    /// Entries per request to the app.
    pub max_batch: usize,
    /// Requests per second to the app.
    pub requests: Option<RateSpec>,
    /// Keys, prefixes and tags one merged invalidation may hold before it
    /// becomes a flush of its cache.
    pub max_merged_keys: usize,
    /// Why the app is told to flush when distinct caches alone overflow
    /// (a subscriber's buffer says `slow_subscriber`).
    pub overflow_reason: FlushReason,
}

impl Default for AppQueueConfig {
    fn default() -> Self {
        AppQueueConfig {
            max_pending: 10_000,
            max_batch: 500,
            requests: RateSpec::new(1000, 250),
            max_merged_keys: 1000,
            overflow_reason: FlushReason::QueueOverflow,
        }
    }
}

/// Counts of what happened under pressure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppQueueStats {
    pub enqueued: u64,
    pub coalesced: u64,
    pub config_superseded: u64,
    pub flushes_queued: u64,
    /// Flushes queued by reason, indexed like [`FlushReason::ALL`].
    pub flushes: [u64; FlushReason::ALL.len()],
    /// Events that became part of a flush instead of being delivered.
    pub events_flushed: u64,
    pub rate_limited: u64,
}

#[derive(Debug)]
pub struct AppQueue {
    cfg: AppQueueConfig,
    items: VecDeque<AppMessage>,
    bucket: Option<TokenBucket>,
    stats: AppQueueStats,
}

impl AppQueue {
    pub fn new(cfg: AppQueueConfig, now: Time) -> AppQueue {
        AppQueue {
            bucket: cfg.requests.map(|s| TokenBucket::new(s, now)),
            cfg,
            items: VecDeque::new(),
            stats: AppQueueStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn stats(&self) -> &AppQueueStats {
        &self.stats
    }

    /// Events pending (merged ones counted by what they stand for).
    pub fn pending_events(&self) -> usize {
        self.items.iter().map(AppMessage::event_count).sum()
    }

    pub fn push_event(&mut self, event: Arc<Event>) {
        self.stats.enqueued += 1;
        if let Some(key) = event.body.config_version().map(|(k, _)| k.to_owned()) {
            self.supersede_config(&key);
        }
        self.items.push_back(AppMessage::Event(event));
        self.relieve_pressure();
    }

    /// Tells the app that a config key it may hold is gone from this
    /// replica (evicted at the register cap).
    pub fn push_config_evicted(&mut self, key: &str, version: Version) {
        self.stats.enqueued += 1;
        self.supersede_config(key);
        self.items.push_back(AppMessage::ConfigEvicted {
            key: key.to_owned(),
            version,
        });
        self.relieve_pressure();
    }

    fn supersede_config(&mut self, key: &str) {
        let before = self.items.len();
        self.items.retain(|m| m.config_key() != Some(key));
        self.stats.config_superseded += (before - self.items.len()) as u64;
    }

    /// Flushes queued with this reason so far.
    pub fn flushes(&self, reason: FlushReason) -> u64 {
        self.stats.flushes[reason_index(reason)]
    }

    /// Queues a flush. A flush of one cache covers that cache's pending
    /// invalidations; a flush of everything covers all of them.
    pub fn push_flush(&mut self, cache: Option<&str>, reason: FlushReason) {
        self.stats.flushes_queued += 1;
        self.stats.flushes[reason_index(reason)] += 1;
        let covered: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, m)| match (cache, m) {
                (_, AppMessage::Flush { cache: None, .. }) => cache.is_none(),
                (Some(c), AppMessage::Flush { cache: Some(d), .. }) => c == d,
                (None, AppMessage::Flush { .. }) => true,
                (None, m) => m.cache().is_some(),
                (Some(c), m) => m.cache() == Some(c),
            })
            .map(|(i, _)| i)
            .collect();
        for i in covered.into_iter().rev() {
            if let Some(m) = self.items.remove(i) {
                self.stats.events_flushed += m.event_count() as u64;
            }
        }
        self.items.push_back(AppMessage::Flush {
            cache: cache.map(str::to_owned),
            reason,
        });
    }

    /// The app kept failing (or, for streams, no subscriber came back):
    /// everything pending but config becomes one flush of all caches,
    /// delivered when the app is back.
    pub fn give_up(&mut self, reason: FlushReason) {
        self.push_flush(None, reason);
    }

    /// Queues an entry as it is (a subscriber's buffer re-queues what it
    /// holds to coalesce it).
    pub fn push_message(&mut self, m: AppMessage) {
        match m {
            AppMessage::Event(e) => self.push_event(e),
            AppMessage::Flush { cache, reason } => self.push_flush(cache.as_deref(), reason),
            AppMessage::ConfigEvicted { key, version } => self.push_config_evicted(&key, version),
            merged @ AppMessage::Merged { .. } => {
                self.stats.enqueued += 1;
                self.items.push_back(merged);
                self.relieve_pressure();
            }
        }
    }

    /// Everything pending, in order, leaving the queue empty.
    pub fn drain_all(&mut self) -> Vec<AppMessage> {
        self.items.drain(..).collect()
    }

    /// The next batch to send, or how long to wait for the request limit.
    pub fn next_batch(&mut self, now: Time) -> Result<Vec<AppMessage>, Duration> {
        if self.items.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(b) = &self.bucket
            && let Err(limited) = b.try_take(now, 1)
        {
            self.stats.rate_limited += 1;
            return Err(limited.retry_after);
        }
        let n = self.items.len().min(self.cfg.max_batch);
        Ok(self.items.drain(..n).collect())
    }

    /// A batch that failed with a retryable error goes back to the front,
    /// in its order.
    pub fn requeue(&mut self, batch: Vec<AppMessage>) {
        for m in batch.into_iter().rev() {
            self.items.push_front(m);
        }
        self.relieve_pressure();
    }

    fn relieve_pressure(&mut self) {
        if self.items.len() <= self.cfg.max_pending {
            return;
        }
        self.coalesce_by_cache();
        if self.items.len() > self.cfg.max_pending {
            self.push_flush(None, self.cfg.overflow_reason);
        }
    }

    /// Merges every pending invalidation of a cache into one entry at the
    /// position of the first; one that grows too big becomes a flush.
    fn coalesce_by_cache(&mut self) {
        let mut out: VecDeque<AppMessage> = VecDeque::with_capacity(self.items.len());
        let mut slot_of: std::collections::HashMap<String, usize> = Default::default();
        for m in self.items.drain(..) {
            let Some(cache) = m.cache().map(str::to_owned) else {
                out.push_back(m);
                continue;
            };
            match slot_of.get(&cache) {
                None => {
                    slot_of.insert(cache, out.len());
                    out.push_back(m);
                }
                Some(&i) => {
                    self.stats.coalesced += m.event_count() as u64;
                    let merged = merge(out[i].clone(), m);
                    out[i] = merged;
                }
            }
        }
        for m in out.iter_mut() {
            if let AppMessage::Merged {
                cache,
                keys,
                prefixes,
                tags,
                ids,
                ..
            } = m
                && keys.len() + prefixes.len() + tags.len() > self.cfg.max_merged_keys
            {
                self.stats.events_flushed += ids.len() as u64;
                self.stats.flushes_queued += 1;
                self.stats.flushes[reason_index(FlushReason::CacheOverflow)] += 1;
                *m = AppMessage::Flush {
                    cache: Some(cache.clone()),
                    reason: FlushReason::CacheOverflow,
                };
            }
        }
        self.items = out;
    }
}

fn reason_index(reason: FlushReason) -> usize {
    FlushReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

/// Two entries for the same cache as one.
fn merge(a: AppMessage, b: AppMessage) -> AppMessage {
    let (mut acc, rest) = match (into_merged(a), b) {
        (Some(acc), rest) => (acc, rest),
        (None, rest) => return rest,
    };
    if let (
        AppMessage::Merged {
            keys,
            prefixes,
            tags,
            all,
            ids,
            ..
        },
        Some(AppMessage::Merged {
            keys: k2,
            prefixes: p2,
            tags: t2,
            all: a2,
            ids: i2,
            ..
        }),
    ) = (&mut acc, into_merged(rest))
    {
        keys.extend(k2);
        prefixes.extend(p2);
        tags.extend(t2);
        *all |= a2;
        ids.extend(i2);
    }
    acc
}

fn into_merged(m: AppMessage) -> Option<AppMessage> {
    match m {
        AppMessage::Merged { .. } => Some(m),
        AppMessage::Event(e) => match &e.body {
            EventBody::Invalidate(inv) => Some(AppMessage::Merged {
                cache: inv.cache.clone(),
                keys: inv.keys.iter().cloned().collect(),
                prefixes: inv.prefixes.iter().cloned().collect(),
                tags: inv.tags.iter().cloned().collect(),
                all: inv.all,
                ids: vec![e.id],
            }),
            _ => None,
        },
        AppMessage::Flush { .. } | AppMessage::ConfigEvicted { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::event::{Invalidation, Origin, Version};

    fn inv(seq: u64, cache: &str, key: &str) -> Arc<Event> {
        Arc::new(Event {
            id: EventId {
                origin: Origin(1),
                seq,
            },
            published_at: Time::ZERO,
            body: EventBody::Invalidate(Invalidation {
                cache: cache.into(),
                keys: vec![key.into()],
                ..Invalidation::default()
            }),
        })
    }

    fn config(seq: u64, key: &str, value: &str) -> Arc<Event> {
        Arc::new(Event {
            id: EventId {
                origin: Origin(1),
                seq,
            },
            published_at: Time::ZERO,
            body: EventBody::Config {
                key: key.into(),
                value: value.into(),
                version: Version {
                    hlc: seq,
                    origin: Origin(1),
                },
            },
        })
    }

    fn queue(max_pending: usize, max_batch: usize) -> AppQueue {
        AppQueue::new(
            AppQueueConfig {
                max_pending,
                max_batch,
                requests: None,
                max_merged_keys: 4,
                overflow_reason: FlushReason::QueueOverflow,
            },
            Time::ZERO,
        )
    }

    #[test]
    fn batches_come_out_in_arrival_order_and_bounded_in_size() {
        let mut q = queue(100, 2);
        for s in 1..=3 {
            q.push_event(inv(s, "c", &s.to_string()));
        }
        let first = q.next_batch(Time::ZERO).unwrap();
        assert_eq!(
            first,
            vec![
                AppMessage::Event(inv(1, "c", "1")),
                AppMessage::Event(inv(2, "c", "2"))
            ]
        );
        assert_eq!(q.next_batch(Time::ZERO).unwrap().len(), 1);
        assert!(q.next_batch(Time::ZERO).unwrap().is_empty());
    }

    #[test]
    fn a_failed_batch_goes_back_to_the_front_in_order() {
        let mut q = queue(100, 2);
        for s in 1..=3 {
            q.push_event(inv(s, "c", &s.to_string()));
        }
        let b = q.next_batch(Time::ZERO).unwrap();
        q.requeue(b.clone());
        assert_eq!(q.next_batch(Time::ZERO).unwrap(), b);
    }

    #[test]
    fn the_request_rate_is_limited_with_a_wait_time() {
        let mut q = AppQueue::new(
            AppQueueConfig {
                requests: RateSpec::new(10, 1),
                ..AppQueueConfig::default()
            },
            Time::ZERO,
        );
        q.push_event(inv(1, "c", "1"));
        q.push_event(inv(2, "c", "2"));
        assert_eq!(q.next_batch(Time::ZERO).unwrap().len(), 2);
        q.push_event(inv(3, "c", "3"));
        assert_eq!(q.next_batch(Time::ZERO), Err(Duration::from_millis(100)));
        assert_eq!(q.stats().rate_limited, 1);
        assert_eq!(q.next_batch(Time::from_millis(100)).unwrap().len(), 1);
    }

    #[test]
    fn under_pressure_invalidations_of_one_cache_merge_keeping_every_id() {
        let mut q = queue(3, 100);
        q.push_event(inv(1, "a", "1"));
        q.push_event(inv(2, "b", "1"));
        q.push_event(inv(3, "a", "2"));
        q.push_event(inv(4, "a", "3"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pending_events(), 4, "nothing lost");
        let batch = q.next_batch(Time::ZERO).unwrap();
        let AppMessage::Merged {
            cache, keys, ids, ..
        } = &batch[0]
        else {
            panic!("expected a merge, got {batch:?}")
        };
        assert_eq!(cache, "a");
        assert_eq!(
            keys.iter().map(String::as_str).collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
        assert_eq!(ids.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(q.stats().coalesced, 2);
    }

    #[test]
    fn a_merge_with_too_many_keys_becomes_a_flush_of_its_cache() {
        let mut q = queue(3, 100);
        for s in 1..=6 {
            q.push_event(inv(s, "a", &s.to_string()));
        }
        q.push_event(inv(7, "b", "x"));
        let batch = q.next_batch(Time::ZERO).unwrap();
        assert_eq!(
            batch[0],
            AppMessage::Flush {
                cache: Some("a".into()),
                reason: FlushReason::CacheOverflow
            }
        );
        assert!(q.stats().events_flushed >= 5);
    }

    #[test]
    fn too_many_distinct_caches_become_one_flush_of_everything_but_config() {
        let mut q = queue(3, 100);
        q.push_event(config(1, "color", "blue"));
        for s in 2..=6 {
            q.push_event(inv(s, &format!("cache-{s}"), "k"));
        }
        let batch = q.next_batch(Time::ZERO).unwrap();
        assert!(batch.contains(&AppMessage::Event(config(1, "color", "blue"))));
        assert!(batch.contains(&AppMessage::Flush {
            cache: None,
            reason: FlushReason::QueueOverflow
        }));
        assert!(
            batch
                .iter()
                .all(|m| !matches!(m, AppMessage::Merged { .. }))
        );
    }

    #[test]
    fn a_newer_config_write_replaces_a_pending_older_one() {
        let mut q = queue(100, 100);
        q.push_event(config(1, "color", "blue"));
        q.push_event(config(2, "color", "green"));
        let batch = q.next_batch(Time::ZERO).unwrap();
        assert_eq!(batch, vec![AppMessage::Event(config(2, "color", "green"))]);
        assert_eq!(q.stats().config_superseded, 1);
    }

    #[test]
    fn giving_up_leaves_one_flush_of_everything_and_the_config() {
        let mut q = queue(100, 100);
        q.push_event(inv(1, "a", "1"));
        q.push_flush(Some("b"), FlushReason::GapTimeout);
        q.push_event(config(2, "color", "blue"));
        q.give_up(FlushReason::WebhookBudget);
        let batch = q.next_batch(Time::ZERO).unwrap();
        assert_eq!(
            batch,
            vec![
                AppMessage::Event(config(2, "color", "blue")),
                AppMessage::Flush {
                    cache: None,
                    reason: FlushReason::WebhookBudget
                }
            ]
        );
        assert_eq!(q.stats().events_flushed, 1);
    }

    #[test]
    fn an_overflow_flush_carries_the_configured_reason() {
        let mut q = AppQueue::new(
            AppQueueConfig {
                max_pending: 2,
                requests: None,
                overflow_reason: FlushReason::SlowSubscriber,
                ..AppQueueConfig::default()
            },
            Time::ZERO,
        );
        for (n, cache) in ["a", "b", "c"].into_iter().enumerate() {
            q.push_event(Arc::new(Event {
                id: EventId {
                    origin: Origin(9),
                    seq: n as u64 + 1,
                },
                published_at: Time::ZERO,
                body: EventBody::Invalidate(Invalidation {
                    cache: cache.into(),
                    keys: vec!["k".into()],
                    ..Invalidation::default()
                }),
            }));
        }
        assert_eq!(q.flushes(FlushReason::SlowSubscriber), 1);
        assert_eq!(q.flushes(FlushReason::QueueOverflow), 0);
        let batch = q.next_batch(Time::ZERO).unwrap();
        assert_eq!(
            batch,
            vec![AppMessage::Flush {
                cache: None,
                reason: FlushReason::SlowSubscriber
            }]
        );
    }
}

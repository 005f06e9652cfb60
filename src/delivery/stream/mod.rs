//! Subscription streams (DESIGN §10a): every process of a pod holds its own
//! stream of the events delivered to this replica (`GET /v1/subscribe`),
//! and the promise holds per stream.
//!
//! - A new stream opens with a flush of every cache (reason `subscribe`):
//!   its subscriber cannot know what it missed.
//! - A stream that names the last event it saw (`Last-Event-ID`) resumes
//!   right after it from the [`log`], with no flush; an id the log no longer
//!   holds gets a flush first (`resume_gap`).
//! - Each stream's pending entries are bounded ([`buffer`]); a slow
//!   subscriber's are coalesced, then become a flush (`slow_subscriber`).
//!
//! The hub is shared by the stream outlet's worker (which delivers batches
//! from the owner's queue into it) and the API's streams (which take what
//! is pending); every step holds its lock briefly and never waits.

pub mod buffer;
pub mod entry;
pub mod log;
pub mod worker;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::delivery::cloudevents::Encoder;
use crate::delivery::queue::AppMessage;
use crate::gossip::{FlushReason, Time};
use crate::metrics::Metrics;
use buffer::{Ctx, Relief, SubBuffer};
pub use entry::Format;
use entry::Scope;
use log::ResumeLog;

#[derive(Clone, Debug, PartialEq)]
pub struct StreamConfig {
    /// Entries pending for one stream before they are coalesced.
    pub buffer: usize,
    /// How long written entries stay resumable.
    pub log_age: Duration,
    /// The most entries the resume log holds.
    pub log_entries: usize,
    /// An idle stream sends a keepalive this often.
    pub keepalive: Duration,
    /// Streams open at once.
    pub max_subscribers: usize,
    /// Keys a merged invalidation may hold before it becomes a flush.
    pub max_merged_keys: usize,
    /// Stream-only delivery: with no subscriber, batches wait in the
    /// owner's queue instead of being written only to the log.
    pub need_subscriber: bool,
}

/// A batch found no stream to take it.
#[derive(Debug, PartialEq, Eq)]
pub struct NoSubscriber;

/// Why a stream was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    TooMany(usize),
    Closed,
}

/// Where a new stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// No `Last-Event-ID`.
    New,
    After(String),
}

/// How a stream started, for the metrics and the response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    New,
    Resumed,
    Gap,
}

impl Opened {
    pub fn as_str(self) -> &'static str {
        match self {
            Opened::New => "new",
            Opened::Resumed => "resumed",
            Opened::Gap => "gap",
        }
    }
}

struct Sub {
    buf: SubBuffer,
    /// `None`: every cache.
    caches: Option<BTreeSet<String>>,
    notify: Arc<Notify>,
}

impl Sub {
    fn wants(&self, scope: &Scope) -> bool {
        match (scope, &self.caches) {
            (Scope::Everyone, _) | (_, None) => true,
            (Scope::Cache(c), Some(set)) => set.contains(c),
        }
    }
}

struct Inner {
    log: ResumeLog,
    subs: HashMap<u64, Sub>,
    next_sub: u64,
    encoder: Encoder,
    closed: bool,
}

pub struct Hub {
    inner: Mutex<Inner>,
    cfg: StreamConfig,
    metrics: Arc<Metrics>,
    /// A stream connected at least once: stream-only delivery is ready.
    ever_subscribed: AtomicBool,
    /// Wakes the outlet's worker when a stream connects.
    pub subscribed: Notify,
}

/// What a stream's body takes next.
pub enum Taken {
    Data(Bytes),
    Empty,
    /// The sidecar is stopping and this stream has nothing left.
    Closed,
}

/// Records a stream takes at once, and bytes.
const TAKE_RECORDS: usize = 64;
const TAKE_BYTES: usize = 64 * 1024;

impl Hub {
    pub fn new(cfg: StreamConfig, encoder: Encoder, metrics: Arc<Metrics>) -> Hub {
        Hub {
            inner: Mutex::new(Inner {
                log: ResumeLog::new(cfg.log_age, cfg.log_entries),
                subs: HashMap::new(),
                next_sub: 1,
                encoder,
                closed: false,
            }),
            cfg,
            metrics,
            ever_subscribed: AtomicBool::new(false),
            subscribed: Notify::new(),
        }
    }

    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under the lock panics; if something ever did, the state
        // is still consistent entry by entry.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribers(&self) -> usize {
        self.lock().subs.len()
    }

    pub fn ever_subscribed(&self) -> bool {
        self.ever_subscribed.load(Ordering::Relaxed)
    }

    /// Opens a stream for `caches` (empty: all).
    pub fn subscribe(
        self: &Arc<Self>,
        caches: Vec<String>,
        start: Start,
        now: Time,
    ) -> Result<(Subscription, Opened), Refused> {
        let mut g = self.lock();
        if g.closed {
            return Err(Refused::Closed);
        }
        if g.subs.len() >= self.cfg.max_subscribers {
            return Err(Refused::TooMany(self.cfg.max_subscribers));
        }
        let inner = &mut *g;
        inner.log.prune(now);
        let mut sub = Sub {
            buf: SubBuffer::new(self.cfg.buffer, self.cfg.max_merged_keys),
            caches: (!caches.is_empty()).then(|| caches.into_iter().collect()),
            notify: Arc::new(Notify::new()),
        };
        let resume_at = match &start {
            Start::New => None,
            Start::After(id) => inner.log.position(id),
        };
        let opened = match (&start, resume_at) {
            (Start::New, _) => Opened::New,
            (Start::After(_), Some(_)) => Opened::Resumed,
            (Start::After(_), None) => Opened::Gap,
        };
        let mut relief = Relief::default();
        let mut cx = Ctx {
            encoder: &mut inner.encoder,
            log: &mut inner.log,
            now,
        };
        match resume_at {
            Some(seq) => {
                let replay: Vec<_> = cx
                    .log
                    .after(seq)
                    .filter(|e| sub.wants(&e.scope))
                    .cloned()
                    .collect();
                for e in replay {
                    add(&mut relief, sub.buf.push(e, &mut cx));
                }
            }
            None => {
                let reason = match opened {
                    Opened::Gap => FlushReason::ResumeGap,
                    _ => FlushReason::Subscribe,
                };
                let flush = AppMessage::Flush {
                    cache: None,
                    reason,
                };
                add(&mut relief, sub.buf.push_own(flush, &mut cx));
                relief.flushes.push(reason);
            }
        }
        let id = inner.next_sub;
        inner.next_sub += 1;
        let notify = sub.notify.clone();
        inner.subs.insert(id, sub);
        drop(g);
        self.count(&relief);
        let d = &self.metrics.delivery;
        d.stream_subscribers.inc();
        d.stream_opened.with_label_values(&[opened.as_str()]).inc();
        self.ever_subscribed.store(true, Ordering::Relaxed);
        self.subscribed.notify_one();
        Ok((
            Subscription {
                hub: self.clone(),
                id,
                notify,
                written: 0,
            },
            opened,
        ))
    }

    /// Writes a batch to the log and to every stream that wants it.
    pub fn deliver(&self, batch: &[AppMessage], now: Time) -> Result<(), NoSubscriber> {
        let mut g = self.lock();
        if self.cfg.need_subscriber && g.subs.is_empty() {
            return Err(NoSubscriber);
        }
        let inner = &mut *g;
        let mut relief = Relief::default();
        for m in batch {
            let record = inner.encoder.record(m, now);
            let e = inner.log.append(m.clone(), record, now);
            let mut cx = Ctx {
                encoder: &mut inner.encoder,
                log: &mut inner.log,
                now,
            };
            for sub in inner.subs.values_mut() {
                if sub.wants(&e.scope) {
                    add(&mut relief, sub.buf.push(e.clone(), &mut cx));
                }
            }
        }
        for sub in inner.subs.values() {
            if !sub.buf.is_empty() {
                sub.notify.notify_one();
            }
        }
        drop(g);
        self.count(&relief);
        Ok(())
    }

    /// What stream `id` writes next.
    fn take(&self, id: u64, format: Format) -> (Taken, usize) {
        let mut g = self.lock();
        let closed = g.closed;
        let Some(sub) = g.subs.get_mut(&id) else {
            return (Taken::Closed, 0);
        };
        let mut out = BytesMut::new();
        let mut n = 0;
        while n < TAKE_RECORDS && out.len() < TAKE_BYTES {
            let Some(e) = sub.buf.pop() else { break };
            out.extend_from_slice(e.bytes(format));
            n += 1;
        }
        drop(g);
        match (n, closed) {
            (0, true) => (Taken::Closed, 0),
            (0, false) => (Taken::Empty, 0),
            _ => (Taken::Data(out.freeze()), n),
        }
    }

    fn unsubscribe(&self, id: u64, written: u64) {
        if self.lock().subs.remove(&id).is_some() {
            let d = &self.metrics.delivery;
            d.stream_subscribers.dec();
            d.stream_records_per_stream.observe(written as f64);
        }
    }

    /// Stops taking streams; open ones end once they have written what
    /// they hold.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        for sub in g.subs.values() {
            sub.notify.notify_one();
        }
    }

    fn count(&self, relief: &Relief) {
        let d = &self.metrics.delivery;
        d.stream_coalesced.inc_by(relief.coalesced);
        for r in &relief.flushes {
            d.flushes.with_label_values(&[r.as_str()]).inc();
        }
    }
}

fn add(total: &mut Relief, r: Relief) {
    total.coalesced += r.coalesced;
    total.flushes.extend(r.flushes);
}

/// One open stream; dropping it (the client went away) closes it.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    notify: Arc<Notify>,
    written: u64,
}

impl Subscription {
    /// The next bytes to write: what is pending, or a keepalive after
    /// `keepalive` with nothing; `None` once the hub is closed and this
    /// stream has written everything.
    pub async fn next(&mut self, format: Format) -> Option<Bytes> {
        let keepalive = self.hub.cfg.keepalive;
        loop {
            match self.hub.take(self.id, format) {
                (Taken::Data(b), n) => {
                    self.written += n as u64;
                    self.hub.metrics.delivery.stream_records.inc_by(n as u64);
                    return Some(b);
                }
                (Taken::Closed, _) => return None,
                (Taken::Empty, _) => {}
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(keepalive) => {
                    return Some(Bytes::from_static(format.keepalive()));
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id, self.written);
    }
}

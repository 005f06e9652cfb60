//! The workload every system gets — an open-loop stream of publishes at a
//! fixed rate, each issued on schedule whether or not earlier ones have
//! returned — and the measurement of what the receivers got.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::apps::{App, Arrival};
use crate::results::Latency;
use tokio::time::Instant;

/// A system under test, seen from the publisher.
pub trait System: Send + Sync + 'static {
    /// Publishes event `k` at node `node`: the event's id, or why not.
    fn publish(&self, node: usize, k: u64) -> impl Future<Output = Result<String, String>> + Send;
}

#[derive(Clone, Debug)]
pub struct Publication {
    pub id: String,
    pub origin: usize,
    /// When the publish call was issued.
    pub issued: Instant,
    /// When the system answered that it accepted the event.
    pub accepted: Instant,
}

/// The outcome of one run of the workload.
pub struct Published {
    pub pubs: Vec<Publication>,
    /// Publishes the system refused or that failed, and why (the first
    /// reason seen of each kind, with its count).
    pub refused: u64,
    pub refusals: std::collections::BTreeMap<String, u64>,
    /// Publishes that started later than 1 ms after their slot: the
    /// publisher itself fell behind, so the offered rate was not met.
    pub late: u64,
}

/// Publishes events `ks` at `rate` per second; `origin(k)` picks the
/// node. Numbers must not repeat within a system's life: the Redis and
/// Serf ids are made of them.
pub async fn open_loop<S: System>(
    sys: Arc<S>,
    rate: f64,
    ks: std::ops::Range<u64>,
    origin: impl Fn(u64) -> usize,
) -> Published {
    let count = ks.end - ks.start;
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, k) in ks.enumerate() {
        let node = origin(k);
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        let sys = sys.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            let issued = Instant::now();
            let late = issued.duration_since(at) > Duration::from_millis(1);
            let id = sys.publish(node, k).await;
            let accepted = Instant::now();
            let p = id.map(|id| Publication {
                id,
                origin: node,
                issued,
                accepted,
            });
            (p, late)
        });
    }
    let mut out = Published {
        pubs: Vec::with_capacity(count as usize),
        refused: 0,
        refusals: Default::default(),
        late: 0,
    };
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok((p, late)) => {
                out.late += u64::from(late);
                match p {
                    Ok(p) => out.pubs.push(p),
                    Err(why) => {
                        out.refused += 1;
                        *out.refusals.entry(why).or_default() += 1;
                    }
                }
            }
            Err(_) => out.refused += 1,
        }
    }
    out
}

/// Where each receiver's log stood before a run, so a run looks only at
/// its own events.
pub fn cursors(receivers: &[App]) -> Vec<usize> {
    receivers.iter().map(App::count).collect()
}

/// Waits until every receiver but the origin's has every publication, or
/// `within` passes, or nothing new arrives for `quiet`. Returns what each
/// receiver got in this run.
pub async fn collect(
    pubs: &[Publication],
    receivers: &[App],
    from: &[usize],
    within: Duration,
    quiet: Duration,
) -> Vec<Vec<Arrival>> {
    let origin: HashMap<&str, usize> = pubs.iter().map(|p| (p.id.as_str(), p.origin)).collect();
    let want = pubs.len() * (receivers.len() - 1);
    let mut got: Vec<Vec<Arrival>> = vec![Vec::new(); receivers.len()];
    let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); receivers.len()];
    let mut have = 0;
    let deadline = Instant::now() + within;
    let mut last_news = Instant::now();
    loop {
        for (i, r) in receivers.iter().enumerate() {
            let new = r.events_from(from[i] + got[i].len());
            if !new.is_empty() {
                last_news = Instant::now();
            }
            for e in &new {
                if origin.get(e.id.as_str()).is_some_and(|o| *o != i)
                    && seen[i].insert(e.id.clone())
                {
                    have += 1;
                }
            }
            got[i].extend(new);
        }
        let now = Instant::now();
        if have >= want || now > deadline || now.duration_since(last_news) > quiet {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `p`-quantile of sorted samples (nearest rank), rounded to 1 µs.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    (sorted[rank - 1] * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Time to all and per delivery, losses and duplicates, over what
/// [`collect`] gathered. A receiver's copy of its own node's event is not
/// counted (hearsay never sends one; Serf and Redis subscribers do).
pub fn measure(published: &Published, got: &[Vec<Arrival>]) -> Latency {
    let n = got.len();
    let mut first: Vec<HashMap<&str, (usize, Instant)>> = Vec::with_capacity(n);
    for events in got {
        let mut m: HashMap<&str, (usize, Instant)> = HashMap::new();
        for e in events {
            let entry = m.entry(e.id.as_str()).or_insert((0, e.at));
            entry.0 += 1;
            entry.1 = entry.1.min(e.at);
        }
        first.push(m);
    }
    let pubs = &published.pubs;
    let mut l = Latency {
        events: pubs.len(),
        refused: published.refused,
        refusals: published.refusals.clone(),
        publisher_late: published.late,
        deliveries_expected: pubs.len() * (n - 1),
        ..Latency::default()
    };
    let mut per = Vec::new();
    let mut from_issue = Vec::new();
    for p in pubs {
        // The last arrival, not floored at the acceptance: a publish that
        // waits for confirmation is accepted after every app had it.
        let mut last: Option<Instant> = None;
        let mut all = true;
        for (i, m) in first.iter().enumerate() {
            if i == p.origin {
                continue;
            }
            match m.get(p.id.as_str()) {
                Some((copies, at)) => {
                    l.delivered += 1;
                    l.duplicated += copies - 1;
                    per.push(ms(at.saturating_duration_since(p.accepted)));
                    last = Some(last.map_or(*at, |x| x.max(*at)));
                }
                None => {
                    l.lost += 1;
                    all = false;
                }
            }
        }
        if all {
            let last = last.unwrap_or(p.accepted);
            l.time_to_all
                .push(ms(last.saturating_duration_since(p.accepted)));
            from_issue.push(ms(last.saturating_duration_since(p.issued)));
        }
    }
    l.time_to_all.sort_by(f64::total_cmp);
    per.sort_by(f64::total_cmp);
    from_issue.sort_by(f64::total_cmp);
    l.time_to_all_p50_ms = percentile(&l.time_to_all, 0.5);
    l.time_to_all_p99_ms = percentile(&l.time_to_all, 0.99);
    l.delivery_p50_ms = percentile(&per, 0.5);
    l.delivery_p99_ms = percentile(&per, 0.99);
    l.issued_time_to_all_p50_ms = percentile(&from_issue, 0.5);
    l.issued_time_to_all_p99_ms = percentile(&from_issue, 0.99);
    l
}

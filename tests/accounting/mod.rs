//! The accounting every fault scenario ends with: a publisher that sends
//! a steady stream of invalidations at random live nodes while something
//! breaks, then a check of every (receiver, event) pair: delivered, or
//! covered by a flush the receiver got after the event was published.
//! It prints published / pairs / delivered / flushed / duplicates.
//!
//! One documented limit is accounted for, not hidden: an event a sidecar
//! accepted and was SIGKILLed before it wrote it anywhere cannot reach
//! anyone (`lost with origin`, counted only for events accepted within
//! 200 ms before their origin's SIGKILL).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearsay::client::ApiClient;
use hearsay::demo::cluster::LocalCluster;
use hearsay::receiver::{Received, Receiver};
use rand::RngExt;
use tokio::time::Instant;

pub const SETTLE: Duration = Duration::from_secs(40);
pub const UNSENT_WINDOW: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct Published {
    pub id: String,
    pub origin: usize,
    pub at: Instant,
    pub cache: String,
}

/// The API of each live node, kept current as nodes restart.
pub type Apis = Arc<Mutex<Vec<Option<ApiClient>>>>;

pub fn apis_of(c: &LocalCluster) -> Apis {
    Arc::new(Mutex::new(
        (0..c.len()).map(|i| c.node(i).map(|_| c.api(i))).collect(),
    ))
}

/// The publisher's seed: `HEARSAY_CHAOS_SEED` to replay a run, else
/// random; printed either way.
fn seed() -> u64 {
    let seed = std::env::var("HEARSAY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("chaos publisher seed: {seed} (HEARSAY_CHAOS_SEED={seed} replays it)");
    seed
}

/// Publishes at `rate` per second for `duration`, at random live nodes.
pub fn publisher(
    apis: Apis,
    rate: f64,
    duration: Duration,
) -> tokio::task::JoinHandle<Vec<Published>> {
    let mut rng = <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(seed());
    tokio::spawn(async move {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut k = 0u64;
        while start.elapsed() < duration {
            tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
            k += 1;
            let live: Vec<(usize, ApiClient)> = apis
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.clone().map(|a| (i, a)))
                .collect();
            if live.is_empty() {
                continue;
            }
            let (origin, api) = live[rng.random_range(0..live.len())].clone();
            let cache = format!("cache-{}", k % 5);
            let at = Instant::now();
            if let Ok(id) = api
                .invalidate(&serde_json::json!({"cache": cache, "keys": [format!("k{k}")]}))
                .await
            {
                out.push(Published {
                    id,
                    origin,
                    at,
                    cache,
                });
            }
        }
        out
    })
}

#[derive(Debug, Default)]
pub struct Tally {
    pub published: usize,
    pub pairs: usize,
    pub delivered: usize,
    pub flushed: usize,
    pub duplicates: usize,
    pub lost_with_origin: usize,
    pub undelivered: Vec<String>,
}

pub fn tally(
    published: &[Published],
    events: &[Vec<Received>],
    kills: &[(usize, Instant)],
) -> Tally {
    let mut t = Tally {
        published: published.len(),
        ..Tally::default()
    };
    let by_receiver: Vec<HashMap<&str, usize>> = events
        .iter()
        .map(|evs| {
            let mut m = HashMap::new();
            for e in evs.iter().filter(|e| e.kind == "dev.hearsay.invalidate") {
                *m.entry(e.id.as_str()).or_insert(0) += 1;
            }
            m
        })
        .collect();
    for p in published {
        let at_risk = kills.iter().any(|(node, killed)| {
            *node == p.origin && *killed >= p.at && killed.duration_since(p.at) < UNSENT_WINDOW
        });
        for (r, evs) in events.iter().enumerate() {
            if r == p.origin {
                continue;
            }
            t.pairs += 1;
            match by_receiver[r].get(p.id.as_str()) {
                Some(&n) => {
                    t.delivered += 1;
                    t.duplicates += n - 1;
                }
                None => {
                    let covered = evs.iter().any(|e| {
                        e.kind == "dev.hearsay.flush"
                            && e.at >= p.at
                            && (e.data["cache"].is_null() || e.data["cache"] == p.cache.as_str())
                    });
                    if covered {
                        t.flushed += 1;
                    } else if at_risk {
                        t.lost_with_origin += 1;
                    } else {
                        t.undelivered
                            .push(format!("{} (from node {}) at receiver {r}", p.id, p.origin));
                    }
                }
            }
        }
    }
    t
}

/// Waits until every pair is delivered or covered, then reports.
pub async fn settle_and_report(
    name: &str,
    published: &[Published],
    events: impl Fn() -> Vec<Vec<Received>>,
    kills: &[(usize, Instant)],
) -> Tally {
    let deadline = Instant::now() + SETTLE;
    while !tally(published, &events(), kills).undelivered.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Late duplicates would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = tally(published, &events(), kills);
    eprintln!(
        "chaos {name}: published {}, pairs {}, delivered {}, flushed {}, duplicates {}, lost with origin {}, undelivered {}",
        t.published,
        t.pairs,
        t.delivered,
        t.flushed,
        t.duplicates,
        t.lost_with_origin,
        t.undelivered.len()
    );
    assert!(
        t.undelivered.is_empty(),
        "{name}: {} undelivered, e.g. {:?}",
        t.undelivered.len(),
        &t.undelivered[..t.undelivered.len().min(5)]
    );
    assert!(t.published > 50, "{name}: the load ran");
    t
}

pub fn all_events(recv: &[Receiver]) -> Vec<Vec<Received>> {
    recv.iter().map(Receiver::events).collect()
}

//! What the demo does once its cluster is up: publish at random nodes at a
//! steady rate, wait for the deliveries, and tally who got what.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hyper::Method;
use rand::RngExt;
use tokio::time::Instant;

use super::cluster::LocalCluster;
use super::report::{DemoReport, percentile};
use super::{DemoArgs, note};
use crate::client::encode_key;
use crate::receiver::Receiver;

/// When and where an event was published.
struct Published {
    origin: usize,
    sent: Instant,
}

/// Every event the demo published, by id.
#[derive(Default)]
struct Log {
    events: HashMap<String, Published>,
    config_writes: usize,
}

/// Publishes, waits for the deliveries, measures.
pub(super) async fn exercise(
    args: &DemoArgs,
    cluster: &LocalCluster,
    receivers: &[Receiver],
) -> anyhow::Result<DemoReport> {
    let n = args.nodes;
    let log = publish_all(args, cluster, receivers).await?;
    let expected = log.events.len() * (n - 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while received_of(receivers, &log) < expected && Instant::now() <= deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut report = tally(receivers, &log, n);
    report.config_converged = config_converged(cluster, log.config_writes).await?;
    Ok(report)
}

/// Publishes `args.events` at `args.rate`, every tenth a config write (up
/// to 100), printing progress once a second.
async fn publish_all(
    args: &DemoArgs,
    cluster: &LocalCluster,
    receivers: &[Receiver],
) -> anyhow::Result<Log> {
    let n = args.nodes;
    let mut log = Log::default();
    let mut rng = rand::rng();
    let t0 = Instant::now();
    let mut last_progress = Instant::now();
    for k in 0..args.events {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(k as f64 / args.rate)).await;
        let origin = rng.random_range(0..n);
        let sent = Instant::now();
        let id = if k % 10 == 9 && log.config_writes < 100 {
            log.config_writes += 1;
            write_config(cluster, origin, k).await?
        } else {
            cluster
                .api(origin)
                .invalidate(&serde_json::json!({
                    "cache": format!("cache-{}", k % 4),
                    "keys": [format!("key-{k}")],
                }))
                .await?
        };
        log.events.insert(id, Published { origin, sent });
        if !args.json && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let got = received_of(receivers, &log);
            let (done, want) = (k + 1, (k + 1) * (n - 1));
            note(&format!(
                "  published {done}/{}, deliveries {got}/{want}",
                args.events
            ));
        }
    }
    Ok(log)
}

/// Writes config key `demo.setting-{k}` at node `origin`; the event's id.
async fn write_config(cluster: &LocalCluster, origin: usize, k: usize) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Accepted {
        id: String,
    }
    let key = format!("demo.setting-{k}");
    let a: Accepted = cluster
        .api(origin)
        .json(
            Method::PUT,
            &format!("/v1/config/{}", encode_key(&key)),
            Some(format!("value-{k}").into_bytes()),
        )
        .await?;
    Ok(a.id)
}

/// Events the receivers got that the demo published (not the flushes each
/// sidecar sends at start), copies included.
fn received_of(receivers: &[Receiver], log: &Log) -> usize {
    receivers
        .iter()
        .map(|r| {
            r.events()
                .iter()
                .filter(|e| log.events.contains_key(&e.id))
                .count()
        })
        .sum()
}

/// Counts deliveries, duplicates and deliveries to the origin's own app,
/// and the time from publish to each delivery and to the last one.
fn tally(receivers: &[Receiver], log: &Log, n: usize) -> DemoReport {
    let published = &log.events;
    let (mut deliveries, mut duplicates, mut unexpected) = (0, 0, 0);
    let mut per_delivery = Vec::new();
    let mut last_at: HashMap<&str, (usize, Instant)> = HashMap::new();
    for (node, r) in receivers.iter().enumerate() {
        let mut seen = HashSet::new();
        for e in r.events() {
            let Some((id, p)) = published.get_key_value(&e.id) else {
                continue;
            };
            if !seen.insert(e.id.clone()) {
                duplicates += 1;
            } else if p.origin == node {
                unexpected += 1;
            } else {
                deliveries += 1;
                per_delivery.push(e.at.duration_since(p.sent).as_secs_f64() * 1000.0);
                let entry = last_at.entry(id.as_str()).or_insert((0, e.at));
                entry.0 += 1;
                entry.1 = entry.1.max(e.at);
            }
        }
    }
    let mut time_to_all: Vec<f64> = last_at
        .iter()
        .filter(|(_, (count, _))| *count == n - 1)
        .map(|(id, (_, at))| at.duration_since(published[*id].sent).as_secs_f64() * 1000.0)
        .collect();
    time_to_all.sort_by(f64::total_cmp);
    per_delivery.sort_by(f64::total_cmp);
    DemoReport {
        nodes: n,
        events: published.len(),
        invalidations: published.len() - log.config_writes,
        config_writes: log.config_writes,
        deliveries_expected: published.len() * (n - 1),
        deliveries,
        duplicates,
        unexpected,
        time_to_all_p50_ms: percentile(&time_to_all, 0.50),
        time_to_all_p99_ms: percentile(&time_to_all, 0.99),
        delivery_p50_ms: percentile(&per_delivery, 0.50),
        delivery_p99_ms: percentile(&per_delivery, 0.99),
        config_converged: false,
        wall_seconds: 0.0,
    }
}

/// Whether every node holds the same config, one key per write.
async fn config_converged(cluster: &LocalCluster, writes: usize) -> anyhow::Result<bool> {
    let mut configs = Vec::new();
    for i in 0..cluster.len() {
        let entries: Vec<crate::commands::ConfigEntry> =
            cluster.api(i).json(Method::GET, "/v1/config", None).await?;
        configs.push(entries);
    }
    Ok(configs.iter().all(|c| c == &configs[0]) && configs[0].len() == writes)
}

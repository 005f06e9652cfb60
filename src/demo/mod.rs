//! `hearsay demo`: a whole local cluster on 127.0.0.1. It starts N sidecars
//! as child processes of this binary, each delivering to a receiver in this
//! process (so publish and receipt are timed on one clock), publishes a
//! stream of invalidations and config writes at random nodes, and reports
//! who received what and how fast.

pub mod cluster;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hyper::Method;
use rand::RngExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::client::encode_key;
use crate::receiver::Receiver;
use cluster::{ClusterOptions, LocalCluster};

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Sidecars to start (at least 2)
    #[arg(long, default_value_t = 5, value_parser = at_least_two)]
    pub nodes: usize,
    /// Events to publish (every tenth is a config write, up to 100)
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Publishes per second, at random nodes
    #[arg(long, default_value_t = 100.0, value_parser = positive_rate)]
    pub rate: f64,
    /// Print one JSON object instead of progress and a summary
    #[arg(long)]
    pub json: bool,
    /// Leave the cluster running after the summary, until Ctrl-C, printing
    /// each delivery as it happens (its directory is kept)
    #[arg(long)]
    pub keep_running: bool,
    /// Keep the directory with the sidecars' logs and files afterwards
    #[arg(long)]
    pub keep_dir: bool,
    /// The hearsay binary to start (default: this one)
    #[arg(long, hide = true)]
    pub binary: Option<PathBuf>,
}

/// Checked by clap, so a bad value is a usage error (exit 64) before
/// anything starts.
fn at_least_two(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 2 => Ok(n),
        Ok(_) => Err("a cluster needs at least 2 nodes".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        Ok(_) => Err("the rate must be a positive number".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub nodes: usize,
    pub events: usize,
    pub invalidations: usize,
    pub config_writes: usize,
    /// Every event at every node but its origin.
    pub deliveries_expected: usize,
    pub deliveries: usize,
    pub duplicates: usize,
    /// Events that reached their own origin's app (not asked for).
    pub unexpected: usize,
    pub time_to_all_p50_ms: f64,
    pub time_to_all_p99_ms: f64,
    pub delivery_p50_ms: f64,
    pub delivery_p99_ms: f64,
    pub config_converged: bool,
    pub wall_seconds: f64,
}

struct Published {
    origin: usize,
    sent: Instant,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    (sorted[rank - 1] * 1000.0).round() / 1000.0
}

pub async fn run(args: DemoArgs) -> anyhow::Result<DemoReport> {
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2");
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let started = Instant::now();
    let say = |msg: &str| {
        if !args.json {
            note(msg);
        }
    };
    let dir = std::env::temp_dir().join(format!("hearsay-demo-{}", std::process::id()));
    let mut receivers = Vec::new();
    for _ in 0..args.nodes {
        receivers.push(Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), false).await?);
    }
    let urls: Vec<String> = receivers.iter().map(Receiver::url).collect();
    let key: String = {
        let mut rng = rand::rng();
        (0..32)
            .map(|_| format!("{:02x}", rng.random::<u8>()))
            .collect()
    };
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("cannot find this binary")?,
    };
    // Listening from here on: a signal sent while the cluster starts, or
    // just as the summary is printed, is not lost.
    let mut signals = crate::shutdown::Signals::listen();
    say(&format!(
        "starting {} sidecars (logs and files in {})",
        args.nodes,
        dir.display()
    ));
    let starting = LocalCluster::start(
        ClusterOptions {
            binary,
            dir: dir.clone(),
            key: Some(key.into_bytes()),
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(20),
        },
        &urls,
    );
    // Dropping a half-started cluster kills what it started.
    let cluster = tokio::select! {
        c = starting => c?,
        s = signals.recv() => anyhow::bail!("interrupted by {s}"),
    };
    say("every sidecar sees every other; publishing");

    let outcome = tokio::select! {
        r = exercise(&args, &cluster, &receivers) => r,
        s = signals.recv() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    let report = match outcome {
        Ok(mut report) => {
            report.wall_seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
            report
        }
        Err(e) => {
            cluster.shutdown(Duration::from_secs(5)).await;
            return Err(e);
        }
    };
    let text = if args.json {
        format!("{}\n", serde_json::to_string(&report)?)
    } else {
        summary(&report, &cluster)
    };
    // A closed stdout (`hearsay demo | head`) is an error, not a panic, and
    // the cluster still stops.
    if let Err(e) = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        cluster.shutdown(Duration::from_secs(5)).await;
        anyhow::bail!("cannot write the summary: {e}");
    }
    if args.keep_running {
        note("\nthe cluster keeps running; deliveries print as they happen; Ctrl-C stops it");
        tokio::select! {
            () = follow(&receivers) => {}
            _ = signals.recv() => {}
        }
    }
    cluster.shutdown(Duration::from_secs(10)).await;
    for r in receivers {
        r.stop().await;
    }
    if args.keep_running || args.keep_dir {
        note(&format!("logs and files kept in {}", dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}

/// Prints every event a receiver gets from now on, as it arrives (until
/// the caller stops polling).
async fn follow(receivers: &[Receiver]) {
    let mut seen: Vec<usize> = receivers.iter().map(Receiver::count).collect();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (i, r) in receivers.iter().enumerate() {
            for e in r.events_from(seen[i]) {
                seen[i] += 1;
                note(&format!("  node-{i} got {} {} {}", e.kind, e.id, e.data));
            }
        }
    }
}

/// Publishes, waits for the deliveries, measures.
async fn exercise(
    args: &DemoArgs,
    cluster: &LocalCluster,
    receivers: &[Receiver],
) -> anyhow::Result<DemoReport> {
    let n = args.nodes;
    let mut published: HashMap<String, Published> = HashMap::new();
    let mut config_writes = 0;
    let mut rng = rand::rng();
    let t0 = Instant::now();
    let mut last_progress = Instant::now();
    for k in 0..args.events {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(k as f64 / args.rate)).await;
        let origin = rng.random_range(0..n);
        let api = cluster.api(origin);
        let sent = Instant::now();
        let id = if k % 10 == 9 && config_writes < 100 {
            config_writes += 1;
            let key = format!("demo.setting-{k}");
            #[derive(serde::Deserialize)]
            struct Accepted {
                id: String,
            }
            let a: Accepted = api
                .json(
                    Method::PUT,
                    &format!("/v1/config/{}", encode_key(&key)),
                    Some(format!("value-{k}").into_bytes()),
                )
                .await?;
            a.id
        } else {
            api.invalidate(&serde_json::json!({
                "cache": format!("cache-{}", k % 4),
                "keys": [format!("key-{k}")],
            }))
            .await?
        };
        published.insert(id, Published { origin, sent });
        if !args.json && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let got = received_of(receivers, &published);
            note(&format!(
                "  published {}/{}, deliveries {}/{}",
                k + 1,
                args.events,
                got,
                (k + 1) * (n - 1)
            ));
        }
    }
    let expected = published.len() * (n - 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = received_of(receivers, &published);
        if got >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut deliveries = 0;
    let mut duplicates = 0;
    let mut unexpected = 0;
    let mut per_delivery = Vec::new();
    let mut last_at: HashMap<&str, (usize, Instant)> = HashMap::new();
    for (node, r) in receivers.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        for e in r.events() {
            let Some(p) = published.get(&e.id) else {
                continue;
            };
            if !seen.insert(e.id.clone()) {
                duplicates += 1;
                continue;
            }
            if p.origin == node {
                unexpected += 1;
                continue;
            }
            deliveries += 1;
            per_delivery.push(e.at.duration_since(p.sent).as_secs_f64() * 1000.0);
            let (id, _) = published.get_key_value(&e.id).expect("present");
            let entry = last_at.entry(id.as_str()).or_insert((0, e.at));
            entry.0 += 1;
            entry.1 = entry.1.max(e.at);
        }
    }
    let mut time_to_all: Vec<f64> = last_at
        .iter()
        .filter(|(_, (count, _))| *count == n - 1)
        .map(|(id, (_, at))| at.duration_since(published[*id].sent).as_secs_f64() * 1000.0)
        .collect();
    time_to_all.sort_by(f64::total_cmp);
    per_delivery.sort_by(f64::total_cmp);

    let mut configs = Vec::new();
    for i in 0..n {
        let entries: Vec<crate::commands::ConfigEntry> =
            cluster.api(i).json(Method::GET, "/v1/config", None).await?;
        configs.push(entries);
    }
    let config_converged =
        configs.iter().all(|c| c == &configs[0]) && configs[0].len() == config_writes;

    Ok(DemoReport {
        nodes: n,
        events: published.len(),
        invalidations: published.len() - config_writes,
        config_writes,
        deliveries_expected: expected,
        deliveries,
        duplicates,
        unexpected,
        time_to_all_p50_ms: percentile(&time_to_all, 0.50),
        time_to_all_p99_ms: percentile(&time_to_all, 0.99),
        delivery_p50_ms: percentile(&per_delivery, 0.50),
        delivery_p99_ms: percentile(&per_delivery, 0.99),
        config_converged,
        wall_seconds: 0.0,
    })
}

/// Events the receivers got that the demo published (not the flushes each
/// sidecar sends at start), copies included.
fn received_of(receivers: &[Receiver], published: &HashMap<String, Published>) -> usize {
    receivers
        .iter()
        .map(|r| {
            r.events()
                .iter()
                .filter(|e| published.contains_key(&e.id))
                .count()
        })
        .sum()
}

/// The summary the demo prints at the end.
fn summary(r: &DemoReport, cluster: &LocalCluster) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push('\n');
    let _ = writeln!(out, "hearsay demo: {} sidecars on 127.0.0.1", r.nodes);
    let _ = writeln!(
        out,
        "  events published        {} ({} invalidations, {} config writes)",
        r.events, r.invalidations, r.config_writes
    );
    let _ = writeln!(out, "  deliveries expected     {}", r.deliveries_expected);
    let _ = writeln!(out, "  deliveries              {}", r.deliveries);
    let _ = writeln!(out, "  duplicates              {}", r.duplicates);
    let _ = writeln!(
        out,
        "  time to all p50 / p99   {} ms / {} ms",
        r.time_to_all_p50_ms, r.time_to_all_p99_ms
    );
    let _ = writeln!(
        out,
        "  one delivery p50 / p99  {} ms / {} ms",
        r.delivery_p50_ms, r.delivery_p99_ms
    );
    let _ = writeln!(
        out,
        "  config converged        {}",
        if r.config_converged {
            "yes, identical on every node"
        } else {
            "NO"
        }
    );
    let _ = writeln!(out, "\n  node      api                     metrics");
    for i in 0..cluster.len() {
        if let Some(n) = cluster.node(i) {
            let _ = writeln!(
                out,
                "  node-{i:<4} http://{:<16}  http://{}/metrics",
                n.ready.api, n.ready.metrics
            );
        }
    }
    let _ = writeln!(
        out,
        "  (with --keep-running: hearsay peers --api-addr <api>, hearsay publish --api-addr <api> --cache c --key k)"
    );
    out
}

/// A progress note on stderr; a closed stderr is ignored, never a panic.
fn note(msg: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

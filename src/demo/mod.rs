//! `hearsay demo`: a whole local cluster on 127.0.0.1. It starts N sidecars
//! as child processes of this binary, each delivering to a receiver in this
//! process (so publish and receipt are timed on one clock), publishes a
//! stream of invalidations and config writes at random nodes, and reports
//! who received what and how fast.

pub mod cluster;
mod exercise;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rand::RngExt;
use tokio::time::Instant;

use crate::receiver::Receiver;
use crate::shutdown::Signals;
use cluster::{ClusterOptions, LocalCluster};
use exercise::exercise;
pub use report::DemoReport;
use report::summary;

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

pub async fn run(args: DemoArgs) -> anyhow::Result<DemoReport> {
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2");
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("hearsay-demo-{}", std::process::id()));
    let mut receivers = Vec::new();
    for _ in 0..args.nodes {
        receivers.push(Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), false).await?);
    }
    // Listening from here on: a signal sent while the cluster starts, or
    // just as the summary is printed, is not lost.
    let mut signals = Signals::listen();
    let cluster = start_cluster(&args, &dir, &receivers, &mut signals).await?;
    if !args.json {
        note("every sidecar sees every other; publishing");
    }
    let outcome = tokio::select! {
        r = exercise(&args, &cluster, &receivers) => r,
        s = signals.recv() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    let mut report = match outcome {
        Ok(report) => report,
        Err(e) => {
            cluster.shutdown(Duration::from_secs(5)).await;
            return Err(e);
        }
    };
    report.wall_seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
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

/// Starts one sidecar per receiver under `dir`, sharing a fresh gossip
/// key, and waits until every one sees every other (or a signal comes).
async fn start_cluster(
    args: &DemoArgs,
    dir: &Path,
    receivers: &[Receiver],
    signals: &mut Signals,
) -> anyhow::Result<LocalCluster> {
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
    if !args.json {
        let (n, dir) = (args.nodes, dir.display());
        note(&format!("starting {n} sidecars (logs and files in {dir})"));
    }
    let starting = LocalCluster::start(
        ClusterOptions {
            binary,
            dir: dir.to_path_buf(),
            key: Some(key.into_bytes()),
            extra_args: Vec::new(),
            start_timeout: Duration::from_secs(20),
        },
        &urls,
    );
    // Dropping a half-started cluster kills what it started.
    tokio::select! {
        c = starting => c,
        s = signals.recv() => anyhow::bail!("interrupted by {s}"),
    }
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

/// A progress note on stderr; a closed stderr is ignored, never a panic.
pub(crate) fn note(msg: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

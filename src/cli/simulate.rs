//! `hearsay simulate`: the discrete-event simulator from the command line.

use std::time::Duration;

use clap::Args;

use crate::sim::{Churn, Partition, Report, Sim, SimConfig};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Number of events published (at random live nodes).
    #[arg(long, default_value_t = 100)]
    pub events: usize,
    /// Probability that a frame is lost (0 up to 1).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Seed; the same arguments give the same report.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Publishes per virtual second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// One-way link latency in milliseconds.
    #[arg(long, default_value_t = 0.5)]
    pub latency_ms: f64,
    /// Uniform jitter around the latency, in milliseconds.
    #[arg(long, default_value_t = 0.1)]
    pub jitter_ms: f64,
    /// Virtual time to keep running after the last publish or fault.
    #[arg(long, default_value_t = 10_000)]
    pub settle_ms: u64,
    /// Cut this share of the nodes off from the rest (e.g. 0.3).
    #[arg(long)]
    pub partition: Option<f64>,
    /// When the partition starts, in virtual milliseconds.
    #[arg(long, default_value_t = 200)]
    pub partition_start_ms: u64,
    /// How long the partition lasts before it heals.
    #[arg(long, default_value_t = 5_000)]
    pub partition_ms: u64,
    /// Crash this share of the nodes once while publishing, then restart them.
    #[arg(long)]
    pub churn: Option<f64>,
    /// How long a crashed node stays down.
    #[arg(long, default_value_t = 2_000)]
    pub downtime_ms: u64,
    /// Up to this many peers the origin pushes directly; above, the tree.
    #[arg(long, default_value_t = 64)]
    pub direct_max_peers: usize,
    /// Overlay links each node opens.
    #[arg(long, default_value_t = 5)]
    pub view_min: usize,
    /// Publish every event with tracking (as `?wait=` does); each app
    /// acknowledges at once, and the report adds confirmation times and
    /// messages.
    #[arg(long)]
    pub track: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1e3)
}

impl SimulateArgs {
    pub fn config(&self) -> SimConfig {
        let mut cfg = SimConfig::new(self.nodes, self.events, self.loss, self.seed);
        cfg.rate = self.rate;
        cfg.latency = ms(self.latency_ms);
        cfg.jitter = ms(self.jitter_ms);
        cfg.settle = Duration::from_millis(self.settle_ms);
        cfg.partition = self.partition.map(|fraction| Partition {
            fraction,
            start: Duration::from_millis(self.partition_start_ms),
            duration: Duration::from_millis(self.partition_ms),
        });
        cfg.churn = self.churn.map(|fraction| Churn {
            fraction,
            downtime: Duration::from_millis(self.downtime_ms),
        });
        cfg.track = self.track;
        cfg.node.direct_push_max_peers = self.direct_max_peers;
        cfg.node.view_min = self.view_min;
        cfg.node.view_max = cfg.node.view_max.max(self.view_min * 4);
        cfg
    }
}

/// Runs the simulation; arguments it cannot run with are a usage error.
pub fn run(args: &SimulateArgs) -> Result<Report, super::Failure> {
    let sim = Sim::new(args.config())
        .map_err(|e| super::Failure::Usage(format!("invalid simulation: {e:#}")))?;
    let report = sim.run();
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| super::Failure::Runtime(e.into()))?
        );
    } else {
        print_table(&report);
    }
    Ok(report)
}

fn print_table(r: &Report) {
    println!(
        "hearsay simulate: {} nodes, {} events, loss {}, seed {}",
        r.nodes, r.events, r.loss, r.seed
    );
    let rows: [(&str, String); 16] = [
        ("pairs", r.pairs.to_string()),
        (
            "delivered",
            format!("{} ({:.6})", r.delivered, r.delivered_ratio),
        ),
        ("flushed", r.flushed.to_string()),
        ("undelivered", r.undelivered.to_string()),
        ("duplicates", r.duplicates.to_string()),
        (
            "payload per event per peer",
            format!("{:.4}", r.payload_per_event_per_peer),
        ),
        (
            "control frames per node per event",
            format!("{:.3}", r.control_per_node_per_event),
        ),
        (
            "bytes per node per event",
            format!("{:.1}", r.bytes_per_node_per_event),
        ),
        (
            "last delivery hop (max)",
            r.last_delivery_hop_max.to_string(),
        ),
        (
            "time to all p50 / p99 / max (ms)",
            format!(
                "{} / {} / {}",
                r.time_to_all_p50_ms, r.time_to_all_p99_ms, r.time_to_all_max_ms
            ),
        ),
        ("grafts / prunes", format!("{} / {}", r.grafts, r.prunes)),
        ("repairs received", r.repairs_received.to_string()),
        ("flushes", r.flushes.to_string()),
        (
            "crashes / partitioned nodes",
            format!("{} / {}", r.crashes, r.partitioned_nodes),
        ),
        ("frames (lost)", format!("{} ({})", r.frames, r.frames_lost)),
        (
            "virtual / wall seconds",
            format!("{:.1} / {:.2}", r.virtual_seconds, r.wall_seconds),
        ),
    ];
    for (k, v) in rows {
        println!("  {k:<36} {v}");
    }
    if r.confirmed > 0 || r.confirm_items_per_event > 0.0 {
        let rows: [(&str, String); 3] = [
            ("confirmed", format!("{} of {}", r.confirmed, r.published)),
            (
                "confirmation p50 / p99 (ms)",
                format!("{} / {}", r.confirm_p50_ms, r.confirm_p99_ms),
            ),
            (
                "confirm items / frames per event",
                format!(
                    "{:.1} / {:.1}",
                    r.confirm_items_per_event, r.confirm_frames_per_event
                ),
            ),
        ];
        for (k, v) in rows {
            println!("  {k:<36} {v}");
        }
    }
}

//! The demo's report: the figures it measured, and the summary it prints.

use serde::Serialize;

use super::cluster::LocalCluster;

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

/// The `p` quantile of `sorted` (nearest rank), rounded to the µs.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    (sorted[rank - 1] * 1000.0).round() / 1000.0
}

/// The summary the demo prints at the end.
pub(super) fn summary(r: &DemoReport, cluster: &LocalCluster) -> String {
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

//! Prometheus metrics (prefix `hearsay_`), registered per subsystem in one
//! registry. Label values are bounded: reasons, directions and outcomes,
//! never a key, a cache name or a peer address.
//!
//! The gossip core counts in plain numbers ([`Stats`]); the owner task
//! mirrors them here with [`Metrics::observe_core`], adding what changed
//! since the last call.

pub mod server;

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::gossip::Stats;

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn float_gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// Latency buckets from 100 µs to 10 s.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ]
}

/// Every metric the sidecar exports.
pub struct Metrics {
    pub registry: Registry,
    // Stages of an event.
    pub published: IntCounter,
    pub publish_refused: IntCounterVec,
    pub received: IntCounter,
    pub events_sent: IntCounter,
    pub duplicates: IntCounter,
    pub invalid: IntCounter,
    pub out_of_window: IntCounter,
    pub predating_start: IntCounter,
    pub delivered: IntCounter,
    pub acknowledged: IntCounter,
    pub rejected_by_app: IntCounter,
    pub propagation_delay: Histogram,
    // Delivery to the app.
    pub webhook_requests: IntCounterVec,
    pub webhook_latency: Histogram,
    pub delivery_queue_depth: IntGauge,
    pub delivery_queue_capacity: IntGauge,
    pub delivery_coalesced: IntCounter,
    pub flushes: IntCounterVec,
    // Peers and transport.
    pub peers: IntGaugeVec,
    pub frames: IntCounterVec,
    pub bytes: IntCounterVec,
    pub frames_rejected: IntCounterVec,
    pub frames_rate_limited: IntCounter,
    pub sends_dropped: IntCounterVec,
    pub items_deferred: IntCounter,
    pub connections: IntCounterVec,
    pub auth_failures: IntCounter,
    pub key_reloads: IntCounterVec,
    // Dedup, repair, tree.
    pub bloom_fill_ratio: Gauge,
    pub bloom_fp_rate: Gauge,
    pub bloom_false_positives: IntCounter,
    pub bloom_rotations: IntCounter,
    pub antientropy_rounds: IntCounter,
    pub repairs: IntCounterVec,
    pub tree_messages: IntCounterVec,
    pub seqs: IntCounterVec,
    pub origins: IntGauge,
    pub origins_forgotten: IntCounter,
    pub retention_events: IntGauge,
    pub retention_bytes: IntGauge,
    pub config_keys: IntGauge,
    pub rate_limited: IntCounterVec,
    pub ready: IntGauge,
    pub discovery_errors: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            published: counter(
                &r,
                "hearsay_events_published_total",
                "Events this node published for its app.",
            ),
            publish_refused: counter_vec(
                &r,
                "hearsay_publish_refused_total",
                "Local publishes refused, by reason.",
                &["reason"],
            ),
            received: counter(
                &r,
                "hearsay_events_received_total",
                "Events received from peers (copies included).",
            ),
            events_sent: counter(
                &r,
                "hearsay_events_sent_total",
                "Event copies sent to peers: pushes, relays, grafts and repairs.",
            ),
            duplicates: counter(
                &r,
                "hearsay_events_duplicate_total",
                "Received events already seen.",
            ),
            invalid: counter(
                &r,
                "hearsay_events_invalid_total",
                "Received events that broke a limit.",
            ),
            out_of_window: counter(
                &r,
                "hearsay_events_out_of_window_total",
                "Received events too far ahead of their origin's watermark (repaired later).",
            ),
            predating_start: counter(
                &r,
                "hearsay_events_predating_start_total",
                "Invalidations published before this node started (not delivered).",
            ),
            delivered: counter(
                &r,
                "hearsay_events_delivered_total",
                "Events new to this node, handed to the delivery queue.",
            ),
            acknowledged: counter(
                &r,
                "hearsay_events_acknowledged_total",
                "Events the app acknowledged with a 2xx.",
            ),
            rejected_by_app: counter(
                &r,
                "hearsay_events_rejected_by_app_total",
                "Events the app refused permanently (4xx other than 429).",
            ),
            propagation_delay: histogram(
                &r,
                "hearsay_propagation_delay_seconds",
                "Publish at the origin to arrival here (clocks of both nodes: skew shows).",
                latency_buckets(),
            ),
            webhook_requests: counter_vec(
                &r,
                "hearsay_webhook_requests_total",
                "Requests to the app's webhook, by outcome.",
                &["outcome"],
            ),
            webhook_latency: histogram(
                &r,
                "hearsay_webhook_latency_seconds",
                "Duration of one webhook request.",
                latency_buckets(),
            ),
            delivery_queue_depth: gauge(
                &r,
                "hearsay_delivery_queue_depth",
                "Entries waiting for the app.",
            ),
            delivery_queue_capacity: gauge(
                &r,
                "hearsay_delivery_queue_capacity",
                "Entries the delivery queue holds before it coalesces.",
            ),
            delivery_coalesced: counter(
                &r,
                "hearsay_delivery_coalesced_total",
                "Events merged with another of the same cache under queue pressure.",
            ),
            flushes: counter_vec(
                &r,
                "hearsay_flushes_total",
                "Flushes sent to the app, by reason.",
                &["reason"],
            ),
            peers: {
                let g = IntGaugeVec::new(Opts::new("hearsay_peers", "Peers by state."), &["state"])
                    .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            frames: counter_vec(
                &r,
                "hearsay_frames_total",
                "Gossip frames, by direction.",
                &["direction"],
            ),
            bytes: counter_vec(
                &r,
                "hearsay_bytes_total",
                "Gossip bytes, by direction.",
                &["direction"],
            ),
            frames_rejected: counter_vec(
                &r,
                "hearsay_frames_rejected_total",
                "Inbound frames rejected, by reason.",
                &["reason"],
            ),
            frames_rate_limited: counter(
                &r,
                "hearsay_frames_rate_limited_total",
                "Inbound frames dropped by a peer's frame or byte limit.",
            ),
            sends_dropped: counter_vec(
                &r,
                "hearsay_sends_dropped_total",
                "Outbound sends dropped (anti-entropy repairs them), by reason.",
                &["reason"],
            ),
            items_deferred: counter(
                &r,
                "hearsay_items_deferred_total",
                "Items held back by the outbound byte limit, sent later.",
            ),
            connections: counter_vec(
                &r,
                "hearsay_connections_total",
                "Gossip connections, by direction and outcome.",
                &["direction", "outcome"],
            ),
            auth_failures: counter(
                &r,
                "hearsay_auth_failures_total",
                "Inbound frames whose authentication failed (missing or wrong tag).",
            ),
            key_reloads: counter_vec(
                &r,
                "hearsay_key_reloads_total",
                "Gossip key files re-read after a change, by outcome.",
                &["outcome"],
            ),
            bloom_fill_ratio: float_gauge(
                &r,
                "hearsay_bloom_fill_ratio",
                "Share of bits set in the current dedup filter.",
            ),
            bloom_fp_rate: float_gauge(
                &r,
                "hearsay_bloom_false_positive_rate",
                "Estimated false-positive rate of a dedup lookup.",
            ),
            bloom_false_positives: counter(
                &r,
                "hearsay_bloom_false_positives_total",
                "Bloom 'seen' for an event the exact record had not seen (repaired by anti-entropy).",
            ),
            bloom_rotations: counter(
                &r,
                "hearsay_bloom_rotations_total",
                "Dedup filter generations rotated.",
            ),
            antientropy_rounds: counter(
                &r,
                "hearsay_antientropy_rounds_total",
                "Anti-entropy rounds started.",
            ),
            repairs: counter_vec(
                &r,
                "hearsay_antientropy_repairs_total",
                "Events sent or received to fill gaps, by direction.",
                &["direction"],
            ),
            tree_messages: counter_vec(
                &r,
                "hearsay_tree_messages_total",
                "Broadcast-tree control messages sent, by kind.",
                &["kind"],
            ),
            seqs: counter_vec(
                &r,
                "hearsay_seqs_covered_total",
                "Sequence numbers covered without the event: predating this node, or lost (flushed).",
                &["outcome"],
            ),
            origins: gauge(
                &r,
                "hearsay_origins",
                "Origins (peer incarnations) tracked.",
            ),
            origins_forgotten: counter(
                &r,
                "hearsay_origins_forgotten_total",
                "Origins forgotten after their peer left.",
            ),
            retention_events: gauge(&r, "hearsay_retention_events", "Events kept for repairs."),
            retention_bytes: gauge(
                &r,
                "hearsay_retention_bytes",
                "Approximate memory held by the retention buffer.",
            ),
            config_keys: gauge(&r, "hearsay_config_keys", "Live config keys."),
            rate_limited: counter_vec(
                &r,
                "hearsay_rate_limited_total",
                "Items held or refused by a rate limit, by limit.",
                &["limit"],
            ),
            ready: gauge(
                &r,
                "hearsay_ready",
                "1 when listeners are up and discovery has produced a peer set.",
            ),
            discovery_errors: counter_vec(
                &r,
                "hearsay_discovery_errors_total",
                "Discovery failures, by source.",
                &["source"],
            ),
            registry: r,
        };
        // Make every labelled series exist from the start, so dashboards
        // and alerts see zeros rather than nothing.
        for reason in ["invalid", "too_large", "rate_limited", "shutting_down"] {
            m.publish_refused.with_label_values(&[reason]);
        }
        for outcome in ["success", "retry", "rejected", "gated"] {
            m.webhook_requests.with_label_values(&[outcome]);
        }
        for reason in [
            "gap_timeout",
            "gap_unrecoverable",
            "cache_overflow",
            "queue_overflow",
            "webhook_budget",
            "sidecar_start",
        ] {
            m.flushes.with_label_values(&[reason]);
        }
        for state in ["member", "connected", "eager", "lazy"] {
            m.peers.with_label_values(&[state]);
        }
        for d in ["in", "out"] {
            m.frames.with_label_values(&[d]);
            m.bytes.with_label_values(&[d]);
            m.connections.with_label_values(&[d, "opened"]);
            m.connections.with_label_values(&[d, "failed"]);
            m.connections.with_label_values(&[d, "refused"]);
        }
        for reason in [
            "io",
            "too_large",
            "bad_header",
            "malformed",
            "missing_tag",
            "bad_tag",
            "unknown_peer",
            "address_mismatch",
            "replayed",
            "stale",
            "slow",
        ] {
            m.frames_rejected.with_label_values(&[reason]);
        }
        for reason in [
            "queue_full",
            "no_address",
            "write_failed",
            "too_large",
            "fault",
        ] {
            m.sends_dropped.with_label_values(&[reason]);
        }
        for d in ["sent", "received"] {
            m.repairs.with_label_values(&[d]);
        }
        for k in ["ihave", "graft", "prune"] {
            m.tree_messages.with_label_values(&[k]);
        }
        for o in ["skipped_predating", "lost"] {
            m.seqs.with_label_values(&[o]);
        }
        for l in ["publish", "inbound", "outbound", "webhook"] {
            m.rate_limited.with_label_values(&[l]);
        }
        for o in ["ok", "failed"] {
            m.key_reloads.with_label_values(&[o]);
        }
        for source in ["static", "kubernetes"] {
            m.discovery_errors.with_label_values(&[source]);
        }
        m
    }

    /// Adds what changed in the core's counts since `prev`, then remembers
    /// `now` as the new baseline.
    pub fn observe_core(&self, now: &Stats, prev: &mut Stats) {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.published.inc_by(d(now.published, prev.published));
        self.publish_refused
            .with_label_values(&["rate_limited"])
            .inc_by(d(now.publish_rate_limited, prev.publish_rate_limited));
        self.rate_limited
            .with_label_values(&["publish"])
            .inc_by(d(now.publish_rate_limited, prev.publish_rate_limited));
        self.received
            .inc_by(d(now.events_received, prev.events_received));
        self.events_sent
            .inc_by(d(now.events_sent, prev.events_sent));
        self.duplicates
            .inc_by(d(now.duplicates_suppressed, prev.duplicates_suppressed));
        self.invalid
            .inc_by(d(now.events_invalid, prev.events_invalid));
        self.out_of_window
            .inc_by(d(now.events_out_of_window, prev.events_out_of_window));
        self.predating_start
            .inc_by(d(now.events_predating_start, prev.events_predating_start));
        self.delivered
            .inc_by(d(now.events_delivered, prev.events_delivered));
        let limited = d(now.frames_rate_limited_in, prev.frames_rate_limited_in);
        self.frames_rate_limited.inc_by(limited);
        self.rate_limited
            .with_label_values(&["inbound"])
            .inc_by(limited);
        let deferred = d(now.items_deferred_out, prev.items_deferred_out);
        self.items_deferred.inc_by(deferred);
        self.rate_limited
            .with_label_values(&["outbound"])
            .inc_by(deferred);
        self.bloom_false_positives
            .inc_by(d(now.bloom_false_positives, prev.bloom_false_positives));
        self.antientropy_rounds
            .inc_by(d(now.anti_entropy_rounds, prev.anti_entropy_rounds));
        self.repairs
            .with_label_values(&["sent"])
            .inc_by(d(now.repairs_sent, prev.repairs_sent));
        self.repairs
            .with_label_values(&["received"])
            .inc_by(d(now.repairs_received, prev.repairs_received));
        self.tree_messages
            .with_label_values(&["ihave"])
            .inc_by(d(now.ihave_sent, prev.ihave_sent));
        self.tree_messages
            .with_label_values(&["graft"])
            .inc_by(d(now.graft_sent, prev.graft_sent));
        self.tree_messages
            .with_label_values(&["prune"])
            .inc_by(d(now.prune_sent, prev.prune_sent));
        self.seqs
            .with_label_values(&["skipped_predating"])
            .inc_by(d(now.seqs_skipped_predating, prev.seqs_skipped_predating));
        self.seqs
            .with_label_values(&["lost"])
            .inc_by(d(now.seqs_lost, prev.seqs_lost));
        self.flushes
            .with_label_values(&["gap_timeout"])
            .inc_by(d(now.flush_gap_timeout, prev.flush_gap_timeout));
        self.flushes
            .with_label_values(&["gap_unrecoverable"])
            .inc_by(d(now.flush_gap_unrecoverable, prev.flush_gap_unrecoverable));
        self.origins_forgotten
            .inc_by(d(now.origins_forgotten, prev.origins_forgotten));
        *prev = now.clone();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_counts_are_mirrored_as_deltas() {
        let m = Metrics::new();
        let mut prev = Stats::default();
        let mut now = Stats {
            published: 3,
            flush_gap_timeout: 1,
            ..Stats::default()
        };
        m.observe_core(&now, &mut prev);
        now.published = 5;
        m.observe_core(&now, &mut prev);
        assert_eq!(m.published.get(), 5);
        assert_eq!(m.flushes.with_label_values(&["gap_timeout"]).get(), 1);
    }

    #[test]
    fn labelled_series_exist_before_anything_happens() {
        let text = Metrics::new().render();
        assert!(text.contains("hearsay_flushes_total{reason=\"webhook_budget\"} 0"));
        assert!(text.contains("hearsay_frames_rejected_total{reason=\"bad_tag\"} 0"));
        assert!(text.contains("# TYPE hearsay_propagation_delay_seconds histogram"));
    }
}

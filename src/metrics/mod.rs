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

use crate::gossip::FlushReason;
use crate::gossip::stats::{StatField, Stats};

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
    pub webhook_redelivered: IntCounter,
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
    // Core counters with no other home.
    pub frames_admitted: IntCounter,
    pub bytes_admitted: IntCounter,
    pub bytes_rate_limited: IntCounter,
    pub gossip_sends: IntCounter,
    pub config_applied: IntCounter,
    pub config_rejected: IntCounterVec,
    pub config_evicted: IntCounter,
    pub implausible_numbers: IntCounter,
    pub neighbors_refused: IntCounter,
    /// The series each core counter adds to, indexed like `StatField::ALL`.
    core_export: Vec<Vec<IntCounter>>,
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
            webhook_redelivered: counter(
                &r,
                "hearsay_webhook_redelivered_total",
                "Events sent to the app again after a request that timed out: the app may have processed them, and then sees them twice.",
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
            frames_admitted: counter(
                &r,
                "hearsay_frames_admitted_total",
                "Authenticated frames the protocol core took in (past the per-peer limits).",
            ),
            bytes_admitted: counter(
                &r,
                "hearsay_bytes_admitted_total",
                "Bytes of the frames the protocol core took in.",
            ),
            bytes_rate_limited: counter(
                &r,
                "hearsay_bytes_rate_limited_total",
                "Bytes of inbound frames dropped by a peer's frame or byte limit.",
            ),
            gossip_sends: counter(
                &r,
                "hearsay_gossip_sends_total",
                "Sends the protocol core handed to the transport (one per peer per input).",
            ),
            config_applied: counter(
                &r,
                "hearsay_config_applied_total",
                "Config writes from peers applied here (newer than what was here).",
            ),
            config_rejected: counter_vec(
                &r,
                "hearsay_config_rejected_total",
                "Config writes from peers not applied, by reason: stale (an equal or newer version is here), cap (register cap reached).",
                &["reason"],
            ),
            config_evicted: counter(
                &r,
                "hearsay_config_evicted_total",
                "Config registers evicted to stay under the register cap.",
            ),
            implausible_numbers: counter(
                &r,
                "hearsay_implausible_numbers_total",
                "Items from peers ignored for a seq, watermark or range no honest node produces.",
            ),
            neighbors_refused: counter(
                &r,
                "hearsay_neighbors_refused_total",
                "Broadcast-tree links refused because this node's view was full.",
            ),
            core_export: Vec::new(),
            registry: r,
        };
        let mut m = m;
        m.core_export = StatField::ALL.iter().map(|f| m.core_series(*f)).collect();
        // Make every labelled series exist from the start, so dashboards
        // and alerts see zeros rather than nothing.
        for reason in [
            "invalid",
            "too_large",
            "rate_limited",
            "not_found",
            "shutting_down",
        ] {
            m.publish_refused.with_label_values(&[reason]);
        }
        for outcome in ["success", "retry", "rejected", "gated"] {
            m.webhook_requests.with_label_values(&[outcome]);
        }
        for reason in FlushReason::ALL {
            m.flushes.with_label_values(&[reason.as_str()]);
        }
        for reason in ["stale", "cap"] {
            m.config_rejected.with_label_values(&[reason]);
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
        for outcome in ["handshake_timeout", "evicted", "replaced"] {
            m.connections.with_label_values(&["in", outcome]);
        }
        m.connections.with_label_values(&["out", "bad_hello"]);
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
            "implausible",
            "unknown_flags",
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

    /// The series a core counter adds to. The match is exhaustive, so a
    /// counter added to the core cannot be left out of `/metrics`.
    fn core_series(&self, f: StatField) -> Vec<IntCounter> {
        use StatField as F;
        let label = |v: &IntCounterVec, l: &str| v.with_label_values(&[l]);
        match f {
            F::Published => vec![self.published.clone()],
            F::PublishRateLimited => vec![
                label(&self.publish_refused, "rate_limited"),
                label(&self.rate_limited, "publish"),
            ],
            F::PublishInvalid => vec![label(&self.publish_refused, "invalid")],
            F::PublishTooLarge => vec![label(&self.publish_refused, "too_large")],
            F::PublishNoSuchKey => vec![label(&self.publish_refused, "not_found")],
            F::FramesIn => vec![self.frames_admitted.clone()],
            F::BytesIn => vec![self.bytes_admitted.clone()],
            F::FramesOut => vec![self.gossip_sends.clone()],
            F::EventsSent => vec![self.events_sent.clone()],
            F::FramesRateLimitedIn => vec![
                self.frames_rate_limited.clone(),
                label(&self.rate_limited, "inbound"),
            ],
            F::BytesRateLimitedIn => vec![self.bytes_rate_limited.clone()],
            F::ItemsDeferredOut => vec![
                self.items_deferred.clone(),
                label(&self.rate_limited, "outbound"),
            ],
            F::EventsReceived => vec![self.received.clone()],
            F::EventsInvalid => vec![self.invalid.clone()],
            F::DuplicatesSuppressed => vec![self.duplicates.clone()],
            F::BloomFalsePositives => vec![self.bloom_false_positives.clone()],
            F::EventsOutOfWindow => vec![self.out_of_window.clone()],
            F::EventsPredatingStart => vec![self.predating_start.clone()],
            F::EventsDelivered => vec![self.delivered.clone()],
            F::ConfigApplied => vec![self.config_applied.clone()],
            F::ConfigStale => vec![label(&self.config_rejected, "stale")],
            F::ConfigRejectedCap => vec![label(&self.config_rejected, "cap")],
            F::ConfigEvicted => vec![self.config_evicted.clone()],
            F::ImplausibleNumbers => vec![self.implausible_numbers.clone()],
            F::IhaveSent => vec![label(&self.tree_messages, "ihave")],
            F::GraftSent => vec![label(&self.tree_messages, "graft")],
            F::PruneSent => vec![label(&self.tree_messages, "prune")],
            F::AntiEntropyRounds => vec![self.antientropy_rounds.clone()],
            F::RepairsSent => vec![label(&self.repairs, "sent")],
            F::RepairsReceived => vec![label(&self.repairs, "received")],
            F::SeqsSkippedPredating => vec![label(&self.seqs, "skipped_predating")],
            F::SeqsLost => vec![label(&self.seqs, "lost")],
            F::FlushGapTimeout => vec![label(&self.flushes, FlushReason::GapTimeout.as_str())],
            F::FlushGapUnrecoverable => {
                vec![label(&self.flushes, FlushReason::GapUnrecoverable.as_str())]
            }
            F::OriginsForgotten => vec![self.origins_forgotten.clone()],
            F::NeighborsRefused => vec![self.neighbors_refused.clone()],
        }
    }

    /// Adds what changed in the core's counts since `prev`, then remembers
    /// `now` as the new baseline.
    pub fn observe_core(&self, now: &Stats, prev: &mut Stats) {
        for (f, series) in StatField::ALL.iter().zip(&self.core_export) {
            let delta = now.get(*f).saturating_sub(prev.get(*f));
            if delta > 0 {
                for c in series {
                    c.inc_by(delta);
                }
            }
        }
        *prev = now.clone();
    }

    /// Adds the flushes the delivery queue raised since `prev` (the gap
    /// reasons are the core's, counted by [`Metrics::observe_core`]).
    pub fn observe_queue_flushes(&self, now: &[u64], prev: &[u64]) {
        for (i, reason) in FlushReason::ALL.iter().enumerate() {
            if reason.is_gap() {
                continue;
            }
            let delta = now[i].saturating_sub(prev[i]);
            self.flushes
                .with_label_values(&[reason.as_str()])
                .inc_by(delta);
        }
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

    /// Every core counter reaches `/metrics`: each is set to its own
    /// value, and each series it maps to must show exactly that value.
    #[test]
    fn every_core_counter_is_exported_with_its_value() {
        let m = Metrics::new();
        let mut now = Stats::default();
        for (i, f) in StatField::ALL.iter().enumerate() {
            *now.get_mut(*f) = 1000 + i as u64;
        }
        m.observe_core(&now, &mut Stats::default());
        let text = m.render();
        for (i, f) in StatField::ALL.iter().enumerate() {
            let series = m.core_series(*f);
            assert!(!series.is_empty(), "{} has no metric", f.name());
            for c in series {
                assert_eq!(c.get(), 1000 + i as u64, "{} is not exported", f.name());
            }
        }
        // And the exposition carries them (one spot check per shape).
        assert!(text.contains("hearsay_config_rejected_total{reason=\"cap\"}"));
        assert!(text.contains("hearsay_neighbors_refused_total"));
    }

    #[test]
    fn no_two_core_counters_add_to_the_same_series() {
        let m = Metrics::new();
        let mut seen = std::collections::HashMap::new();
        for f in StatField::ALL {
            let mut now = Stats::default();
            *now.get_mut(*f) = 1;
            let before = m.render();
            m.observe_core(&now, &mut Stats::default());
            let after = m.render();
            let changed: Vec<String> = after
                .lines()
                .filter(|l| !l.starts_with('#') && !before.contains(*l))
                .map(|l| {
                    l.rsplit_once(' ')
                        .map(|(s, _)| s.to_owned())
                        .unwrap_or_default()
                })
                .collect();
            assert!(!changed.is_empty(), "{} changed nothing", f.name());
            for series in changed {
                if let Some(other) = seen.insert(series.clone(), f.name()) {
                    panic!("{series} counts both {other} and {}", f.name());
                }
            }
        }
    }

    #[test]
    fn labelled_series_exist_before_anything_happens() {
        let text = Metrics::new().render();
        assert!(text.contains("hearsay_flushes_total{reason=\"webhook_budget\"} 0"));
        assert!(text.contains("hearsay_frames_rejected_total{reason=\"bad_tag\"} 0"));
        assert!(text.contains("# TYPE hearsay_propagation_delay_seconds histogram"));
    }
}

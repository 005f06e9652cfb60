//! The gossip core's state: dedup, repair, the broadcast tree, origins, retention, config registers, rate limits.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Registry};

use super::register::{counter, counter_vec, float_gauge, gauge};

/// The gossip core's state: dedup, repair, the broadcast tree, origins, retention, config registers, rate limits.
pub struct ProtocolMetrics {
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
    pub config_applied: IntCounter,
    pub config_rejected: IntCounterVec,
    pub config_evicted: IntCounter,
    pub implausible_numbers: IntCounter,
    pub neighbors_refused: IntCounter,
}

impl ProtocolMetrics {
    /// Registers this group's metrics in `r`, every labelled series
    /// created at zero so that dashboards and alerts see zeros, not nothing.
    pub fn register(r: &Registry) -> ProtocolMetrics {
        let m = ProtocolMetrics {
            bloom_fill_ratio: float_gauge(
                r,
                "hearsay_bloom_fill_ratio",
                "Share of bits set in the current dedup filter.",
            ),
            bloom_fp_rate: float_gauge(
                r,
                "hearsay_bloom_false_positive_rate",
                "Estimated false-positive rate of a dedup lookup.",
            ),
            bloom_false_positives: counter(
                r,
                "hearsay_bloom_false_positives_total",
                "Bloom 'seen' for an event the exact record had not seen (repaired by anti-entropy).",
            ),
            bloom_rotations: counter(
                r,
                "hearsay_bloom_rotations_total",
                "Dedup filter generations rotated.",
            ),
            antientropy_rounds: counter(
                r,
                "hearsay_antientropy_rounds_total",
                "Anti-entropy rounds started.",
            ),
            repairs: counter_vec(
                r,
                "hearsay_antientropy_repairs_total",
                "Events sent or received to fill gaps, by direction.",
                &["direction"],
            ),
            tree_messages: counter_vec(
                r,
                "hearsay_tree_messages_total",
                "Broadcast-tree control messages sent, by kind.",
                &["kind"],
            ),
            seqs: counter_vec(
                r,
                "hearsay_seqs_covered_total",
                "Sequence numbers covered without the event: predating this node, or lost (flushed).",
                &["outcome"],
            ),
            origins: gauge(r, "hearsay_origins", "Origins (peer incarnations) tracked."),
            origins_forgotten: counter(
                r,
                "hearsay_origins_forgotten_total",
                "Origins forgotten after their peer left.",
            ),
            retention_events: gauge(r, "hearsay_retention_events", "Events kept for repairs."),
            retention_bytes: gauge(
                r,
                "hearsay_retention_bytes",
                "Approximate memory held by the retention buffer.",
            ),
            config_keys: gauge(r, "hearsay_config_keys", "Live config keys."),
            rate_limited: counter_vec(
                r,
                "hearsay_rate_limited_total",
                "Items held or refused by a rate limit, by limit.",
                &["limit"],
            ),
            config_applied: counter(
                r,
                "hearsay_config_applied_total",
                "Config writes from peers applied here (newer than what was here).",
            ),
            config_rejected: counter_vec(
                r,
                "hearsay_config_rejected_total",
                "Config writes from peers not applied, by reason: stale (an equal or newer version is here), cap (register cap reached).",
                &["reason"],
            ),
            config_evicted: counter(
                r,
                "hearsay_config_evicted_total",
                "Config registers evicted to stay under the register cap.",
            ),
            implausible_numbers: counter(
                r,
                "hearsay_implausible_numbers_total",
                "Items from peers ignored for a seq, watermark or range no honest node produces.",
            ),
            neighbors_refused: counter(
                r,
                "hearsay_neighbors_refused_total",
                "Broadcast-tree links refused because this node's view was full.",
            ),
        };
        for reason in ["stale", "cap"] {
            m.config_rejected.with_label_values(&[reason]);
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
        m
    }
}

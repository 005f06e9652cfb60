//! The gossip core's work: dedup, repair, the broadcast tree, rate limits.

use prometheus::{Gauge, IntCounter, IntCounterVec, Registry};

use super::register::{counter, counter_vec, float_gauge};

/// The gossip core's work: dedup, repair, the broadcast tree, rate limits.
pub struct ProtocolMetrics {
    pub bloom_fill_ratio: Gauge,
    pub bloom_fp_rate: Gauge,
    pub bloom_false_positives: IntCounter,
    pub bloom_rotations: IntCounter,
    pub antientropy_rounds: IntCounter,
    pub repairs: IntCounterVec,
    pub tree_messages: IntCounterVec,
    pub seqs: IntCounterVec,
    pub rate_limited: IntCounterVec,
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
            rate_limited: counter_vec(
                r,
                "hearsay_rate_limited_total",
                "Items held or refused by a rate limit, by limit.",
                &["limit"],
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

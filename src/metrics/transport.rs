//! Frames, bytes and connections between sidecars, and their authentication.

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::register::{counter, counter_vec};

/// Frames, bytes and connections between sidecars, and their authentication.
pub struct TransportMetrics {
    pub frames: IntCounterVec,
    pub bytes: IntCounterVec,
    pub frames_rejected: IntCounterVec,
    pub frames_rate_limited: IntCounter,
    pub sends_dropped: IntCounterVec,
    pub items_deferred: IntCounter,
    pub connections: IntCounterVec,
    pub auth_failures: IntCounter,
    pub key_reloads: IntCounterVec,
    pub frames_admitted: IntCounter,
    pub bytes_admitted: IntCounter,
    pub bytes_rate_limited: IntCounter,
    pub gossip_sends: IntCounter,
}

impl TransportMetrics {
    /// Registers this group's metrics in `r`, every labelled series
    /// created at zero so that dashboards and alerts see zeros, not nothing.
    pub fn register(r: &Registry) -> TransportMetrics {
        let m = TransportMetrics {
            frames: counter_vec(
                r,
                "hearsay_frames_total",
                "Gossip frames, by direction.",
                &["direction"],
            ),
            bytes: counter_vec(
                r,
                "hearsay_bytes_total",
                "Gossip bytes, by direction.",
                &["direction"],
            ),
            frames_rejected: counter_vec(
                r,
                "hearsay_frames_rejected_total",
                "Inbound frames rejected, by reason.",
                &["reason"],
            ),
            frames_rate_limited: counter(
                r,
                "hearsay_frames_rate_limited_total",
                "Inbound frames dropped by a peer's frame or byte limit.",
            ),
            sends_dropped: counter_vec(
                r,
                "hearsay_sends_dropped_total",
                "Outbound sends dropped (anti-entropy repairs them), by reason.",
                &["reason"],
            ),
            items_deferred: counter(
                r,
                "hearsay_items_deferred_total",
                "Items held back by the outbound byte limit, sent later.",
            ),
            connections: counter_vec(
                r,
                "hearsay_connections_total",
                "Gossip connections, by direction and outcome.",
                &["direction", "outcome"],
            ),
            auth_failures: counter(
                r,
                "hearsay_auth_failures_total",
                "Inbound frames whose authentication failed (missing or wrong tag).",
            ),
            key_reloads: counter_vec(
                r,
                "hearsay_key_reloads_total",
                "Gossip key files re-read after a change, by outcome.",
                &["outcome"],
            ),
            frames_admitted: counter(
                r,
                "hearsay_frames_admitted_total",
                "Authenticated frames the protocol core took in (past the per-peer limits).",
            ),
            bytes_admitted: counter(
                r,
                "hearsay_bytes_admitted_total",
                "Bytes of the frames the protocol core took in.",
            ),
            bytes_rate_limited: counter(
                r,
                "hearsay_bytes_rate_limited_total",
                "Bytes of inbound frames dropped by a peer's frame or byte limit.",
            ),
            gossip_sends: counter(
                r,
                "hearsay_gossip_sends_total",
                "Sends the protocol core handed to the transport (one per peer per input).",
            ),
        };
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
        for o in ["ok", "failed"] {
            m.key_reloads.with_label_values(&[o]);
        }
        m
    }
}

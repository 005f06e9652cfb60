//! An event's stages: published here, received, deduplicated, delivered, acknowledged.

use prometheus::{Histogram, IntCounter, IntCounterVec, Registry};

use super::register::{counter, counter_vec, histogram, latency_buckets};

/// An event's stages: published here, received, deduplicated, delivered, acknowledged.
pub struct EventMetrics {
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
}

impl EventMetrics {
    /// Registers this group's metrics in `r`, every labelled series
    /// created at zero so that dashboards and alerts see zeros, not nothing.
    pub fn register(r: &Registry) -> EventMetrics {
        let m = EventMetrics {
            published: counter(
                r,
                "hearsay_events_published_total",
                "Events this node published for its app.",
            ),
            publish_refused: counter_vec(
                r,
                "hearsay_publish_refused_total",
                "Local publishes refused, by reason.",
                &["reason"],
            ),
            received: counter(
                r,
                "hearsay_events_received_total",
                "Events received from peers (copies included).",
            ),
            events_sent: counter(
                r,
                "hearsay_events_sent_total",
                "Event copies sent to peers: pushes, relays, grafts and repairs.",
            ),
            duplicates: counter(
                r,
                "hearsay_events_duplicate_total",
                "Received events already seen.",
            ),
            invalid: counter(
                r,
                "hearsay_events_invalid_total",
                "Received events that broke a limit.",
            ),
            out_of_window: counter(
                r,
                "hearsay_events_out_of_window_total",
                "Received events too far ahead of their origin's watermark (repaired later).",
            ),
            predating_start: counter(
                r,
                "hearsay_events_predating_start_total",
                "Invalidations published before this node started (not delivered).",
            ),
            delivered: counter(
                r,
                "hearsay_events_delivered_total",
                "Events new to this node, handed to the delivery queue.",
            ),
            acknowledged: counter(
                r,
                "hearsay_events_acknowledged_total",
                "Events the app acknowledged with a 2xx.",
            ),
            rejected_by_app: counter(
                r,
                "hearsay_events_rejected_by_app_total",
                "Events the app refused permanently (4xx other than 429).",
            ),
            propagation_delay: histogram(
                r,
                "hearsay_propagation_delay_seconds",
                "Publish at the origin to arrival here (clocks of both nodes: skew shows).",
                latency_buckets(),
            ),
        };
        for reason in [
            "invalid",
            "too_large",
            "rate_limited",
            "not_found",
            "shutting_down",
        ] {
            m.publish_refused.with_label_values(&[reason]);
        }
        m
    }
}

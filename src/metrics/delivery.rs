//! Delivery to the app: the webhook, its queue, flushes.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::gossip::FlushReason;

use super::register::{counter, counter_vec, gauge, histogram, latency_buckets};

/// Delivery to the app: the webhook, its queue, flushes.
pub struct DeliveryMetrics {
    pub webhook_requests: IntCounterVec,
    pub webhook_latency: Histogram,
    pub webhook_redelivered: IntCounter,
    pub delivery_queue_depth: IntGauge,
    pub delivery_queue_capacity: IntGauge,
    pub delivery_coalesced: IntCounter,
    pub flushes: IntCounterVec,
    pub stream_subscribers: IntGauge,
    pub stream_opened: IntCounterVec,
    pub stream_records: IntCounter,
    pub stream_records_per_stream: Histogram,
    pub stream_coalesced: IntCounter,
}

impl DeliveryMetrics {
    /// Registers this group's metrics in `r`, every labelled series
    /// created at zero so that dashboards and alerts see zeros, not nothing.
    pub fn register(r: &Registry) -> DeliveryMetrics {
        let m = DeliveryMetrics {
            webhook_requests: counter_vec(
                r,
                "hearsay_webhook_requests_total",
                "Requests to the app's webhook, by outcome.",
                &["outcome"],
            ),
            webhook_latency: histogram(
                r,
                "hearsay_webhook_latency_seconds",
                "Duration of one webhook request.",
                latency_buckets(),
            ),
            webhook_redelivered: counter(
                r,
                "hearsay_webhook_redelivered_total",
                "Events sent to the app again after a request that timed out: the app may have processed them, and then sees them twice.",
            ),
            delivery_queue_depth: gauge(
                r,
                "hearsay_delivery_queue_depth",
                "Entries waiting for the app.",
            ),
            delivery_queue_capacity: gauge(
                r,
                "hearsay_delivery_queue_capacity",
                "Entries the delivery queue holds before it coalesces.",
            ),
            delivery_coalesced: counter(
                r,
                "hearsay_delivery_coalesced_total",
                "Events merged with another of the same cache under queue pressure.",
            ),
            flushes: counter_vec(
                r,
                "hearsay_flushes_total",
                "Flushes queued for the app (the webhook and each stream count their own), by reason.",
                &["reason"],
            ),
            stream_subscribers: gauge(
                r,
                "hearsay_stream_subscribers",
                "Subscription streams open now.",
            ),
            stream_opened: counter_vec(
                r,
                "hearsay_stream_opened_total",
                "Subscription streams opened: new (a flush first), resumed from Last-Event-ID, or gap (the id had left the log: a flush first).",
                &["outcome"],
            ),
            stream_records: counter(
                r,
                "hearsay_stream_records_total",
                "Records written to subscription streams, all streams together.",
            ),
            stream_records_per_stream: histogram(
                r,
                "hearsay_stream_records_per_stream",
                "Records one subscription stream wrote before it closed.",
                vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7],
            ),
            stream_coalesced: counter(
                r,
                "hearsay_stream_coalesced_total",
                "Events merged with another of the same cache because a subscriber was too slow for its buffer.",
            ),
        };
        for outcome in ["new", "resumed", "gap"] {
            m.stream_opened.with_label_values(&[outcome]);
        }
        for outcome in ["success", "retry", "rejected", "gated"] {
            m.webhook_requests.with_label_values(&[outcome]);
        }
        for reason in FlushReason::ALL {
            m.flushes.with_label_values(&[reason.as_str()]);
        }
        m
    }
}

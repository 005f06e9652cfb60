//! Confirmed invalidation: tracked events, the messages that confirm them,
//! publishers waiting, and how long confirmation took.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use super::register::{counter, counter_vec, gauge, histogram, latency_buckets};

/// How a publisher's wait ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every replica acknowledged, flushed or departed.
    Confirmed,
    /// A replica's app rejected the event.
    Rejected,
    /// The wait ran out with replicas pending (a 202).
    TimedOut,
    /// Too many waits at once (a 429).
    Refused,
}

impl WaitOutcome {
    pub const ALL: [WaitOutcome; 4] = [
        WaitOutcome::Confirmed,
        WaitOutcome::Rejected,
        WaitOutcome::TimedOut,
        WaitOutcome::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WaitOutcome::Confirmed => "confirmed",
            WaitOutcome::Rejected => "rejected",
            WaitOutcome::TimedOut => "timed_out",
            WaitOutcome::Refused => "refused",
        }
    }
}

pub struct ConfirmMetrics {
    pub tracked: IntCounter,
    pub tracked_now: IntGauge,
    pub messages: IntCounterVec,
    pub ignored: IntCounter,
    pub dropped: IntCounterVec,
    pub confirmation_seconds: Histogram,
    pub waits: IntCounterVec,
    pub waiting: IntGauge,
}

impl ConfirmMetrics {
    /// Registers this group's metrics in `r`, every labelled series at zero.
    pub fn register(r: &Registry) -> ConfirmMetrics {
        let m = ConfirmMetrics {
            tracked: counter(
                r,
                "hearsay_tracked_events_total",
                "Events this node published with tracking (a publisher may wait for them).",
            ),
            tracked_now: gauge(
                r,
                "hearsay_tracked_events",
                "Tracked events this node holds now.",
            ),
            messages: counter_vec(
                r,
                "hearsay_confirm_messages_total",
                "Confirmation items: asks sent to replicas, reports sent to origins, reports received.",
                &["kind"],
            ),
            ignored: counter(
                r,
                "hearsay_confirm_ignored_total",
                "Confirmation items ignored: about another incarnation of this node, or an ask naming an origin other than its sender's.",
            ),
            dropped: counter_vec(
                r,
                "hearsay_confirm_dropped_total",
                "Confirmation state dropped: tracked events over the cap (evicted) or past the retention still waiting (expired), outcome ranges over the per-origin cap, app-ledger entries over its cap (their origin sees this replica pending).",
                &["what"],
            ),
            confirmation_seconds: histogram(
                r,
                "hearsay_confirmation_seconds",
                "From a tracked publish to its last replica's confirmation (or a rejection).",
                latency_buckets(),
            ),
            waits: counter_vec(
                r,
                "hearsay_confirm_waits_total",
                "Publishers' waits (?wait=), by how they ended.",
                &["outcome"],
            ),
            waiting: gauge(
                r,
                "hearsay_confirm_waits",
                "Publishers waiting for a confirmation now.",
            ),
        };
        for kind in ["want_sent", "report_sent", "report_received"] {
            m.messages.with_label_values(&[kind]);
        }
        for what in ["evicted", "expired", "outcomes", "ledger"] {
            m.dropped.with_label_values(&[what]);
        }
        for o in WaitOutcome::ALL {
            m.waits.with_label_values(&[o.as_str()]);
        }
        m
    }
}

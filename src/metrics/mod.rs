//! Prometheus metrics (prefix `hearsay_`), one group per subsystem, each
//! registering its own metrics in one registry (the shape of kube-rs's
//! controller-rs `metrics.rs`). Label values are bounded: reasons,
//! directions and outcomes, never a key, a cache name or a peer address.
//!
//! The gossip core counts in plain numbers ([`Stats`]); the owner task
//! mirrors them here with [`Metrics::observe_core`], adding what changed
//! since the last call. Which series a core counter adds to is one
//! exhaustive `match` on [`StatField`], generated with [`Stats`]: a counter
//! added to the core and not exported is a compile error.

mod confirm;
mod delivery;
mod events;
mod membership;
mod protocol;
mod register;
pub mod server;
mod state;
mod transport;

use prometheus::{IntCounter, IntCounterVec, Registry};

pub use confirm::{ConfirmMetrics, WaitOutcome};
pub use delivery::DeliveryMetrics;
pub use events::EventMetrics;
pub use membership::MembershipMetrics;
pub use protocol::ProtocolMetrics;
pub use state::StateMetrics;
pub use transport::{ConnOutcome, Direction, DropReason, REJECT_REASONS, TransportMetrics};

use crate::gossip::FlushReason;
use crate::gossip::stats::{StatField, Stats};

/// Every metric the sidecar exports, by the subsystem that counts it.
pub struct Metrics {
    pub registry: Registry,
    pub events: EventMetrics,
    pub delivery: DeliveryMetrics,
    pub transport: TransportMetrics,
    pub protocol: ProtocolMetrics,
    pub state: StateMetrics,
    pub membership: MembershipMetrics,
    pub confirm: ConfirmMetrics,
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
        let mut m = Metrics {
            events: EventMetrics::register(&r),
            delivery: DeliveryMetrics::register(&r),
            transport: TransportMetrics::register(&r),
            protocol: ProtocolMetrics::register(&r),
            state: StateMetrics::register(&r),
            membership: MembershipMetrics::register(&r),
            confirm: ConfirmMetrics::register(&r),
            core_export: Vec::new(),
            registry: r,
        };
        m.core_export = StatField::ALL.iter().map(|f| m.core_series(*f)).collect();
        m
    }

    /// The series a core counter adds to. The match is exhaustive, so a
    /// counter added to the core cannot be left out of `/metrics`.
    fn core_series(&self, f: StatField) -> Vec<IntCounter> {
        use StatField as F;
        let label = |v: &IntCounterVec, l: &str| v.with_label_values(&[l]);
        match f {
            F::Published => vec![self.events.published.clone()],
            F::PublishRateLimited => vec![
                label(&self.events.publish_refused, "rate_limited"),
                label(&self.protocol.rate_limited, "publish"),
            ],
            F::PublishInvalid => vec![label(&self.events.publish_refused, "invalid")],
            F::PublishTooLarge => vec![label(&self.events.publish_refused, "too_large")],
            F::PublishNoSuchKey => vec![label(&self.events.publish_refused, "not_found")],
            F::FramesIn => vec![self.transport.frames_admitted.clone()],
            F::BytesIn => vec![self.transport.bytes_admitted.clone()],
            F::FramesOut => vec![self.transport.gossip_sends.clone()],
            F::EventsSent => vec![self.events.events_sent.clone()],
            F::FramesRateLimitedIn => vec![
                self.transport.frames_rate_limited.clone(),
                label(&self.protocol.rate_limited, "inbound"),
            ],
            F::BytesRateLimitedIn => vec![self.transport.bytes_rate_limited.clone()],
            F::ItemsDeferredOut => vec![
                self.transport.items_deferred.clone(),
                label(&self.protocol.rate_limited, "outbound"),
            ],
            F::EventsReceived => vec![self.events.received.clone()],
            F::EventsInvalid => vec![self.events.invalid.clone()],
            F::DuplicatesSuppressed => vec![self.events.duplicates.clone()],
            F::BloomFalsePositives => vec![self.protocol.bloom_false_positives.clone()],
            F::EventsOutOfWindow => vec![self.events.out_of_window.clone()],
            F::EventsPredatingStart => vec![self.events.predating_start.clone()],
            F::EventsDelivered => vec![self.events.delivered.clone()],
            F::ConfigApplied => vec![self.state.config_applied.clone()],
            F::ConfigStale => vec![label(&self.state.config_rejected, "stale")],
            F::ConfigRejectedCap => vec![label(&self.state.config_rejected, "cap")],
            F::ConfigEvicted => vec![self.state.config_evicted.clone()],
            F::ImplausibleNumbers => vec![self.protocol.implausible_numbers.clone()],
            F::IhaveSent => vec![label(&self.protocol.tree_messages, "ihave")],
            F::GraftSent => vec![label(&self.protocol.tree_messages, "graft")],
            F::PruneSent => vec![label(&self.protocol.tree_messages, "prune")],
            F::AntiEntropyRounds => vec![self.protocol.antientropy_rounds.clone()],
            F::RepairsSent => vec![label(&self.protocol.repairs, "sent")],
            F::RepairsReceived => vec![label(&self.protocol.repairs, "received")],
            F::SeqsSkippedPredating => vec![label(&self.protocol.seqs, "skipped_predating")],
            F::SeqsLost => vec![label(&self.protocol.seqs, "lost")],
            F::FlushGapTimeout => vec![label(
                &self.delivery.flushes,
                FlushReason::GapTimeout.as_str(),
            )],
            F::FlushGapUnrecoverable => {
                vec![label(
                    &self.delivery.flushes,
                    FlushReason::GapUnrecoverable.as_str(),
                )]
            }
            F::OriginsForgotten => vec![self.state.origins_forgotten.clone()],
            F::NeighborsRefused => vec![self.protocol.neighbors_refused.clone()],
            F::Tracked => vec![self.confirm.tracked.clone()],
            F::ConfirmWantsSent => vec![label(&self.confirm.messages, "want_sent")],
            F::ConfirmReportsSent => vec![label(&self.confirm.messages, "report_sent")],
            F::ConfirmReportsReceived => vec![label(&self.confirm.messages, "report_received")],
            F::ConfirmItemsIgnored => vec![self.confirm.ignored.clone()],
            F::TrackedEvicted => vec![label(&self.confirm.dropped, "evicted")],
            F::TrackedExpiredWaiting => vec![label(&self.confirm.dropped, "expired")],
            F::OutcomesEvicted => vec![label(&self.confirm.dropped, "outcomes")],
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
            self.delivery
                .flushes
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
        assert_eq!(m.events.published.get(), 5);
        assert_eq!(
            m.delivery.flushes.with_label_values(&["gap_timeout"]).get(),
            1
        );
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

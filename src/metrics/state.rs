//! What the gossip core holds: origins, the retention buffer, config registers.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::register::{counter, counter_vec, gauge};

/// What the gossip core holds: origins, the retention buffer, config registers.
pub struct StateMetrics {
    pub origins: IntGauge,
    pub origins_forgotten: IntCounter,
    pub retention_events: IntGauge,
    pub retention_bytes: IntGauge,
    pub config_keys: IntGauge,
    pub config_applied: IntCounter,
    pub config_rejected: IntCounterVec,
    pub config_evicted: IntCounter,
}

impl StateMetrics {
    /// Registers this group's metrics in `r`, every labelled series
    /// created at zero so that dashboards and alerts see zeros, not nothing.
    pub fn register(r: &Registry) -> StateMetrics {
        let m = StateMetrics {
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
        };
        for reason in ["stale", "cap"] {
            m.config_rejected.with_label_values(&[reason]);
        }
        m
    }
}

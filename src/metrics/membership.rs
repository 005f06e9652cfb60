//! Peers, readiness and discovery.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::register::{counter_vec, gauge};

/// Peers, readiness and discovery.
pub struct MembershipMetrics {
    pub peers: IntGaugeVec,
    pub ready: IntGauge,
    pub discovery_errors: IntCounterVec,
}

impl MembershipMetrics {
    /// Registers this group's metrics in `r`, every labelled series
    /// created at zero so that dashboards and alerts see zeros, not nothing.
    pub fn register(r: &Registry) -> MembershipMetrics {
        let m = MembershipMetrics {
            peers: {
                let g = IntGaugeVec::new(Opts::new("hearsay_peers", "Peers by state."), &["state"])
                    .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            ready: gauge(
                r,
                "hearsay_ready",
                "1 when listeners are up and discovery has produced a peer set.",
            ),
            discovery_errors: counter_vec(
                r,
                "hearsay_discovery_errors_total",
                "Discovery failures, by source.",
                &["source"],
            ),
        };
        for state in ["member", "connected", "eager", "lazy"] {
            m.peers.with_label_values(&[state]);
        }
        for source in ["static", "kubernetes"] {
            m.discovery_errors.with_label_values(&[source]);
        }
        m
    }
}

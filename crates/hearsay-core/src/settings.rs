//! The core's tunables, with defaults meant for production and a
//! validation that names the setting at fault.

use std::time::Duration;

use thiserror::Error;

use super::bloom::BloomConfig;
use super::event::Limits;
use super::ratelimit::RateSpec;

#[derive(Clone, Debug, PartialEq)]
/// The core's settings, validated by [`NodeConfig::validate`].
pub struct NodeConfig {
    /// Size limits for events.
    pub limits: Limits,
    /// Up to this many peers the origin pushes to every peer directly (one
    /// hop); above it events travel the broadcast tree.
    pub direct_push_max_peers: usize,
    /// Links this node opens itself in the overlay (it also accepts links
    /// from others), and the most it keeps.
    pub view_min: usize,
    /// The most overlay links kept.
    pub view_max: usize,
    /// How long announcements for lazy peers are gathered into one frame.
    pub lazy_flush_interval: Duration,
    /// How long to wait for an announced event before grafting, and between
    /// grafts to further announcers.
    pub graft_timeout: Duration,
    /// Wait between grafts to further announcers.
    pub graft_retry: Duration,
    /// A link that delivered a new event this recently is not pruned when it
    /// delivers a duplicate (keeps the tree connected under concurrent
    /// publishers and repairs).
    pub parent_protection: Duration,
    /// How often to exchange digests with a random peer.
    pub anti_entropy_interval: Duration,
    /// Most event bytes in one repair answer.
    pub repair_budget_bytes: usize,
    /// Events that arrived more recently than this are left out of repairs:
    /// they are most likely still travelling to the asker.
    pub repair_grace: Duration,
    /// How long events are kept for repairs, and the byte bound.
    pub retention: Duration,
    /// The most event bytes kept for repairs.
    pub retention_bytes: usize,
    /// A gap still open after this long is given up: the app gets a flush.
    pub gap_flush_after: Duration,
    /// How much earlier than its start a node still treats events as its
    /// app's business (clock skew between nodes).
    pub skew_margin: Duration,
    /// The dedup filter's size and rotation.
    pub bloom: BloomConfig,
    /// Seqs accepted above the watermark before further ones are refused.
    pub max_out_of_order: usize,
    /// Origins with no known owner are forgotten after this long idle.
    pub origin_idle_ttl: Duration,
    /// How long a deleted config key's tombstone is kept.
    pub config_tombstone_ttl: Duration,
    /// Local publishes allowed (none: unlimited).
    pub publish_rate: Option<RateSpec>,
    /// Frames accepted from each peer (none: unlimited).
    pub inbound_frames_per_peer: Option<RateSpec>,
    /// Bytes accepted from each peer (none: unlimited).
    pub inbound_bytes_per_peer: Option<RateSpec>,
    /// Bytes this node sends, over all peers (none: unlimited).
    pub outbound_bytes: Option<RateSpec>,
    /// Deliver this node's own publications to its own app too.
    pub deliver_own: bool,
    /// How often an origin asks replicas still pending on a tracked event
    /// again (a lost want or report).
    pub confirm_retry: Duration,
    /// Tracked events held at once by an origin (the oldest is dropped).
    pub max_tracked: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            limits: Limits::default(),
            direct_push_max_peers: 64,
            view_min: 5,
            view_max: 16,
            lazy_flush_interval: Duration::from_millis(20),
            graft_timeout: Duration::from_millis(50),
            graft_retry: Duration::from_millis(30),
            parent_protection: Duration::from_millis(500),
            anti_entropy_interval: Duration::from_secs(1),
            repair_budget_bytes: 256 * 1024,
            repair_grace: Duration::from_millis(200),
            retention: Duration::from_secs(30),
            retention_bytes: 8 * 1024 * 1024,
            gap_flush_after: Duration::from_secs(30),
            skew_margin: Duration::from_secs(5),
            bloom: BloomConfig::default(),
            max_out_of_order: 4096,
            origin_idle_ttl: Duration::from_secs(3600),
            config_tombstone_ttl: Duration::from_secs(3600),
            publish_rate: RateSpec::new(50_000, 10_000),
            inbound_frames_per_peer: RateSpec::new(50_000, 10_000),
            inbound_bytes_per_peer: RateSpec::new(64 << 20, 16 << 20),
            outbound_bytes: None,
            deliver_own: false,
            confirm_retry: Duration::from_millis(200),
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid setting {setting}: {reason}")]
/// A setting out of range, and why.
pub struct SettingError {
    /// The setting's name.
    pub setting: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

fn bad(setting: &'static str, reason: impl Into<String>) -> SettingError {
    SettingError {
        setting,
        reason: reason.into(),
    }
}

impl NodeConfig {
    /// Checks every setting's range and their relations; the first problem.
    pub fn validate(&self) -> Result<(), SettingError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every setting out of range, not only the first.
    pub fn problems(&self) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut check = |ok: bool, setting: &'static str, reason: &str| {
            if !ok {
                out.push(bad(setting, reason));
            }
        };
        check(self.view_min > 0, "view_min", "must be at least 1");
        check(
            self.view_max >= self.view_min,
            "view_max",
            "must be at least view_min",
        );
        for (name, d) in [
            ("anti_entropy_interval", self.anti_entropy_interval),
            ("retention", self.retention),
            ("gap_flush_after", self.gap_flush_after),
            ("graft_timeout", self.graft_timeout),
            ("graft_retry", self.graft_retry),
            ("lazy_flush_interval", self.lazy_flush_interval),
            ("confirm_retry", self.confirm_retry),
        ] {
            check(!d.is_zero(), name, "must be greater than zero");
        }
        check(
            !self.bloom.window.is_zero(),
            "dedup_window",
            "must be greater than zero",
        );
        check(
            self.bloom.capacity > 0,
            "dedup_capacity",
            "must be at least 1",
        );
        check(
            self.bloom.fp_target > 0.0 && self.bloom.fp_target < 1.0,
            "dedup_fp_rate",
            "must be between 0 and 1",
        );
        check(self.max_tracked > 0, "max_tracked", "must be at least 1");
        check(
            self.max_out_of_order > 0,
            "max_out_of_order",
            "must be at least 1",
        );
        let max_event = self.limits.max_event_bytes;
        let one_event = format!("must hold at least one event ({max_event} bytes)");
        check(
            self.repair_budget_bytes >= max_event,
            "repair_budget_bytes",
            &one_event,
        );
        check(
            self.retention_bytes >= max_event,
            "retention_bytes",
            &one_event,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(NodeConfig::default().validate(), Ok(()));
    }

    #[test]
    fn invalid_settings_are_named() {
        let c = NodeConfig {
            view_max: 1,
            view_min: 2,
            ..NodeConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().setting, "view_max");
        let c = NodeConfig {
            retention: Duration::ZERO,
            ..NodeConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().setting, "retention");
        let c = NodeConfig {
            repair_budget_bytes: 10,
            ..NodeConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().setting, "repair_budget_bytes");
    }
}

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
        m.zero_series();
        m
    }

    /// Creates every labelled series at zero.
    fn zero_series(&self) {
        for d in Direction::ALL {
            self.frames.with_label_values(&[d.as_str()]);
            self.bytes.with_label_values(&[d.as_str()]);
        }
        for (d, o) in ConnOutcome::ALL {
            self.connections
                .with_label_values(&[d.as_str(), o.as_str()]);
        }
        for reason in REJECT_REASONS {
            self.frames_rejected.with_label_values(&[reason]);
        }
        for reason in DropReason::ALL {
            self.sends_dropped.with_label_values(&[reason.as_str()]);
        }
        for o in ["ok", "failed"] {
            self.key_reloads.with_label_values(&[o]);
        }
    }

    /// Counts one connection outcome.
    pub fn connection(&self, d: Direction, outcome: ConnOutcome) {
        self.connections
            .with_label_values(&[d.as_str(), outcome.as_str()])
            .inc();
    }

    /// Counts one frame of `len` bytes in direction `d`.
    pub fn frame(&self, d: Direction, len: usize) {
        self.frames.with_label_values(&[d.as_str()]).inc();
        self.bytes
            .with_label_values(&[d.as_str()])
            .inc_by(len as u64);
    }

    /// Counts one outbound send dropped.
    pub fn send_dropped(&self, reason: DropReason) {
        self.sends_dropped
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Counts one inbound frame rejected (`reason` from [`REJECT_REASONS`]).
    pub fn rejected(&self, reason: &'static str) {
        self.frames_rejected.with_label_values(&[reason]).inc();
        if matches!(reason, "missing_tag" | "bad_tag") {
            self.auth_failures.inc();
        }
    }
}

/// The way a frame or connection goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// What became of a gossip connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnOutcome {
    Opened,
    Failed,
    Refused,
    /// Inbound: no authentic frame within the handshake deadline.
    HandshakeTimeout,
    /// Inbound: a newer unauthenticated connection from its IP took the slot.
    Evicted,
    /// Inbound: the same peer's newer connection took the slot.
    Replaced,
    /// Outbound: the receiver's hello named another node or failed.
    BadHello,
    /// An open connection that broke: reset, closed under a writer, a
    /// write failed, or given up by the kernel (`--peer-timeout`).
    Lost,
}

impl ConnOutcome {
    /// Every (direction, outcome) series that can occur.
    pub const ALL: [(Direction, ConnOutcome); 12] = {
        use ConnOutcome as O;
        use Direction::{In, Out};
        [
            (In, O::Opened),
            (In, O::Failed),
            (In, O::Refused),
            (In, O::HandshakeTimeout),
            (In, O::Evicted),
            (In, O::Replaced),
            (In, O::Lost),
            (Out, O::Opened),
            (Out, O::Failed),
            (Out, O::Refused),
            (Out, O::BadHello),
            (Out, O::Lost),
        ]
    };

    pub fn as_str(self) -> &'static str {
        match self {
            ConnOutcome::Opened => "opened",
            ConnOutcome::Failed => "failed",
            ConnOutcome::Refused => "refused",
            ConnOutcome::HandshakeTimeout => "handshake_timeout",
            ConnOutcome::Evicted => "evicted",
            ConnOutcome::Replaced => "replaced",
            ConnOutcome::Lost => "lost",
            ConnOutcome::BadHello => "bad_hello",
        }
    }
}

/// Why an outbound send was dropped (anti-entropy repairs it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    QueueFull,
    NoAddress,
    WriteFailed,
    TooLarge,
    Fault,
    /// Confirmation items for a peer whose hello does not list them (a
    /// version from before confirmations, during a rolling upgrade).
    Unsupported,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::QueueFull,
        DropReason::NoAddress,
        DropReason::WriteFailed,
        DropReason::TooLarge,
        DropReason::Fault,
        DropReason::Unsupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::NoAddress => "no_address",
            DropReason::WriteFailed => "write_failed",
            DropReason::TooLarge => "too_large",
            DropReason::Fault => "fault",
            DropReason::Unsupported => "unsupported",
        }
    }
}

/// Every reason an inbound frame can be rejected for: the frame decoder's
/// (`FrameError::reason`), the replay guard's, and the listener's own.
pub const REJECT_REASONS: [&str; 13] = [
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
];

//! Counters the core keeps about itself. Plain numbers, cumulative since
//! start; the sidecar exports them as Prometheus counters and the simulator
//! sums them. Every drop has a field here.

macro_rules! stats {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// Cumulative counts since the node started.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl Stats {
            /// Adds another node's counts to these (for cluster totals).
            pub fn merge(&mut self, other: &Stats) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

stats! {
    /// Events this node published for its app.
    published,
    /// Publishes refused by the publish rate limit (the app got a 429).
    publish_rate_limited,
    /// Publishes refused as invalid or too large.
    publish_rejected,
    frames_in,
    bytes_in,
    /// Sends handed to the transport (it may merge several into one frame).
    frames_out,
    /// Event copies sent to peers (pushes, relays, grafts, repairs).
    events_sent,
    /// Frames dropped by a peer's inbound frame or byte limit.
    frames_rate_limited_in,
    bytes_rate_limited_in,
    /// Items held back by the outbound byte limit (sent later, batched).
    items_deferred_out,
    events_received,
    /// Events from peers that broke a limit or did not decode into a valid body.
    events_invalid,
    duplicates_suppressed,
    /// Bloom "seen" for an event the exact record had not seen.
    bloom_false_positives,
    /// Events too far above the watermark to track; repaired later.
    events_out_of_window,
    /// Invalidations published before this node started (not delivered).
    events_predating_start,
    events_delivered,
    config_applied,
    config_stale,
    config_rejected_too_many_keys,
    ihave_sent,
    graft_sent,
    prune_sent,
    anti_entropy_rounds,
    repairs_sent,
    repairs_received,
    /// Seqs covered without delivery because they predate this node.
    seqs_skipped_predating,
    /// Seqs covered by a flush: never received, no longer recoverable.
    seqs_lost,
    flush_gap_timeout,
    flush_gap_unrecoverable,
    origins_forgotten,
    /// Overlay links refused because the view was full.
    neighbors_refused,
}

//! Counters the core keeps about itself. Plain numbers, cumulative since
//! start; the sidecar exports them as Prometheus counters and the simulator
//! sums them. Every drop has a field here.
//!
//! The macro also generates [`StatField`], one variant per counter, so an
//! exporter can `match` on it: a new counter that nobody exports is a
//! compile error, not a silent gap in `/metrics`.

macro_rules! stats {
    ($($(#[$doc:meta])* $variant:ident => $field:ident),* $(,)?) => {
        /// Cumulative counts since the node started.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[$doc])* pub $field: u64,)*
        }

        /// One counter of [`Stats`].
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum StatField {
            $($(#[$doc])* $variant,)*
        }

        impl StatField {
            /// Every counter, in declaration order.
            pub const ALL: &'static [StatField] = &[$(StatField::$variant,)*];

            /// The field's name in [`Stats`].
            pub fn name(self) -> &'static str {
                match self {
                    $(StatField::$variant => stringify!($field),)*
                }
            }
        }

        impl Stats {
            /// Adds another node's counts to these (for cluster totals).
            pub fn merge(&mut self, other: &Stats) {
                $(self.$field += other.$field;)*
            }

            /// The value of one counter.
            pub fn get(&self, field: StatField) -> u64 {
                match field {
                    $(StatField::$variant => self.$field,)*
                }
            }

            /// Mutable access to one counter (for tests and exporters).
            pub fn get_mut(&mut self, field: StatField) -> &mut u64 {
                match field {
                    $(StatField::$variant => &mut self.$field,)*
                }
            }
        }
    };
}

stats! {
    /// Events this node published for its app.
    Published => published,
    /// Publishes refused by the publish rate limit (the app got a 429).
    PublishRateLimited => publish_rate_limited,
    /// Publishes refused as invalid (the app got a 400).
    PublishInvalid => publish_invalid,
    /// Publishes refused over a size or count limit (the app got a 413).
    PublishTooLarge => publish_too_large,
    /// Deletes of a config key that has no value (the app got a 404).
    PublishNoSuchKey => publish_no_such_key,
    /// Frames from peers admitted by the inbound limits.
    FramesIn => frames_in,
    /// Bytes of those frames.
    BytesIn => bytes_in,
    /// Sends handed to the transport (it may merge several into one frame).
    FramesOut => frames_out,
    /// Event copies sent to peers (pushes, relays, grafts, repairs).
    EventsSent => events_sent,
    /// Frames dropped by a peer's inbound frame or byte limit.
    FramesRateLimitedIn => frames_rate_limited_in,
    /// Bytes of the frames dropped by an inbound limit.
    BytesRateLimitedIn => bytes_rate_limited_in,
    /// Items held back by the outbound byte limit (sent later, batched).
    ItemsDeferredOut => items_deferred_out,
    /// Events received from peers, copies included.
    EventsReceived => events_received,
    /// Events from peers that broke a limit or did not decode into a valid body.
    EventsInvalid => events_invalid,
    /// Received events already seen.
    DuplicatesSuppressed => duplicates_suppressed,
    /// Bloom "seen" for an event the exact record had not seen.
    BloomFalsePositives => bloom_false_positives,
    /// Events too far above the watermark to track; repaired later.
    EventsOutOfWindow => events_out_of_window,
    /// Invalidations published before this node started (not delivered).
    EventsPredatingStart => events_predating_start,
    /// Events handed to the app.
    EventsDelivered => events_delivered,
    /// Config writes applied (newer than what was here).
    ConfigApplied => config_applied,
    /// Config writes not applied: an equal or newer version was here.
    ConfigStale => config_stale,
    /// Replicated config writes refused: the register cap is reached and
    /// the key sorts after every key held.
    ConfigRejectedCap => config_rejected_cap,
    /// Registers evicted to make room under the register cap.
    ConfigEvicted => config_evicted,
    /// Numbers from peers no honest node can produce (a seq, watermark or
    /// range above `MAX_SEQ`); the item is ignored.
    ImplausibleNumbers => implausible_numbers,
    /// Lazy announcements (IHAVE) sent.
    IhaveSent => ihave_sent,
    /// Grafts sent.
    GraftSent => graft_sent,
    /// Prunes sent.
    PruneSent => prune_sent,
    /// Anti-entropy rounds started.
    AntiEntropyRounds => anti_entropy_rounds,
    /// Events sent to fill a peer's gap.
    RepairsSent => repairs_sent,
    /// Events received that filled a gap.
    RepairsReceived => repairs_received,
    /// Seqs covered without delivery because they predate this node.
    SeqsSkippedPredating => seqs_skipped_predating,
    /// Seqs covered by a flush: never received, no longer recoverable.
    SeqsLost => seqs_lost,
    /// Flushes emitted because a gap stayed open too long.
    FlushGapTimeout => flush_gap_timeout,
    /// Flushes emitted because a peer reported missing events as gone.
    FlushGapUnrecoverable => flush_gap_unrecoverable,
    /// Origins forgotten after their peer left.
    OriginsForgotten => origins_forgotten,
    /// Overlay links refused because the view was full.
    NeighborsRefused => neighbors_refused,
    /// Events published with tracking (a publisher may wait for them).
    Tracked => tracked,
    /// Confirmation asks sent to replicas (with the event, and again).
    ConfirmWantsSent => confirm_wants_sent,
    /// Confirmation reports sent to origins that asked.
    ConfirmReportsSent => confirm_reports_sent,
    /// Confirmation reports received from replicas.
    ConfirmReportsReceived => confirm_reports_received,
    /// Confirmation items ignored: about another incarnation of this node,
    /// or an ask naming an origin other than its sender's.
    ConfirmItemsIgnored => confirm_items_ignored,
    /// Tracked events dropped before their time (over `max_tracked`).
    TrackedEvicted => tracked_evicted,
    /// Tracked events forgotten with the retention while still waiting.
    TrackedExpiredWaiting => tracked_expired_waiting,
    /// Outcome ranges forgotten before their time (over the per-origin cap).
    OutcomesEvicted => outcomes_evicted,
}

//! Counters the core keeps about itself. Plain numbers, cumulative since
//! start; the sidecar exports them as Prometheus counters and the simulator
//! sums them. Every drop has a field here.

/// Cumulative counts since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub published: u64,
    pub publish_rate_limited: u64,
    pub publish_rejected: u64,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub frames_rate_limited_in: u64,
    pub bytes_rate_limited_in: u64,
    pub items_deferred_out: u64,
    pub events_received: u64,
    pub events_invalid: u64,
    pub duplicates_suppressed: u64,
    pub bloom_false_positives: u64,
    pub events_out_of_window: u64,
    pub events_predating_start: u64,
    pub events_delivered: u64,
    pub config_applied: u64,
    pub config_stale: u64,
    pub config_rejected_too_many_keys: u64,
    pub ihave_sent: u64,
    pub graft_sent: u64,
    pub prune_sent: u64,
    pub anti_entropy_rounds: u64,
    pub repairs_sent: u64,
    pub repairs_received: u64,
    pub seqs_skipped_predating: u64,
    pub seqs_lost: u64,
    pub flush_gap_timeout: u64,
    pub flush_gap_unrecoverable: u64,
    pub origins_forgotten: u64,
    pub neighbors_refused: u64,
}

//! What a run measured. A "pair" is one (replica, event) where the replica
//! is on another node than the event's origin, was running when the event
//! was published, and is still running at the end (a replica that crashed
//! took its cache with it, and one that started later never cached what
//! the event invalidates).

use std::time::Duration;

use serde::Serialize;

use super::config::SimConfig;
use super::world::World;
use crate::{Stats, Time};

#[derive(Clone, Debug, Serialize, PartialEq)]
/// What one simulation run measured (`hearsay simulate` prints it).
pub struct Report {
    /// Nodes simulated.
    pub nodes: usize,
    /// Events asked for.
    pub events: usize,
    /// Frame loss probability.
    pub loss: f64,
    /// The seed: the same seed gives the same report.
    pub seed: u64,
    /// Events actually published (a publish at a node that is down is not).
    pub published: usize,
    /// (replica, event) pairs that had to be delivered (see the module docs).
    pub pairs: u64,
    /// Pairs delivered.
    pub delivered: u64,
    /// `delivered / pairs`.
    pub delivered_ratio: f64,
    /// Pairs not delivered but covered by a flush of that cache (or all).
    pub flushed: u64,
    /// Pairs neither delivered nor covered by a flush: must be 0.
    pub undelivered: u64,
    /// Second deliveries of an event to the same replica: must be 0.
    pub duplicates: u64,
    /// Frames-with-payload carrying an event, summed, over events × (nodes − 1).
    pub payload_per_event_per_peer: f64,
    /// Frames without payload, per node per event.
    pub control_per_node_per_event: f64,
    /// Bytes sent, per node per event.
    pub bytes_per_node_per_event: f64,
    /// The most hops any last delivery of an event took.
    pub last_delivery_hop_max: u8,
    /// Median time from publish to the last replica's delivery, in ms.
    pub time_to_all_p50_ms: f64,
    /// 99th percentile of that time, in ms.
    pub time_to_all_p99_ms: f64,
    /// Longest of that time, in ms.
    pub time_to_all_max_ms: f64,
    /// Events some pair of which is undelivered (left out of time-to-all).
    pub incomplete_events: usize,
    /// Frames sent.
    pub frames: u64,
    /// Frames lost on the way.
    pub frames_lost: u64,
    /// Grafts sent (tree repairs of a missing eager push).
    pub grafts: u64,
    /// Prunes sent (redundant eager links removed).
    pub prunes: u64,
    /// Repair answers received by anti-entropy.
    pub repairs_received: u64,
    /// Flushes told to apps.
    pub flushes: u64,
    /// Events the bloom filter took for seen when they were not.
    pub bloom_false_positives: u64,
    /// Nodes that crashed (and restarted).
    pub crashes: usize,
    /// Nodes on the small side of the partition.
    pub partitioned_nodes: usize,
    /// Tracked runs: events whose origin learned every replica confirmed.
    pub confirmed: usize,
    /// Tracked runs: median time from publish to the origin's confirmation,
    /// in ms.
    pub confirm_p50_ms: f64,
    /// Tracked runs: 99th percentile of that time, in ms.
    pub confirm_p99_ms: f64,
    /// Tracked runs: confirmation items (asks and reports) sent, per event.
    pub confirm_items_per_event: f64,
    /// Tracked runs: frames that carried only confirmation items, per event
    /// (the rest rode in frames sent anyway).
    pub confirm_frames_per_event: f64,
    /// Virtual time the run covered, in seconds.
    pub virtual_seconds: f64,
    /// Wall-clock time it took, in seconds.
    pub wall_seconds: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Report {
    pub(crate) fn build(
        cfg: &SimConfig,
        world: &World,
        stats: &Stats,
        crashes: usize,
        partitioned_nodes: usize,
        wall: Duration,
    ) -> Report {
        let n = cfg.nodes;
        let a = Accounting::of(world, n);
        let events = world.tracked.len().max(1) as f64;
        let c = &world.counters;
        let virtual_seconds = world.now.since(Time::ZERO).as_secs_f64();
        let mut confirm_times: Vec<f64> = world
            .tracked
            .iter()
            .filter_map(|t| t.confirmed_at.map(|at| ms(at.since(t.published_at))))
            .collect();
        confirm_times.sort_by(f64::total_cmp);
        Report {
            nodes: n,
            events: cfg.events,
            loss: cfg.loss,
            seed: cfg.seed,
            published: world.tracked.len(),
            pairs: a.pairs,
            delivered: a.delivered,
            delivered_ratio: if a.pairs == 0 {
                1.0
            } else {
                a.delivered as f64 / a.pairs as f64
            },
            flushed: a.flushed,
            undelivered: a.undelivered,
            duplicates: c.duplicate_deliveries,
            payload_per_event_per_peer: c.payload_items as f64 / (events * (n - 1) as f64),
            control_per_node_per_event: c.control_frames as f64 / (events * n as f64),
            bytes_per_node_per_event: c.bytes as f64 / (events * n as f64),
            last_delivery_hop_max: a.hop_max,
            time_to_all_p50_ms: percentile(&a.times, 0.50),
            time_to_all_p99_ms: percentile(&a.times, 0.99),
            time_to_all_max_ms: a.times.last().copied().unwrap_or(0.0),
            incomplete_events: a.incomplete,
            frames: c.frames,
            frames_lost: c.frames_lost,
            grafts: stats.graft_sent,
            prunes: stats.prune_sent,
            repairs_received: stats.repairs_received,
            flushes: stats.flush_gap_timeout + stats.flush_gap_unrecoverable,
            bloom_false_positives: stats.bloom_false_positives,
            crashes,
            partitioned_nodes,
            confirmed: confirm_times.len(),
            confirm_p50_ms: percentile(&confirm_times, 0.50),
            confirm_p99_ms: percentile(&confirm_times, 0.99),
            confirm_items_per_event: c.confirm_items as f64 / events,
            confirm_frames_per_event: c.confirm_frames as f64 / events,
            virtual_seconds,
            wall_seconds: wall.as_secs_f64(),
        }
    }
}

/// The promise, checked per (event, node) pair: every node that was up
/// and started before the event got it, or a flush covering it after.
struct Accounting {
    pairs: u64,
    delivered: u64,
    flushed: u64,
    undelivered: u64,
    hop_max: u8,
    /// Time to all, per event every pair of which was delivered or flushed, sorted.
    times: Vec<f64>,
    incomplete: usize,
}

impl Accounting {
    fn of(world: &World, n: usize) -> Accounting {
        let mut a = Accounting {
            pairs: 0,
            delivered: 0,
            flushed: 0,
            undelivered: 0,
            hop_max: 0,
            times: Vec::with_capacity(world.tracked.len()),
            incomplete: 0,
        };
        for t in &world.tracked {
            let mut last = Some(t.published_at);
            for node in 0..n {
                if node == t.origin_node || !world.up[node] || world.started[node] > t.published_at
                {
                    continue;
                }
                a.pairs += 1;
                let inc = world.incarnation[node];
                if let Some((i, at, hop)) = t.delivered[node]
                    && i == inc
                {
                    a.delivered += 1;
                    a.hop_max = a.hop_max.max(hop);
                    last = last.map(|l| l.max(at));
                    continue;
                }
                let flush = world.flushes[node].iter().find(|f| {
                    f.incarnation == inc
                        && f.at >= t.published_at
                        && f.cache.as_deref().is_none_or(|c| c == t.cache)
                });
                match flush {
                    Some(f) => {
                        a.flushed += 1;
                        last = last.map(|l| l.max(f.at));
                    }
                    None => {
                        a.undelivered += 1;
                        last = None;
                    }
                }
            }
            match last {
                Some(l) => a.times.push(ms(l.since(t.published_at))),
                None => a.incomplete += 1,
            }
        }
        a.times.sort_by(f64::total_cmp);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}

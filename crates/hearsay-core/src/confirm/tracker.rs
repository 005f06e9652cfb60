//! The origin's half of confirmations: for each event published with
//! tracking, the replicas that were members then and where each stands.
//!
//! Bounded: at most `max` events are tracked (the oldest is dropped to
//! make room, counted), and each for `keep` after it was published.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Confirmation, Outcome, ReplicaState, ReplicaView};
use crate::event::{EventId, Origin};
use crate::membership::PeerId;
use crate::message::SettledRange;
use crate::time::Time;

#[derive(Debug)]
struct Tracked {
    published_at: Time,
    done_at: Option<Time>,
    /// Sorted by peer id, for lookups by the reporting peer.
    replicas: Vec<(PeerId, Arc<str>, ReplicaState)>,
    pending: usize,
}

impl Tracked {
    fn set(&mut self, peer: PeerId, state: ReplicaState, now: Time) -> bool {
        let Ok(i) = self.replicas.binary_search_by_key(&peer, |r| r.0) else {
            return false;
        };
        if self.replicas[i].2 != ReplicaState::Pending {
            return false;
        }
        self.replicas[i].2 = state;
        self.pending -= 1;
        if self.done_at.is_none() && (self.pending == 0 || state == ReplicaState::Rejected) {
            self.done_at = Some(now);
            return true;
        }
        false
    }
}

/// What a report or a membership change finished.
pub type Finished = Vec<EventId>;

/// The events this origin tracks.
#[derive(Debug)]
pub struct Tracker {
    origin: Origin,
    events: BTreeMap<u64, Tracked>,
    keep: Duration,
    max: usize,
    /// Tracked events dropped before their time to stay under `max`.
    pub evicted: u64,
}

impl Tracker {
    /// Tracks at most `max` events of `origin`, each for `keep`.
    pub fn new(origin: Origin, keep: Duration, max: usize) -> Tracker {
        Tracker {
            origin,
            events: BTreeMap::new(),
            keep,
            max: max.max(1),
            evicted: 0,
        }
    }

    /// Starts tracking `seq`, published at `now`, for these replicas.
    /// Returns whether it is already finished (nobody to wait for).
    pub fn track(
        &mut self,
        seq: u64,
        now: Time,
        replicas: impl IntoIterator<Item = (PeerId, Arc<str>)>,
    ) -> bool {
        let mut replicas: Vec<(PeerId, Arc<str>, ReplicaState)> = replicas
            .into_iter()
            .map(|(p, n)| (p, n, ReplicaState::Pending))
            .collect();
        replicas.sort_unstable_by_key(|r| r.0);
        replicas.dedup_by_key(|r| r.0);
        let pending = replicas.len();
        while self.events.len() >= self.max {
            self.events.pop_first();
            self.evicted += 1;
        }
        let done_at = (pending == 0).then_some(now);
        self.events.insert(
            seq,
            Tracked {
                published_at: now,
                done_at,
                replicas,
                pending,
            },
        );
        done_at.is_some()
    }

    /// A replica's report (or this node's own app's outcomes).
    pub fn report(&mut self, from: PeerId, ranges: &[SettledRange], now: Time) -> Finished {
        let mut finished = Vec::new();
        for r in ranges {
            for (&seq, t) in self.events.range_mut(r.first..=r.last) {
                if t.set(from, r.outcome.state(), now) {
                    finished.push(EventId {
                        origin: self.origin,
                        seq,
                    });
                }
            }
        }
        finished
    }

    /// These peers left the membership: they no longer hold any wait up.
    pub fn departed(&mut self, left: &[PeerId], now: Time) -> Finished {
        let mut finished = Vec::new();
        for (&seq, t) in self.events.iter_mut() {
            for p in left {
                if t.set(*p, ReplicaState::Departed, now) {
                    finished.push(EventId {
                        origin: self.origin,
                        seq,
                    });
                }
            }
        }
        finished
    }

    /// For each replica still pending on some event: the range of seqs to
    /// ask it about again.
    pub fn pending_asks(&self) -> BTreeMap<PeerId, (u64, u64)> {
        let mut asks: BTreeMap<PeerId, (u64, u64)> = BTreeMap::new();
        for (&seq, t) in &self.events {
            if t.done_at.is_some() {
                continue;
            }
            for (p, _, s) in &t.replicas {
                if *s == ReplicaState::Pending {
                    let e = asks.entry(*p).or_insert((seq, seq));
                    e.0 = e.0.min(seq);
                    e.1 = e.1.max(seq);
                }
            }
        }
        asks
    }

    /// Whether some tracked event still waits for a replica.
    pub fn waiting(&self) -> bool {
        self.events.values().any(|t| t.done_at.is_none())
    }

    /// The confirmation of `seq`, while it is tracked.
    pub fn get(&self, seq: u64) -> Option<Confirmation> {
        let t = self.events.get(&seq)?;
        Some(Confirmation {
            id: EventId {
                origin: self.origin,
                seq,
            },
            published_at: t.published_at,
            done_at: t.done_at,
            replicas: t
                .replicas
                .iter()
                .map(|(peer, name, state)| ReplicaView {
                    peer: *peer,
                    name: name.clone(),
                    state: *state,
                })
                .collect(),
        })
    }

    /// Forgets events published longer than `keep` ago; returns how many
    /// were still waiting.
    pub fn prune(&mut self, now: Time) -> u64 {
        let keep = self.keep;
        let mut unfinished = 0;
        self.events.retain(|_, t| {
            let stay = now.since(t.published_at) <= keep;
            if !stay && t.done_at.is_none() {
                unfinished += 1;
            }
            stay
        });
        unfinished
    }

    /// Events tracked now.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// No event is tracked.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Reports `outcome` for a single seq, as a range.
pub fn single(seq: u64, outcome: Outcome) -> SettledRange {
    SettledRange {
        first: seq,
        last: seq,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: u64) -> Vec<(PeerId, Arc<str>)> {
        (1..=n)
            .map(|i| (PeerId(i), Arc::from(format!("p{i}"))))
            .collect()
    }

    fn states(t: &Tracker, seq: u64) -> Vec<&'static str> {
        t.get(seq)
            .unwrap()
            .replicas
            .iter()
            .map(|r| r.state.as_str())
            .collect()
    }

    #[test]
    fn an_event_is_confirmed_when_every_replica_settled() {
        let mut t = Tracker::new(Origin(9), Duration::from_secs(30), 100);
        assert!(!t.track(5, Time::ZERO, peers(3)));
        let at = Time::from_millis(3);
        let acked = single(5, Outcome::Acknowledged);
        assert!(t.report(PeerId(1), &[acked], at).is_empty());
        assert!(
            t.report(PeerId(2), &[single(5, Outcome::Flushed)], at)
                .is_empty()
        );
        assert_eq!(
            t.pending_asks().into_iter().collect::<Vec<_>>(),
            [(PeerId(3), (5, 5))]
        );
        let done = t.report(PeerId(3), &[acked], at);
        assert_eq!(
            done,
            [EventId {
                origin: Origin(9),
                seq: 5
            }]
        );
        let c = t.get(5).unwrap();
        assert!(c.confirmed());
        assert_eq!(c.done_at, Some(at));
        assert_eq!(states(&t, 5), ["acknowledged", "flushed", "acknowledged"]);
        assert!(!t.waiting());
    }

    #[test]
    fn a_rejection_finishes_the_wait_unconfirmed_and_departure_unblocks() {
        let mut t = Tracker::new(Origin(9), Duration::from_secs(30), 100);
        t.track(1, Time::ZERO, peers(2));
        t.track(2, Time::ZERO, peers(2));
        let done = t.report(PeerId(1), &[single(1, Outcome::Rejected)], Time::ZERO);
        assert_eq!(done.len(), 1);
        assert!(!t.get(1).unwrap().confirmed());
        assert!(t.get(1).unwrap().finished());
        t.report(PeerId(1), &[single(2, Outcome::Acknowledged)], Time::ZERO);
        let done = t.departed(&[PeerId(2)], Time::ZERO);
        assert_eq!(
            done,
            [EventId {
                origin: Origin(9),
                seq: 2
            }]
        );
        assert_eq!(states(&t, 2), ["acknowledged", "departed"]);
        assert!(t.get(2).unwrap().confirmed());
    }

    #[test]
    fn tracking_is_bounded_by_count_and_age() {
        let mut t = Tracker::new(Origin(9), Duration::from_secs(1), 2);
        for seq in 1..=3 {
            t.track(seq, Time::ZERO, peers(1));
        }
        assert_eq!(t.evicted, 1);
        assert!(t.get(1).is_none());
        assert_eq!(t.prune(Time::from_millis(1_500)), 2);
        assert!(t.is_empty());
        assert!(t.track(4, Time::ZERO, peers(0)), "no one to wait for");
    }
}

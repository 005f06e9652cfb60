//! A replica's half of confirmations: what became of each origin's events
//! at this replica's app, and which origins asked to be told.
//!
//! Outcomes are kept as ranges of seqs (a run of acknowledged events is one
//! entry), for `keep` after they were recorded and at most
//! `max_ranges` per origin; the first outcome recorded for a seq stands
//! (an event flushed and then delivered again stays flushed). An origin's
//! want lasts `keep` from its last ask.

use std::collections::BTreeMap;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::Outcome;
use crate::event::Origin;
use crate::membership::PeerId;
use crate::message::SettledRange;
use crate::time::Time;

/// A range's entry: its last seq, outcome, and when it last grew.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Span {
    last: u64,
    outcome: Outcome,
    at: Time,
}

/// An origin's ask: report seqs `from..=through` to `reply_to`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Want {
    reply_to: PeerId,
    from: u64,
    through: u64,
    at: Time,
}

#[derive(Debug, Default)]
struct OriginOutcomes {
    /// First seq → span; spans do not overlap.
    spans: BTreeMap<u64, Span>,
    want: Option<Want>,
}

/// Most ranges one report carries; the rest goes in the next.
pub const MAX_REPORT_RANGES: usize = 1024;

/// Every origin's outcomes at this replica.
#[derive(Debug)]
pub struct Outcomes {
    origins: FxHashMap<Origin, OriginOutcomes>,
    keep: Duration,
    max_ranges: usize,
    /// Ranges forgotten to stay under `max_ranges` before their time.
    pub evicted: u64,
}

impl Outcomes {
    /// Keeps outcomes and wants for `keep`, at most `max_ranges` ranges per
    /// origin.
    pub fn new(keep: Duration, max_ranges: usize) -> Outcomes {
        Outcomes {
            origins: FxHashMap::default(),
            keep,
            max_ranges: max_ranges.max(1),
            evicted: 0,
        }
    }

    /// Records that seqs `first..=last` of `origin` settled with `outcome`
    /// (those not settled before). Returns a report to send when the origin
    /// wants some of them.
    pub fn record(
        &mut self,
        origin: Origin,
        first: u64,
        last: u64,
        outcome: Outcome,
        now: Time,
    ) -> Option<(PeerId, Vec<SettledRange>)> {
        if first > last {
            return None;
        }
        let o = self.origins.entry(origin).or_default();
        let fresh = fill(&mut o.spans, first, last, outcome, now);
        while o.spans.len() > self.max_ranges {
            o.spans.pop_first();
            self.evicted += 1;
        }
        let want = o.want?;
        let wanted: Vec<SettledRange> = fresh
            .into_iter()
            .filter_map(|r| clip(r, want.from, want.through))
            .collect();
        (!wanted.is_empty()).then_some((want.reply_to, wanted))
    }

    /// `origin` (at peer `reply_to`) asks about its seqs `from..=through`:
    /// what is known now, in ranges; later outcomes are reported as they
    /// are recorded.
    pub fn want(
        &mut self,
        origin: Origin,
        from: u64,
        through: u64,
        reply_to: PeerId,
        now: Time,
    ) -> Vec<SettledRange> {
        let o = self.origins.entry(origin).or_default();
        let want = match o.want {
            // A later ask widens the earlier one.
            Some(w) if w.reply_to == reply_to => Want {
                reply_to,
                from: w.from.min(from),
                through: w.through.max(through),
                at: now,
            },
            _ => Want {
                reply_to,
                from,
                through,
                at: now,
            },
        };
        o.want = Some(want);
        let start = o
            .spans
            .range(..=from)
            .next_back()
            .map_or(from, |(first, _)| *first);
        o.spans
            .range(start..=through)
            .filter_map(|(&first, s)| {
                clip(
                    SettledRange {
                        first,
                        last: s.last,
                        outcome: s.outcome,
                    },
                    from,
                    through,
                )
            })
            .take(MAX_REPORT_RANGES)
            .collect()
    }

    /// Forgets outcomes and wants older than `keep`, and origins with
    /// neither.
    pub fn prune(&mut self, now: Time) {
        let keep = self.keep;
        self.origins.retain(|_, o| {
            o.spans.retain(|_, s| now.since(s.at) <= keep);
            if o.want.is_some_and(|w| now.since(w.at) > keep) {
                o.want = None;
            }
            !o.spans.is_empty() || o.want.is_some()
        });
    }

    /// Origins with outcomes or a want.
    pub fn origins(&self) -> usize {
        self.origins.len()
    }
}

/// The part of `r` within `from..=through`.
fn clip(r: SettledRange, from: u64, through: u64) -> Option<SettledRange> {
    let first = r.first.max(from);
    let last = r.last.min(through);
    (first <= last).then_some(SettledRange {
        first,
        last,
        outcome: r.outcome,
    })
}

/// Fills the seqs of `first..=last` that no span covers with `outcome`,
/// merging with neighbours of the same outcome; returns what was filled.
fn fill(
    spans: &mut BTreeMap<u64, Span>,
    first: u64,
    last: u64,
    outcome: Outcome,
    now: Time,
) -> Vec<SettledRange> {
    let mut gaps = Vec::new();
    let mut cursor = first;
    // A span starting before `first` may cover its start.
    if let Some((_, s)) = spans.range(..first).next_back()
        && s.last >= first
    {
        cursor = s.last.saturating_add(1);
    }
    let inside: Vec<(u64, u64)> = spans
        .range(first..=last)
        .map(|(&f, s)| (f, s.last))
        .collect();
    for (f, l) in inside {
        if cursor > last {
            break;
        }
        if f > cursor {
            gaps.push((cursor, f - 1));
        }
        cursor = cursor.max(l.saturating_add(1));
    }
    if cursor <= last && cursor >= first {
        gaps.push((cursor, last));
    }
    for &(f, l) in &gaps {
        insert_merged(spans, f, l, outcome, now);
    }
    gaps.into_iter()
        .map(|(first, last)| SettledRange {
            first,
            last,
            outcome,
        })
        .collect()
}

/// Inserts a span over free seqs, merged with same-outcome neighbours.
fn insert_merged(
    spans: &mut BTreeMap<u64, Span>,
    first: u64,
    last: u64,
    outcome: Outcome,
    now: Time,
) {
    let mut start = first;
    let mut end = last;
    if let Some((&pf, p)) = spans.range(..first).next_back()
        && p.outcome == outcome
        && p.last.checked_add(1) == Some(first)
    {
        start = pf;
        spans.remove(&pf);
    }
    if let Some(next) = last.checked_add(1)
        && let Some(n) = spans.get(&next).copied()
        && n.outcome == outcome
    {
        end = n.last;
        spans.remove(&next);
    }
    spans.insert(
        start,
        Span {
            last: end,
            outcome,
            at: now,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: Origin = Origin(7);
    const ASKER: PeerId = PeerId(3);

    fn r(first: u64, last: u64, outcome: Outcome) -> SettledRange {
        SettledRange {
            first,
            last,
            outcome,
        }
    }

    #[test]
    fn a_run_of_acknowledgements_is_one_range() {
        let mut o = Outcomes::new(Duration::from_secs(30), 100);
        for seq in 1..=1000 {
            o.record(O, seq, seq, Outcome::Acknowledged, Time::ZERO);
        }
        assert_eq!(
            o.want(O, 1, 2000, ASKER, Time::ZERO),
            [r(1, 1000, Outcome::Acknowledged)]
        );
    }

    #[test]
    fn the_first_outcome_of_a_seq_stands_and_gaps_are_filled() {
        let mut o = Outcomes::new(Duration::from_secs(30), 100);
        o.record(O, 3, 4, Outcome::Flushed, Time::ZERO);
        o.record(O, 1, 6, Outcome::Acknowledged, Time::ZERO);
        o.record(O, 9, 9, Outcome::Rejected, Time::ZERO);
        assert_eq!(
            o.want(O, 1, 10, ASKER, Time::ZERO),
            [
                r(1, 2, Outcome::Acknowledged),
                r(3, 4, Outcome::Flushed),
                r(5, 6, Outcome::Acknowledged),
                r(9, 9, Outcome::Rejected),
            ]
        );
        assert_eq!(
            o.want(O, 4, 5, ASKER, Time::ZERO),
            [r(4, 4, Outcome::Flushed), r(5, 5, Outcome::Acknowledged)],
            "clipped to what is asked"
        );
    }

    #[test]
    fn an_origin_that_asked_is_told_of_later_outcomes_it_wants() {
        let mut o = Outcomes::new(Duration::from_secs(30), 100);
        assert!(
            o.record(O, 1, 1, Outcome::Acknowledged, Time::ZERO)
                .is_none()
        );
        assert_eq!(o.want(O, 2, 5, ASKER, Time::ZERO), []);
        let (to, ranges) = o
            .record(O, 1, 3, Outcome::Acknowledged, Time::ZERO)
            .unwrap();
        assert_eq!(to, ASKER);
        assert_eq!(ranges, [r(2, 3, Outcome::Acknowledged)]);
        assert!(
            o.record(O, 9, 9, Outcome::Acknowledged, Time::ZERO)
                .is_none(),
            "not wanted"
        );
        assert!(
            o.record(O, 2, 3, Outcome::Flushed, Time::ZERO).is_none(),
            "already settled: nothing new"
        );
    }

    #[test]
    fn outcomes_and_wants_are_forgotten_with_age_and_count() {
        let mut o = Outcomes::new(Duration::from_secs(1), 2);
        o.record(O, 1, 1, Outcome::Acknowledged, Time::ZERO);
        o.record(O, 3, 3, Outcome::Acknowledged, Time::ZERO);
        o.record(O, 5, 5, Outcome::Acknowledged, Time::ZERO);
        assert_eq!(o.evicted, 1);
        assert_eq!(o.want(O, 1, 5, ASKER, Time::ZERO).len(), 2);
        o.prune(Time::from_millis(2_000));
        assert_eq!(o.origins(), 0);
    }
}

//! Confirmations at the node (see `confirm`): tracking a publish, asking
//! replicas beside the event and again while they are pending, answering
//! asks, and taking in what the driver says its app settled.

use std::sync::Arc;

use super::Node;
use crate::confirm::{Confirmation, Outcome};
use crate::event::{Event, EventId, Origin};
use crate::membership::PeerId;
use crate::message::{ConfirmReport, ConfirmWant, Item, SettledRange};
use crate::records::MAX_SEQ;
use crate::runtime::{Runtime, Timer};
use crate::time::Time;

/// What the driver says its app settled: seqs `first..=last` of `origin`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// Whose events.
    pub origin: Origin,
    /// The seqs and what became of them.
    pub range: SettledRange,
}

impl Settled {
    /// One event's outcome.
    pub fn event(id: EventId, outcome: Outcome) -> Settled {
        Settled {
            origin: id.origin,
            range: SettledRange {
                first: id.seq,
                last: id.seq,
                outcome,
            },
        }
    }
}

impl Node {
    /// Tracks the next local publish or config write, so that a publisher
    /// can wait for its confirmation (see [`Node::confirmation`]).
    pub fn track_next(&mut self) {
        self.track_next = true;
    }

    /// The confirmation of a tracked event this node published, while it
    /// is tracked (at least the retention).
    pub fn confirmation(&self, id: EventId) -> Option<Confirmation> {
        if id.origin != self.origin {
            return None;
        }
        self.tracker.get(id.seq)
    }

    /// Tracked events held now.
    pub fn tracked_len(&self) -> usize {
        self.tracker.len()
    }

    /// Starts tracking a local event: every member now but this node (and
    /// this node too when its own app gets its events) must confirm. Each
    /// other member is asked beside the event it is being sent.
    pub(super) fn start_tracking<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        event: &Arc<Event>,
        rt: &mut R,
    ) {
        self.stats.tracked += 1;
        let members = self.members.clone();
        let me = self.me;
        let own = self.cfg.deliver_own;
        let replicas = members.ids().iter().filter(|&&p| p != me || own).map(|&p| {
            (
                p,
                members
                    .get(p)
                    .map_or_else(|| Arc::from(""), |m| m.name.clone()),
            )
        });
        let seq = event.id.seq;
        if self.tracker.track(seq, now, replicas) {
            rt.confirmed(event.id);
        }
        let want = ConfirmWant {
            origin: self.origin,
            from: seq,
            through: seq,
        };
        for &p in members.ids() {
            if p != me {
                self.stats.confirm_wants_sent += 1;
                self.queue(p, Item::ConfirmWant(want));
            }
        }
        self.arm_ask(now, rt);
    }

    fn arm_ask<R: Runtime + ?Sized>(&mut self, now: Time, rt: &mut R) {
        if !self.ask_armed && self.tracker.waiting() {
            self.ask_armed = true;
            rt.schedule(now + self.cfg.confirm_retry, Timer::AskPendingReplicas);
        }
    }

    /// The retry timer: asks every replica still pending again, one ask
    /// covering all its pending seqs.
    pub(super) fn ask_pending<R: Runtime + ?Sized>(&mut self, now: Time, rt: &mut R) {
        self.ask_armed = false;
        for (peer, (from, through)) in self.tracker.pending_asks() {
            if peer == self.me || self.members.get(peer).is_none() {
                continue;
            }
            self.stats.confirm_wants_sent += 1;
            let want = ConfirmWant {
                origin: self.origin,
                from,
                through,
            };
            self.queue(peer, Item::ConfirmWant(want));
        }
        self.arm_ask(now, rt);
    }

    /// An origin asks what became of its events here.
    pub(super) fn on_confirm_want(
        &mut self,
        now: Time,
        from: PeerId,
        sender_origin: Origin,
        w: ConfirmWant,
    ) {
        if w.origin != sender_origin || w.origin == self.origin {
            self.stats.confirm_items_ignored += 1;
            return;
        }
        if w.through > MAX_SEQ {
            self.stats.implausible_numbers += 1;
            return;
        }
        let known = self.outcomes.want(w.origin, w.from, w.through, from, now);
        self.report(from, w.origin, known);
    }

    fn report(&mut self, to: PeerId, origin: Origin, ranges: Vec<SettledRange>) {
        if ranges.is_empty() {
            return;
        }
        self.stats.confirm_reports_sent += 1;
        self.queue(to, Item::ConfirmReport(ConfirmReport { origin, ranges }));
    }

    /// A replica says what became of this node's events there.
    pub(super) fn on_confirm_report<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        from: PeerId,
        r: &ConfirmReport,
        rt: &mut R,
    ) {
        if r.origin != self.origin {
            // About an earlier incarnation of this node.
            self.stats.confirm_items_ignored += 1;
            return;
        }
        self.stats.confirm_reports_received += 1;
        for id in self.tracker.report(from, &r.ranges, now) {
            rt.confirmed(id);
        }
    }

    /// What this node's app settled, as its driver learned it: kept for
    /// the origins' asks, reported to those that asked, and for this
    /// node's own events (with `deliver_own`), taken as its own report.
    pub fn settled<R: Runtime + ?Sized>(&mut self, now: Time, items: &[Settled], rt: &mut R) {
        // One report per asking origin for the whole call.
        let mut reports: Vec<(PeerId, Origin, Vec<SettledRange>)> = Vec::new();
        for s in items {
            if s.origin == self.origin {
                for id in self.tracker.report(self.me, &[s.range], now) {
                    rt.confirmed(id);
                }
                continue;
            }
            let r = s.range;
            let Some((to, ranges)) = self
                .outcomes
                .record(s.origin, r.first, r.last, r.outcome, now)
            else {
                continue;
            };
            match reports
                .iter_mut()
                .find(|(p, o, _)| *p == to && *o == s.origin)
            {
                Some((_, _, all)) => all.extend(ranges),
                None => reports.push((to, s.origin, ranges)),
            }
        }
        for (to, origin, ranges) in reports {
            self.report(to, origin, merge_ranges(ranges));
        }
        self.finish(now, rt);
    }

    /// Replicas that left no longer hold any wait up.
    pub(super) fn confirm_departed<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        left: &[PeerId],
        rt: &mut R,
    ) {
        if left.is_empty() || self.tracker.is_empty() {
            return;
        }
        for id in self.tracker.departed(left, now) {
            rt.confirmed(id);
        }
    }

    /// On the housekeeping tick: forget old tracked events and outcomes.
    pub(super) fn confirm_housekeeping(&mut self, now: Time) {
        self.stats.tracked_expired_waiting += self.tracker.prune(now);
        self.outcomes.prune(now);
        self.stats.tracked_evicted = self.tracker.evicted;
        self.stats.outcomes_evicted = self.outcomes.evicted;
    }
}

/// Sorts ranges and joins neighbours with the same outcome.
fn merge_ranges(mut ranges: Vec<SettledRange>) -> Vec<SettledRange> {
    ranges.sort_unstable_by_key(|r| r.first);
    let mut out: Vec<SettledRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(p) if p.outcome == r.outcome && p.last.checked_add(1) == Some(r.first) => {
                p.last = r.last;
            }
            _ => out.push(r),
        }
    }
    out
}

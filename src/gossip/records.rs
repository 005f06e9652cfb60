//! Per-origin sequence records: the exact half of dedup.
//!
//! For each origin a node keeps the contiguous watermark (every seq up to it
//! was received or deliberately covered) and the set of seqs received above
//! it. This is what anti-entropy digests carry, what repair requests are
//! decided on, and where a gap shows: a seq known to exist above the
//! watermark that has not arrived.

use std::collections::BTreeSet;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::event::Origin;
use super::membership::PeerId;
use super::message::DigestEntry;
use super::time::Time;

/// What happened when a seq was marked received.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    New,
    Duplicate,
    /// Too far above the watermark to track; the event is refused now and
    /// comes back through anti-entropy once the watermark has moved up.
    OutOfWindow,
}

#[derive(Clone, Debug, Default)]
pub struct SeqRecord {
    watermark: u64,
    above: BTreeSet<u64>,
    known_max: u64,
    gap_since: Option<Time>,
    member: Option<PeerId>,
    retired_at: Option<Time>,
    last_active: Time,
}

impl SeqRecord {
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// The highest seq this node knows to exist for the origin.
    pub fn known_max(&self) -> u64 {
        self.known_max
    }

    pub fn member(&self) -> Option<PeerId> {
        self.member
    }

    pub fn is_seen(&self, seq: u64) -> bool {
        seq <= self.watermark || self.above.contains(&seq)
    }

    pub fn mark(&mut self, seq: u64, now: Time, max_out_of_order: usize) -> Mark {
        self.last_active = now;
        if self.is_seen(seq) {
            return Mark::Duplicate;
        }
        if seq == self.watermark + 1 {
            self.watermark = seq;
            while self.above.remove(&(self.watermark + 1)) {
                self.watermark += 1;
            }
            self.known_max = self.known_max.max(seq);
            self.refresh_gap(now, true);
            return Mark::New;
        }
        if self.above.len() >= max_out_of_order {
            self.note_exists(seq, now);
            return Mark::OutOfWindow;
        }
        self.above.insert(seq);
        self.known_max = self.known_max.max(seq);
        self.refresh_gap(now, false);
        Mark::New
    }

    /// Learned (from an announcement or a digest) that `seq` exists.
    pub fn note_exists(&mut self, seq: u64, now: Time) {
        self.last_active = now;
        if seq > self.known_max {
            self.known_max = seq;
        }
        self.refresh_gap(now, false);
    }

    /// Covers every seq up to `seq` (a flush or a skip), whether received
    /// or not. Returns how many seqs were covered without being received.
    pub fn cover_through(&mut self, seq: u64, now: Time) -> u64 {
        if seq <= self.watermark {
            return 0;
        }
        let received = self.above.range(..=seq).count() as u64;
        let covered = seq - self.watermark - received;
        self.above = self.above.split_off(&(seq + 1));
        self.watermark = seq;
        while self.above.remove(&(self.watermark + 1)) {
            self.watermark += 1;
        }
        self.known_max = self.known_max.max(seq);
        self.refresh_gap(now, true);
        covered
    }

    /// How long the lowest missing seq has been known to be missing.
    pub fn gap_age(&self, now: Time) -> Option<Duration> {
        self.gap_since.map(|t| now.since(t))
    }

    /// Keeps `gap_since` true to its meaning: set while some seq at or
    /// below `known_max` is missing, restarted whenever the watermark moved
    /// (the lowest gap is then a different one).
    fn refresh_gap(&mut self, now: Time, watermark_moved: bool) {
        if self.known_max <= self.watermark {
            self.gap_since = None;
        } else if watermark_moved || self.gap_since.is_none() {
            self.gap_since = Some(now);
        }
    }
}

/// All origins this node knows, and which peer owns each.
#[derive(Debug, Default)]
pub struct Records {
    map: FxHashMap<Origin, SeqRecord>,
    current_origin_of: FxHashMap<PeerId, Origin>,
}

impl Records {
    pub fn get(&self, origin: Origin) -> Option<&SeqRecord> {
        self.map.get(&origin)
    }

    pub fn entry(&mut self, origin: Origin, now: Time) -> &mut SeqRecord {
        self.map.entry(origin).or_insert_with(|| SeqRecord {
            last_active: now,
            ..SeqRecord::default()
        })
    }

    pub fn is_seen(&self, origin: Origin, seq: u64) -> bool {
        self.map.get(&origin).is_some_and(|r| r.is_seen(seq))
    }

    pub fn watermark(&self, origin: Origin) -> u64 {
        self.map.get(&origin).map_or(0, |r| r.watermark)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records that `origin` belongs to `member`. When a member shows up with
    /// a new origin (it restarted) its previous origin is retired. Returns
    /// the retired origin, if any.
    pub fn set_member(&mut self, origin: Origin, member: PeerId, now: Time) -> Option<Origin> {
        let previous = self.current_origin_of.insert(member, origin);
        let rec = self.entry(origin, now);
        rec.member = Some(member);
        rec.retired_at = None;
        match previous {
            Some(old) if old != origin => {
                if let Some(r) = self.map.get_mut(&old) {
                    r.retired_at.get_or_insert(now);
                }
                Some(old)
            }
            _ => None,
        }
    }

    /// Notes an origin's owner learned second-hand (from a digest), without
    /// overriding what the owner itself told us.
    pub fn learn_member(&mut self, origin: Origin, member: PeerId, now: Time) {
        if let Some(r) = self.map.get_mut(&origin)
            && r.member.is_none()
        {
            r.member = Some(member);
            r.last_active = now;
        }
    }

    /// The member left the membership: its origins start their retention
    /// countdown.
    pub fn retire_member(&mut self, member: PeerId, now: Time) {
        for r in self.map.values_mut() {
            if r.member == Some(member) {
                r.retired_at.get_or_insert(now);
            }
        }
        self.current_origin_of.remove(&member);
    }

    /// The member came back (a flapping discovery): keep its current origin.
    pub fn unretire_member(&mut self, member: PeerId) {
        for r in self.map.values_mut() {
            if r.member == Some(member) {
                r.retired_at = None;
            }
        }
    }

    /// Forgets origins retired longer than `retention` ago, and origins
    /// whose owner is unknown that have been idle past `idle_ttl`. Never
    /// forgets `keep` (the node's own origin). Returns what was forgotten.
    pub fn forget_expired(
        &mut self,
        now: Time,
        retention: Duration,
        idle_ttl: Duration,
        keep: Origin,
    ) -> Vec<Origin> {
        let mut gone: Vec<Origin> = self
            .map
            .iter()
            .filter(|(o, r)| {
                **o != keep
                    && match (r.retired_at, r.member) {
                        (Some(t), _) => now.since(t) >= retention,
                        (None, None) => now.since(r.last_active) >= idle_ttl,
                        (None, Some(_)) => false,
                    }
            })
            .map(|(o, _)| *o)
            .collect();
        gone.sort_unstable();
        for o in &gone {
            self.map.remove(o);
        }
        gone
    }

    /// Origins whose lowest gap is older than `age`, in a stable order.
    pub fn gaps_older_than(&self, now: Time, age: Duration) -> Vec<Origin> {
        let mut v: Vec<Origin> = self
            .map
            .iter()
            .filter(|(_, r)| r.gap_age(now).is_some_and(|a| a >= age))
            .map(|(o, _)| *o)
            .collect();
        v.sort_unstable();
        v
    }

    /// The digest lines for every known origin, in a stable order.
    pub fn digest_entries(&self) -> Vec<DigestEntry> {
        let mut v: Vec<DigestEntry> = self
            .map
            .iter()
            .map(|(o, r)| DigestEntry {
                origin: *o,
                member: r.member,
                watermark: r.watermark,
            })
            .collect();
        v.sort_unstable_by_key(|e| e.origin);
        v
    }

    pub fn origins(&self) -> impl Iterator<Item = (Origin, &SeqRecord)> {
        self.map.iter().map(|(o, r)| (*o, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Time = Time::from_millis(1000);

    #[test]
    fn in_order_seqs_advance_the_watermark() {
        let mut r = SeqRecord::default();
        for s in 1..=3 {
            assert_eq!(r.mark(s, T0, 16), Mark::New);
        }
        assert_eq!(r.watermark(), 3);
        assert_eq!(r.mark(2, T0, 16), Mark::Duplicate);
        assert_eq!(r.gap_age(T0), None);
    }

    #[test]
    fn an_out_of_order_seq_opens_a_gap_that_closes_when_filled() {
        let mut r = SeqRecord::default();
        r.mark(1, T0, 16);
        assert_eq!(r.mark(3, T0, 16), Mark::New);
        assert!(r.is_seen(3) && !r.is_seen(2));
        let later = T0 + Duration::from_secs(2);
        assert_eq!(r.gap_age(later), Some(Duration::from_secs(2)));
        assert_eq!(r.mark(2, later, 16), Mark::New);
        assert_eq!(r.watermark(), 3);
        assert_eq!(r.gap_age(later), None);
    }

    #[test]
    fn the_out_of_order_window_is_bounded() {
        let mut r = SeqRecord::default();
        assert_eq!(r.mark(5, T0, 2), Mark::New);
        assert_eq!(r.mark(6, T0, 2), Mark::New);
        assert_eq!(r.mark(9, T0, 2), Mark::OutOfWindow);
        assert!(!r.is_seen(9));
        assert_eq!(r.known_max(), 9, "a refused seq still counts as known");
    }

    #[test]
    fn covering_through_a_gap_reports_what_was_never_received() {
        let mut r = SeqRecord::default();
        r.mark(1, T0, 16);
        r.mark(4, T0, 16);
        r.mark(7, T0, 16);
        // 2, 3, 5 and 6 missing up to 6; 4 was received.
        assert_eq!(r.cover_through(6, T0), 4);
        // 7 was already above, so the watermark runs on to it.
        assert_eq!(r.watermark(), 7);
        assert_eq!(r.gap_age(T0), None);
        assert_eq!(r.cover_through(5, T0), 0);
    }

    #[test]
    fn learning_that_a_seq_exists_starts_the_gap_clock() {
        let mut r = SeqRecord::default();
        r.mark(1, T0, 16);
        r.note_exists(4, T0);
        assert_eq!(
            r.gap_age(T0 + Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        // The watermark moving restarts the clock: the lowest gap is new.
        let t1 = T0 + Duration::from_secs(5);
        r.mark(2, t1, 16);
        assert_eq!(r.gap_age(t1), Some(Duration::ZERO));
    }

    #[test]
    fn a_member_with_a_new_origin_retires_the_old_one_which_is_forgotten_after_retention() {
        let mut recs = Records::default();
        let retention = Duration::from_secs(30);
        let idle = Duration::from_secs(3600);
        assert_eq!(recs.set_member(Origin(1), PeerId(9), T0), None);
        assert_eq!(recs.set_member(Origin(2), PeerId(9), T0), Some(Origin(1)));
        let before = T0 + Duration::from_secs(29);
        assert!(
            recs.forget_expired(before, retention, idle, Origin(0))
                .is_empty()
        );
        let after = T0 + Duration::from_secs(30);
        assert_eq!(
            recs.forget_expired(after, retention, idle, Origin(0)),
            vec![Origin(1)]
        );
        assert!(recs.get(Origin(2)).is_some());
    }

    #[test]
    fn a_departed_member_is_forgotten_unless_it_returns() {
        let mut recs = Records::default();
        let retention = Duration::from_secs(30);
        let idle = Duration::from_secs(3600);
        recs.set_member(Origin(1), PeerId(9), T0);
        recs.set_member(Origin(2), PeerId(8), T0);
        recs.retire_member(PeerId(9), T0);
        recs.retire_member(PeerId(8), T0);
        recs.unretire_member(PeerId(8));
        let later = T0 + retention;
        assert_eq!(
            recs.forget_expired(later, retention, idle, Origin(0)),
            vec![Origin(1)]
        );
        // An origin with no known owner goes only after the idle TTL, and
        // the node's own origin never goes.
        recs.entry(Origin(3), T0);
        recs.entry(Origin(4), T0);
        let much_later = T0 + idle;
        assert_eq!(
            recs.forget_expired(much_later, retention, idle, Origin(4)),
            vec![Origin(3)]
        );
    }
}

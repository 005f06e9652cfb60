//! Per-origin sequence records: the exact half of dedup.
//!
//! For each origin a node keeps the contiguous watermark (every seq up to it
//! was received or deliberately covered) and the set of seqs received above
//! it. This is what anti-entropy digests carry, what repair requests are
//! decided on, and where a gap shows: a seq known to exist above the
//! watermark that has not arrived.
//!
//! A forgotten origin (its peer left, or restarted as a new origin, and the
//! retention passed) keeps its final watermark for a while longer: a digest
//! or a late copy from a peer that has not forgotten it yet must not bring
//! it back as new, which would deliver its events again or report them
//! lost (a `gap_unrecoverable` flush for events that all arrived).
//!
//! Every number from a peer is bounded by [`MAX_SEQ`] before it gets here,
//! and the arithmetic saturates anyway.

use std::collections::BTreeSet;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::event::Origin;
use super::membership::PeerId;
use super::message::DigestEntry;
use super::time::Time;

/// The highest seq, watermark or range end a node accepts from a peer. An
/// honest origin publishing a million events a second would need 285 years
/// to reach it; past it, `+ 1` on a watermark would be one step from
/// wrapping, and a single hostile number would make every later event of
/// its origin look old.
pub const MAX_SEQ: u64 = 1 << 53;

/// Forgotten origins remembered at most (each is a few words).
pub const MAX_FORGOTTEN: usize = 16_384;

/// What happened when a seq was marked received.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Not seen before: deliver it.
    New,
    /// Seen already: drop it.
    Duplicate,
    /// Too far above the watermark to track; the event is refused now and
    /// comes back through anti-entropy once the watermark has moved up.
    OutOfWindow,
}

#[derive(Clone, Debug, Default)]
/// What one origin's events this node has seen: a watermark (every seq up
/// to it) and the seqs seen above it.
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
    /// Every seq up to this one has been seen.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// The highest seq this node knows to exist for the origin.
    pub fn known_max(&self) -> u64 {
        self.known_max
    }

    /// The peer that owns this origin, when known.
    pub fn member(&self) -> Option<PeerId> {
        self.member
    }

    /// Whether `seq` has been seen.
    pub fn is_seen(&self, seq: u64) -> bool {
        seq <= self.watermark || self.above.contains(&seq)
    }

    /// Marks `seq` received at `now`, keeping at most `max_out_of_order` seqs
    /// above the watermark.
    pub fn mark(&mut self, seq: u64, now: Time, max_out_of_order: usize) -> Mark {
        self.last_active = now;
        if self.is_seen(seq) {
            return Mark::Duplicate;
        }
        if seq == self.watermark.saturating_add(1) {
            self.watermark = seq;
            self.absorb_above();
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

    /// The seqs up to `seq` not received and not covered yet, as ranges.
    pub fn missing_through(&self, seq: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = self.watermark.saturating_add(1);
        for &r in self.above.range(..=seq) {
            if r > next {
                out.push((next, r - 1));
            }
            next = r.saturating_add(1);
        }
        if next <= seq && next > self.watermark {
            out.push((next, seq));
        }
        out
    }

    /// Covers every seq up to `seq` (a flush or a skip), whether received
    /// or not. Returns how many seqs were covered without being received.
    pub fn cover_through(&mut self, seq: u64, now: Time) -> u64 {
        if seq <= self.watermark {
            return 0;
        }
        let received = self.above.range(..=seq).count() as u64;
        let covered = (seq - self.watermark).saturating_sub(received);
        self.above = match seq.checked_add(1) {
            Some(next) => self.above.split_off(&next),
            None => BTreeSet::new(),
        };
        self.watermark = seq;
        self.absorb_above();
        self.known_max = self.known_max.max(seq);
        self.refresh_gap(now, true);
        covered
    }

    /// Moves the watermark over seqs already received just above it.
    fn absorb_above(&mut self) {
        while let Some(next) = self.watermark.checked_add(1)
            && self.above.remove(&next)
        {
            self.watermark = next;
        }
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

/// What is kept of a forgotten origin.
#[derive(Copy, Clone, Debug)]
struct Forgotten {
    watermark: u64,
    member: Option<PeerId>,
    at: Time,
}

/// All origins this node knows, and which peer owns each.
#[derive(Debug, Default)]
pub struct Records {
    map: FxHashMap<Origin, SeqRecord>,
    current_origin_of: FxHashMap<PeerId, Origin>,
    forgotten: FxHashMap<Origin, Forgotten>,
}

impl Records {
    /// One origin's record.
    pub fn get(&self, origin: Origin) -> Option<&SeqRecord> {
        self.map.get(&origin)
    }

    /// The origin's record, created if new. A forgotten origin comes back
    /// with its final watermark (something newer than it arrived: its
    /// process is alive after all), retired, so it is forgotten again after
    /// the retention unless its peer speaks up.
    pub fn entry(&mut self, origin: Origin, now: Time) -> &mut SeqRecord {
        let forgotten = &mut self.forgotten;
        self.map
            .entry(origin)
            .or_insert_with(|| match forgotten.remove(&origin) {
                Some(f) => SeqRecord {
                    watermark: f.watermark,
                    known_max: f.watermark,
                    member: f.member,
                    retired_at: Some(now),
                    last_active: now,
                    ..SeqRecord::default()
                },
                None => SeqRecord {
                    last_active: now,
                    ..SeqRecord::default()
                },
            })
    }

    /// Whether `origin`'s `seq` has been seen.
    pub fn is_seen(&self, origin: Origin, seq: u64) -> bool {
        match self.map.get(&origin) {
            Some(r) => r.is_seen(seq),
            None => self
                .forgotten
                .get(&origin)
                .is_some_and(|f| seq <= f.watermark),
        }
    }

    /// `origin`'s watermark (0 for an unknown origin).
    pub fn watermark(&self, origin: Origin) -> u64 {
        match self.map.get(&origin) {
            Some(r) => r.watermark,
            None => self.forgotten.get(&origin).map_or(0, |f| f.watermark),
        }
    }

    /// Whether this origin was forgotten (and not brought back since).
    pub fn is_forgotten(&self, origin: Origin) -> bool {
        self.forgotten.contains_key(&origin)
    }

    /// Forgotten origins remembered now.
    pub fn forgotten_len(&self) -> usize {
        self.forgotten.len()
    }

    /// Origins tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no origin is tracked.
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
    /// forgets `keep` (the node's own origin). Each keeps its watermark in
    /// the forgotten set for `idle_ttl` more. Returns what was forgotten.
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
        self.forgotten.retain(|_, f| now.since(f.at) < idle_ttl);
        for o in &gone {
            if let Some(r) = self.map.remove(o) {
                if self.forgotten.len() >= MAX_FORGOTTEN
                    && let Some(oldest) = self
                        .forgotten
                        .iter()
                        .min_by_key(|(o, f)| (f.at, **o))
                        .map(|(o, _)| *o)
                {
                    self.forgotten.remove(&oldest);
                }
                self.forgotten.insert(
                    *o,
                    Forgotten {
                        watermark: r.watermark,
                        member: r.member,
                        at: now,
                    },
                );
            }
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

    /// Every tracked origin with its record.
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
    fn missing_seqs_are_the_ranges_neither_received_nor_covered() {
        let mut r = SeqRecord::default();
        for seq in [1, 2, 5, 8] {
            r.mark(seq, T0, 100);
        }
        assert_eq!(r.missing_through(9), [(3, 4), (6, 7), (9, 9)]);
        assert_eq!(r.missing_through(2), []);
        r.cover_through(6, T0);
        assert_eq!(r.missing_through(9), [(7, 7), (9, 9)]);
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
    fn numbers_at_the_top_of_the_range_neither_panic_nor_wrap() {
        let mut r = SeqRecord::default();
        assert_eq!(r.mark(u64::MAX, T0, 16), Mark::New);
        assert_eq!(r.cover_through(u64::MAX - 1, T0), u64::MAX - 1);
        assert_eq!(r.watermark(), u64::MAX);
        assert_eq!(r.mark(u64::MAX, T0, 16), Mark::Duplicate);
        assert_eq!(r.cover_through(u64::MAX, T0), 0);
        let mut r = SeqRecord::default();
        r.mark(3, T0, 16);
        assert_eq!(r.cover_through(u64::MAX, T0), u64::MAX - 1);
    }

    #[test]
    fn a_forgotten_origin_keeps_its_watermark_and_comes_back_with_it() {
        let mut recs = Records::default();
        let retention = Duration::from_secs(30);
        let idle = Duration::from_secs(3600);
        for s in 1..=5 {
            recs.entry(Origin(1), T0).mark(s, T0, 16);
        }
        recs.set_member(Origin(1), PeerId(9), T0);
        recs.retire_member(PeerId(9), T0);
        let later = T0 + retention;
        assert_eq!(
            recs.forget_expired(later, retention, idle, Origin(0)),
            vec![Origin(1)]
        );
        assert!(recs.get(Origin(1)).is_none());
        assert!(recs.is_seen(Origin(1), 5) && !recs.is_seen(Origin(1), 6));
        assert_eq!(recs.watermark(Origin(1)), 5);
        // Something newer arrives: the record is back, at 5, not at 0.
        assert_eq!(recs.entry(Origin(1), later).mark(6, later, 16), Mark::New);
        assert_eq!(recs.watermark(Origin(1)), 6);
        assert!(!recs.is_forgotten(Origin(1)));
        // The forgotten set itself expires after the idle TTL.
        recs.retire_member(PeerId(9), later);
        let t = later + retention;
        recs.forget_expired(t, retention, idle, Origin(0));
        assert!(recs.is_forgotten(Origin(1)));
        recs.forget_expired(t + idle, retention, idle, Origin(0));
        assert!(!recs.is_forgotten(Origin(1)) && recs.forgotten_len() == 0);
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

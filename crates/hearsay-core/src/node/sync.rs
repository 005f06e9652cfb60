//! Anti-entropy (DESIGN §5) and housekeeping.
//!
//! Every period, jittered, a node sends one random member a digest: per
//! origin its contiguous watermark, and its config versions. The receiver
//! answers with what the asker lacks from its retention buffer and, for
//! each origin, how far the asker may move its watermark without those
//! events (they predate the asker, or are gone: then the asker flushes).
//! If the receiver lacks something itself, it sends its own digest back, so
//! both sides converge in one round.

use rustc_hash::FxHashSet;

use super::Node;
use super::overlay::event_item;
use crate::event::Origin;
use crate::membership::PeerId;
use crate::message::{Digest, EventItem, Item, OriginRepair, Route};
use crate::records::MAX_SEQ;
use crate::runtime::{FlushReason, Runtime, Timer};
use crate::time::Time;

/// Joined peers sent a digest at once, per membership update.
const MAX_JOIN_SYNCS: usize = 8;

/// One digest's answer as it is put together.
struct RepairAnswer {
    /// The asker.
    to: PeerId,
    /// Events before this are of no use to it.
    since: Time,
    /// Event bytes still allowed in the answer.
    budget: usize,
    /// What it will not get, per origin.
    infos: Vec<OriginRepair>,
}

impl Node {
    pub(super) fn schedule_sync<R: Runtime + ?Sized>(&mut self, now: Time, rt: &mut R) {
        let wait = self.jittered(self.cfg.anti_entropy_interval);
        rt.schedule(now + wait, Timer::SyncWithRandomPeer);
    }

    pub(super) fn sync_with_random_peer<R: Runtime + ?Sized>(&mut self, now: Time, rt: &mut R) {
        self.housekeeping(now);
        if let Some(peer) = self.members.clone().random_other(&mut self.rng, self.me) {
            self.stats.anti_entropy_rounds += 1;
            self.send_digest(peer, true);
        }
        self.schedule_sync(now, rt);
    }

    /// A peer this node has just learned of may have started before this
    /// node knew it, and missed what was published here (or reached here)
    /// in between: one digest now, rather than at a random later round,
    /// starts the exchange that brings it up to date (events within the
    /// repair grace follow at the next round, or as a gap). Bounded per
    /// update, so a big discovery change costs no burst; the rest wait for
    /// the periodic rounds.
    pub(super) fn sync_with_joined(&mut self, joined: &[PeerId]) {
        let me = self.me;
        for p in joined.iter().filter(|p| **p != me).take(MAX_JOIN_SYNCS) {
            self.stats.anti_entropy_rounds += 1;
            self.send_digest(*p, true);
        }
    }

    fn send_digest(&mut self, to: PeerId, reply_wanted: bool) {
        let digest = Digest {
            reply_wanted,
            since: self.since,
            origins: self.records.digest_entries(),
            config: self.registers.versions(),
        };
        self.queue(to, Item::Digest(digest));
    }

    pub(super) fn on_digest(&mut self, now: Time, from: PeerId, d: &Digest) {
        let mut we_lack = false;
        let mut answer = RepairAnswer {
            to: from,
            since: d.since,
            budget: self.cfg.repair_budget_bytes,
            infos: Vec::new(),
        };
        let mut theirs = FxHashSet::default();
        for e in &d.origins {
            if e.watermark > MAX_SEQ {
                self.stats.implausible_numbers += 1;
                continue;
            }
            theirs.insert(e.origin);
            if e.origin == self.origin {
                if let Some(r) = self.records.get(self.origin)
                    && r.watermark() > e.watermark
                {
                    self.repair_origin(now, e.origin, e.watermark, &mut answer);
                }
                continue;
            }
            if let Some(m) = e.member
                && m != self.me
                && !self.members.is_empty()
                && !self.members.contains(m)
            {
                // Its owner is not (or no longer) a member here: do not
                // resurrect an origin this node retired.
                continue;
            }
            let ours = self.records.watermark(e.origin);
            if e.watermark > ours {
                let rec = self.records.entry(e.origin, now);
                rec.note_exists(e.watermark, now);
                we_lack = true;
            } else if ours > e.watermark {
                self.repair_origin(now, e.origin, e.watermark, &mut answer);
            }
            if let Some(m) = e.member {
                self.records.learn_member(e.origin, m, now);
            }
        }
        // Origins the asker has never heard of.
        let mut unknown: Vec<Origin> = self
            .records
            .origins()
            .filter(|(o, r)| r.watermark() > 0 && !theirs.contains(o))
            .map(|(o, _)| o)
            .collect();
        unknown.sort_unstable();
        for o in unknown {
            self.repair_origin(now, o, 0, &mut answer);
        }
        for event in self.registers.newer_than(&d.config) {
            self.queue(
                from,
                Item::Event(EventItem {
                    route: Route::ConfigState,
                    hop: 1,
                    event,
                }),
            );
        }
        we_lack |= self.registers.lacks_any(&d.config);
        if !answer.infos.is_empty() {
            self.queue(from, Item::RepairInfo(answer.infos));
        }
        if we_lack && d.reply_wanted {
            self.send_digest(from, false);
        }
    }

    /// Sends `origin`'s events the asker lacks above its watermark, as far
    /// as the answer's byte budget goes, and notes what it will not get.
    fn repair_origin(
        &mut self,
        now: Time,
        origin: Origin,
        asker_watermark: u64,
        answer: &mut RepairAnswer,
    ) {
        let ours = self.records.watermark(origin);
        let fresh_after = now.saturating_sub(self.cfg.repair_grace);
        let plan = self.retention.plan_repair(
            origin,
            asker_watermark,
            answer.since,
            ours,
            answer.budget,
            fresh_after,
        );
        answer.budget -= plan.bytes;
        for stored in plan.events {
            self.stats.repairs_sent += 1;
            let hop = stored.hop.saturating_add(1);
            self.queue(answer.to, event_item(&stored.event, hop, Route::Repair));
        }
        answer.infos.extend(plan.info);
    }

    /// A peer says how far this node may cover each origin without the
    /// events it did not send.
    pub(super) fn on_repair_info(&mut self, now: Time, list: &[OriginRepair]) {
        for r in list {
            if r.origin == self.origin {
                continue;
            }
            if r.through > MAX_SEQ {
                self.stats.implausible_numbers += 1;
                continue;
            }
            if self.records.is_forgotten(r.origin) && r.through <= self.records.watermark(r.origin)
            {
                // This node had all of them before it forgot the origin.
                continue;
            }
            let rec = self.records.entry(r.origin, now);
            let missing = rec.missing_through(r.through);
            let covered = rec.cover_through(r.through, now);
            if covered == 0 {
                continue;
            }
            self.uncovered.extend(
                missing
                    .into_iter()
                    .map(|(first, last)| (r.origin, first, last, r.lost)),
            );
            if r.lost {
                self.stats.seqs_lost += covered;
                self.retention.mark_gone(r.origin, r.through, Time::MAX);
                self.request_flush(FlushReason::GapUnrecoverable);
            } else {
                self.stats.seqs_skipped_predating += covered;
                self.retention.mark_skipped(r.origin, r.through, self.since);
            }
        }
    }

    /// Rotation, eviction, gap timeouts, forgetting: all on the
    /// anti-entropy tick, so a node has exactly one periodic timer.
    fn housekeeping(&mut self, now: Time) {
        self.bloom.rotate_if_due(now);
        self.confirm_housekeeping(now);
        self.retention.evict(now);
        for o in self.records.gaps_older_than(now, self.cfg.gap_flush_after) {
            let rec = self.records.entry(o, now);
            let through = rec.known_max();
            let missing = rec.missing_through(through);
            let covered = rec.cover_through(through, now);
            self.uncovered.extend(
                missing
                    .into_iter()
                    .map(|(first, last)| (o, first, last, true)),
            );
            self.stats.seqs_lost += covered;
            self.retention.mark_gone(o, through, Time::MAX);
            self.request_flush(FlushReason::GapTimeout);
        }
        let forgotten = self.records.forget_expired(
            now,
            self.cfg.retention,
            self.cfg.origin_idle_ttl,
            self.origin,
        );
        for o in &forgotten {
            self.retention.forget_origin(*o);
        }
        self.stats.origins_forgotten += forgotten.len() as u64;
        self.registers
            .forget_tombstones(now, self.cfg.config_tombstone_ttl);
        self.inbound
            .retain(|_, l| now.since(l.last_used) < super::INBOUND_IDLE_FORGET);
        self.ensure_view();
    }
}

//! Plumtree's per-node state (Leitão, Pereira, Rodrigues, "Epidemic
//! Broadcast Trees", 2007) over a bounded active view.
//!
//! The active view is this node's links in the overlay, split into eager
//! peers (the broadcast tree: full events are pushed to them) and lazy peers
//! (only "I have" announcements). A duplicate on an eager link prunes it to
//! lazy; an announcement of an event that does not arrive in time grafts
//! the announcing link back to eager. The views stay small (a handful of
//! peers), so plain vectors beat hash sets here.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::event::EventId;
use super::membership::PeerId;
use super::message::Announcement;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
/// A peer's place in the broadcast tree.
pub enum Link {
    /// Events are pushed to it in full.
    Eager,
    /// Events are only announced to it.
    Lazy,
}

#[derive(Debug, Default)]
/// Plumtree's state: eager and lazy links, queued announcements and events
/// announced but not received.
pub struct Tree {
    eager: Vec<PeerId>,
    lazy: Vec<PeerId>,
    /// Events announced but not received: who announced them, in order.
    missing: FxHashMap<EventId, VecDeque<(PeerId, u8)>>,
    /// Announcements waiting for the lazy flush, per peer.
    lazy_queue: Vec<(PeerId, Vec<Announcement>)>,
}

impl Tree {
    /// `p`'s link, if it is in the active view.
    pub fn link(&self, p: PeerId) -> Option<Link> {
        if self.eager.contains(&p) {
            Some(Link::Eager)
        } else if self.lazy.contains(&p) {
            Some(Link::Lazy)
        } else {
            None
        }
    }

    /// Peers in the active view.
    pub fn active_len(&self) -> usize {
        self.eager.len() + self.lazy.len()
    }

    /// The eager links.
    pub fn eager(&self) -> &[PeerId] {
        &self.eager
    }

    /// The lazy links.
    pub fn lazy(&self) -> &[PeerId] {
        &self.lazy
    }

    /// Puts `p` on the tree (adding it to the view if new).
    pub fn make_eager(&mut self, p: PeerId) {
        self.lazy.retain(|x| *x != p);
        if !self.eager.contains(&p) {
            self.eager.push(p);
        }
    }

    /// Takes `p` off the tree but keeps the link (adding it if new).
    pub fn make_lazy(&mut self, p: PeerId) {
        self.eager.retain(|x| *x != p);
        if !self.lazy.contains(&p) {
            self.lazy.push(p);
        }
    }

    /// Drops `p` from the view and forgets its announcements.
    pub fn remove(&mut self, p: PeerId) -> bool {
        let before = self.active_len();
        self.eager.retain(|x| *x != p);
        self.lazy.retain(|x| *x != p);
        for anns in self.missing.values_mut() {
            anns.retain(|(x, _)| *x != p);
        }
        self.lazy_queue.retain(|(x, _)| *x != p);
        before != self.active_len()
    }

    /// Queues an announcement for a lazy peer. Returns true when the queue
    /// was empty (the caller arms the flush timer).
    pub fn queue_announcement(&mut self, p: PeerId, a: Announcement) -> bool {
        let was_empty = self.lazy_queue.is_empty();
        match self.lazy_queue.iter_mut().find(|(x, _)| *x == p) {
            Some((_, v)) => v.push(a),
            None => self.lazy_queue.push((p, vec![a])),
        }
        was_empty
    }

    /// The announcements queued per lazy peer, emptying the queue.
    pub fn take_lazy_queue(&mut self) -> Vec<(PeerId, Vec<Announcement>)> {
        std::mem::take(&mut self.lazy_queue)
    }

    /// Records that `from` has `id`. Returns true for the first announcement
    /// of that id (the caller starts the graft timer).
    pub fn note_missing(&mut self, id: EventId, from: PeerId, hop: u8) -> bool {
        let anns = self.missing.entry(id).or_default();
        let first = anns.is_empty();
        if !anns.iter().any(|(p, _)| *p == from) {
            anns.push_back((from, hop));
        }
        first
    }

    /// The next peer to graft from for a missing event, if any is left: the
    /// one that had it in the fewest hops (the first of those), so repairs
    /// wire short paths into the tree.
    pub fn next_announcer(&mut self, id: &EventId) -> Option<(PeerId, u8)> {
        let anns = self.missing.get_mut(id)?;
        let best = anns
            .iter()
            .enumerate()
            .min_by_key(|(i, (_, hop))| (*hop, *i))
            .map(|(i, _)| i);
        let next = best.and_then(|i| anns.remove(i));
        if anns.is_empty() {
            self.missing.remove(id);
        }
        next
    }

    /// The event arrived: stop waiting for it.
    pub fn received(&mut self, id: &EventId) {
        self.missing.remove(id);
    }

    /// Events announced but not received yet.
    pub fn missing_len(&self) -> usize {
        self.missing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;

    fn id(seq: u64) -> EventId {
        EventId {
            origin: Origin(1),
            seq,
        }
    }

    #[test]
    fn a_peer_is_on_exactly_one_side_of_the_view() {
        let mut t = Tree::default();
        t.make_eager(PeerId(1));
        t.make_lazy(PeerId(1));
        assert_eq!(t.link(PeerId(1)), Some(Link::Lazy));
        assert_eq!(t.active_len(), 1);
        t.make_eager(PeerId(1));
        assert_eq!(t.eager(), &[PeerId(1)]);
        assert!(t.lazy().is_empty());
        assert!(t.remove(PeerId(1)));
        assert_eq!(t.link(PeerId(1)), None);
        assert!(!t.remove(PeerId(1)));
    }

    #[test]
    fn announcers_are_tried_fewest_hops_first_then_in_order() {
        let mut t = Tree::default();
        assert!(t.note_missing(id(1), PeerId(5), 3));
        assert!(!t.note_missing(id(1), PeerId(6), 2));
        assert!(!t.note_missing(id(1), PeerId(7), 2));
        assert!(!t.note_missing(id(1), PeerId(5), 3), "no duplicates");
        assert_eq!(t.next_announcer(&id(1)), Some((PeerId(6), 2)));
        assert_eq!(t.next_announcer(&id(1)), Some((PeerId(7), 2)));
        assert_eq!(t.next_announcer(&id(1)), Some((PeerId(5), 3)));
        assert_eq!(t.next_announcer(&id(1)), None);
        assert_eq!(t.missing_len(), 0);
    }

    #[test]
    fn removing_a_peer_forgets_its_announcements_and_queued_ihaves() {
        let mut t = Tree::default();
        t.note_missing(id(1), PeerId(5), 2);
        assert!(t.queue_announcement(PeerId(5), Announcement { id: id(1), hop: 1 }));
        assert!(!t.queue_announcement(PeerId(6), Announcement { id: id(1), hop: 1 }));
        t.remove(PeerId(5));
        assert_eq!(t.next_announcer(&id(1)), None);
        let q = t.take_lazy_queue();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].0, PeerId(6));
    }
}

//! Dissemination (DESIGN §5): direct push in small clusters, the Plumtree
//! broadcast tree above `direct_push_max_peers`, and the active view the
//! tree lives on.

use std::sync::Arc;

use super::Node;
use crate::event::{Event, EventId};
use crate::membership::PeerId;
use crate::message::{Announcement, EventItem, Item, Route};
use crate::runtime::{Runtime, Timer};
use crate::time::Time;
use crate::tree::Link;

impl Node {
    /// Sends an event on: to every member (direct push, only ever done by
    /// the origin), or along the tree, eager peers getting the event and
    /// lazy peers an announcement. `hop` is how far it came to this node.
    pub(super) fn disseminate(
        &mut self,
        event: &Arc<Event>,
        hop: u8,
        from: Option<PeerId>,
        relay: bool,
    ) {
        let next = hop.saturating_add(1);
        if !relay {
            let members = self.members.clone();
            for &p in members.ids() {
                if p != self.me {
                    self.queue(p, event_item(event, next, Route::Push));
                }
            }
            return;
        }
        for i in 0..self.tree.eager().len() {
            let p = self.tree.eager()[i];
            if Some(p) != from {
                self.queue(p, event_item(event, next, Route::TreeRelay));
            }
        }
        for i in 0..self.tree.lazy().len() {
            let p = self.tree.lazy()[i];
            if Some(p) != from {
                let a = Announcement {
                    id: event.id,
                    hop: next,
                };
                self.tree.queue_announcement(p, a);
                self.lazy_flush_wanted = true;
            }
        }
    }

    pub(super) fn arm_lazy_flush<R: Runtime + ?Sized>(&mut self, now: Time, rt: &mut R) {
        if self.lazy_flush_wanted && !self.lazy_flush_armed {
            self.lazy_flush_armed = true;
            rt.schedule(now + self.cfg.lazy_flush_interval, Timer::FlushLazyQueue);
        }
        self.lazy_flush_wanted = false;
    }

    pub(super) fn flush_lazy_queue(&mut self) {
        self.lazy_flush_armed = false;
        for (p, anns) in self.tree.take_lazy_queue() {
            self.stats.ihave_sent += 1;
            self.queue(p, Item::IHave(anns));
        }
    }

    /// Opens overlay links until the view holds `view_min` peers.
    pub(super) fn ensure_view(&mut self) {
        let members = self.members.clone();
        let mut attempts = 0;
        while self.tree.active_len() < self.cfg.view_min && attempts < self.cfg.view_min * 4 {
            attempts += 1;
            let Some(p) = members.random_other(&mut self.rng, self.me) else {
                break;
            };
            if self.tree.link(p).is_none() {
                self.tree.make_eager(p);
                self.queue(p, Item::Neighbor);
            }
        }
    }

    /// A peer treats this node as a neighbour: take it into the view if
    /// there is room, or tell it to go elsewhere. Returns whether it is in.
    pub(super) fn adopt(&mut self, p: PeerId, link: Link) -> bool {
        match (self.tree.link(p), link) {
            (Some(Link::Lazy), Link::Eager) => self.tree.make_eager(p),
            (Some(_), _) => {}
            (None, _) if self.tree.active_len() >= self.cfg.view_max => {
                self.stats.neighbors_refused += 1;
                self.queue(p, Item::Disconnect);
                return false;
            }
            (None, Link::Eager) => self.tree.make_eager(p),
            (None, Link::Lazy) => self.tree.make_lazy(p),
        }
        true
    }

    /// A duplicate came over the tree: take that link off it. The Prune
    /// goes out even if this node already sees the link as lazy, since the
    /// sender evidently still treats it as eager (an earlier Prune was lost).
    pub(super) fn prune(&mut self, p: PeerId) {
        if self.tree.link(p).is_some() {
            self.tree.make_lazy(p);
        }
        self.stats.prune_sent += 1;
        self.queue(p, Item::Prune);
    }

    /// An announced event did not arrive in time: ask the next announcer.
    pub(super) fn graft_missing<R: Runtime + ?Sized>(
        &mut self,
        now: Time,
        id: EventId,
        rt: &mut R,
    ) {
        if self.records.is_seen(id.origin, id.seq) {
            self.tree.received(&id);
            return;
        }
        if let Some((p, _hop)) = self.tree.next_announcer(&id) {
            self.tree.make_eager(p);
            self.stats.graft_sent += 1;
            self.queue(p, Item::Graft(vec![id]));
            rt.schedule(now + self.cfg.graft_retry, Timer::GraftMissing(id));
        }
    }
}

pub(super) fn event_item(event: &Arc<Event>, hop: u8, route: Route) -> Item {
    Item::Event(EventItem {
        route,
        hop,
        event: event.clone(),
    })
}

//! Tests of the node as a state machine: inputs in, exact effects out. The
//! small [`Cluster`] routes sends between nodes synchronously, with links
//! that can be cut, to test exchanges without the simulator's network.

use crate::message::Inbound;
use std::collections::VecDeque;

use super::*;
pub(super) use crate::confirm::{Outcome, ReplicaState};
pub(super) use crate::event::Version;
use crate::message::{Announcement, EventItem, Route, SettledRange};
use crate::ratelimit::RateSpec;
use crate::runtime::Effect;
pub(super) use crate::tree::Link;

const T0: Time = Time::from_millis(1_000_000);

fn config() -> NodeConfig {
    NodeConfig {
        skew_margin: Duration::ZERO,
        ..NodeConfig::default()
    }
}

fn origin_of(i: u64) -> Origin {
    Origin(0x100 + i)
}

fn node_at(i: u64, cfg: NodeConfig, now: Time) -> Node {
    Node::new(Arc::new(cfg), PeerId(i), origin_of(i), now, i)
}

fn inv(key: &str) -> Invalidation {
    Invalidation {
        cache: "products".into(),
        keys: vec![key.into()],
        ..Invalidation::default()
    }
}

fn members(ids: &[u64]) -> MembershipUpdate {
    MembershipUpdate {
        members: Arc::new(PeerSet::from_ids(ids.iter().map(|i| PeerId(*i)))),
        joined: ids.iter().map(|i| PeerId(*i)).collect(),
        left: Vec::new(),
    }
}

fn sends(effects: &[Effect]) -> Vec<(PeerId, &[Item])> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, items } => Some((*to, items.as_slice())),
            _ => None,
        })
        .collect()
}

fn delivered(effects: &[Effect]) -> Vec<EventId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver { event, .. } => Some(event.id),
            _ => None,
        })
        .collect()
}

fn timers(effects: &[Effect]) -> Vec<(Time, Timer)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Schedule { at, timer } => Some((*at, *timer)),
            _ => None,
        })
        .collect()
}

fn event(origin: Origin, seq: u64, published_at: Time, key: &str) -> Arc<Event> {
    Arc::new(Event {
        id: EventId { origin, seq },
        published_at,
        body: EventBody::Invalidate(inv(key)),
    })
}

fn relay(ev: &Arc<Event>, hop: u8) -> Item {
    Item::Event(EventItem {
        route: Route::TreeRelay,
        hop,
        event: ev.clone(),
    })
}

fn direct(ev: &Arc<Event>) -> Item {
    Item::Event(EventItem {
        route: Route::Push,
        hop: 1,
        event: ev.clone(),
    })
}

fn timer_of(incarnation: u64, timer: Timer) -> (u64, Timer) {
    (incarnation, timer)
}

/// Nodes 0..n with `PeerId(i)`, all members of each other, started at T0.
struct Cluster {
    nodes: Vec<Node>,
    now: Time,
    queue: VecDeque<(usize, PeerId, Vec<Item>)>,
    delivered: Vec<Vec<Arc<Event>>>,
    flushes: Vec<Vec<FlushReason>>,
    evicted: Vec<Vec<String>>,
    timers: Vec<(Time, usize, (u64, Timer))>,
    cut: Vec<(usize, usize)>,
    /// Each node's incarnation; timers of an earlier one are dropped.
    incarnation: Vec<u64>,
    /// What each node's app does with what it is handed: settle it at once
    /// with this outcome, or (`None`) hold it.
    apps: Vec<Option<Outcome>>,
    /// Tracked events whose confirmation finished, by origin node.
    confirmed: Vec<Vec<EventId>>,
}

impl Cluster {
    fn new(n: usize, cfg: NodeConfig) -> Cluster {
        let ids: Vec<u64> = (0..n as u64).collect();
        let mut c = Cluster {
            nodes: Vec::new(),
            now: T0,
            queue: VecDeque::new(),
            delivered: vec![Vec::new(); n],
            flushes: vec![Vec::new(); n],
            evicted: vec![Vec::new(); n],
            timers: Vec::new(),
            cut: Vec::new(),
            incarnation: vec![0; n],
            apps: vec![Some(Outcome::Acknowledged); n],
            confirmed: vec![Vec::new(); n],
        };
        for i in 0..n {
            c.nodes.push(node_at(i as u64, cfg.clone(), T0));
            let mut fx = Vec::new();
            c.nodes[i].apply_membership(T0, &members(&ids), &mut fx);
            c.nodes[i].start(T0, &mut fx);
            c.collect(i, fx);
        }
        c.run();
        c
    }

    /// Adds a node started now, and tells everyone.
    fn join(&mut self, cfg: NodeConfig) -> usize {
        let everyone: Vec<usize> = (0..self.nodes.len()).collect();
        self.join_seen_by(cfg, &everyone)
    }

    /// Adds a node started now that knows everyone, and tells only the
    /// nodes in `seen_by` (the others' discovery has not seen it yet).
    fn join_seen_by(&mut self, cfg: NodeConfig, seen_by: &[usize]) -> usize {
        let i = self.nodes.len();
        self.nodes.push(node_at(i as u64, cfg, self.now));
        self.delivered.push(Vec::new());
        self.flushes.push(Vec::new());
        self.evicted.push(Vec::new());
        self.incarnation.push(0);
        self.apps.push(Some(Outcome::Acknowledged));
        self.confirmed.push(Vec::new());
        for j in seen_by.iter().copied().chain([i]) {
            self.tell_all_members(j);
            if j == i {
                let mut fx = Vec::new();
                self.nodes[j].start(self.now, &mut fx);
                self.collect(j, fx);
            }
        }
        self.run();
        i
    }

    /// Node `j`'s discovery now lists every node.
    fn tell_all_members(&mut self, j: usize) {
        let ids = (0..self.nodes.len() as u64).map(PeerId);
        let update =
            MembershipUpdate::between(self.nodes[j].members(), Arc::new(PeerSet::from_ids(ids)));
        let mut fx = Vec::new();
        self.nodes[j].apply_membership(self.now, &update, &mut fx);
        self.collect(j, fx);
        self.run();
    }

    /// Node `i` restarts: a new process (a new origin, an empty state) for
    /// the same peer, which stays a member throughout. Its app keeps what
    /// it received (the deliveries are not cleared).
    fn restart(&mut self, i: usize, cfg: NodeConfig) {
        self.incarnation[i] += 1;
        let origin = Origin(origin_of(i as u64).0 + 0x1000 * self.incarnation[i]);
        self.nodes[i] = Node::new(Arc::new(cfg), PeerId(i as u64), origin, self.now, 99);
        let ids: Vec<u64> = (0..self.nodes.len() as u64).collect();
        let mut fx = Vec::new();
        self.nodes[i].apply_membership(self.now, &members(&ids), &mut fx);
        self.nodes[i].start(self.now, &mut fx);
        self.collect(i, fx);
        self.run();
    }

    fn collect(&mut self, i: usize, effects: Vec<Effect>) {
        let mut settled = Vec::new();
        let app = self.apps[i];
        let range = |first, last, outcome| SettledRange {
            first,
            last,
            outcome,
        };
        for e in effects {
            match e {
                Effect::Send { to, items } => self.queue.push_back((i, to, items)),
                Effect::Deliver { event, .. } => {
                    if let Some(o) = app {
                        settled.push(Settled::event(event.id, o));
                    }
                    self.delivered[i].push(event);
                }
                Effect::Flush { reason, .. } => self.flushes[i].push(reason),
                Effect::Schedule { at, timer } => {
                    self.timers
                        .push((at, i, timer_of(self.incarnation[i], timer)))
                }
                Effect::ConfigEvicted { key, .. } => self.evicted[i].push(key),
                Effect::Confirmed(id) => self.confirmed[i].push(id),
                // The flush that follows is acknowledged at once, if at all.
                Effect::Lost {
                    origin,
                    first,
                    last,
                } if app.is_some() => settled.push(Settled {
                    origin,
                    range: range(first, last, Outcome::Flushed),
                }),
                Effect::NotDelivered {
                    origin,
                    first,
                    last,
                } => settled.push(Settled {
                    origin,
                    range: range(first, last, Outcome::Flushed),
                }),
                Effect::Lost { .. } => {}
            }
        }
        if !settled.is_empty() {
            let mut fx = Vec::new();
            self.nodes[i].settled(self.now, &settled, &mut fx);
            self.collect(i, fx);
        }
    }

    /// Node `i`'s app settles these events now (for an app that holds them).
    fn settle(&mut self, i: usize, ids: &[EventId], outcome: Outcome) {
        let items: Vec<Settled> = ids.iter().map(|id| Settled::event(*id, outcome)).collect();
        let mut fx = Vec::new();
        self.nodes[i].settled(self.now, &items, &mut fx);
        self.collect(i, fx);
        self.run();
    }

    fn publish_tracked(&mut self, i: usize, key: &str) -> EventId {
        self.nodes[i].track_next();
        self.publish(i, key)
    }

    fn is_cut(&self, a: usize, b: usize) -> bool {
        self.cut.contains(&(a, b)) || self.cut.contains(&(b, a))
    }

    /// Delivers every queued send (and what they cause) at the current time.
    fn run(&mut self) {
        while let Some((from, to, items)) = self.queue.pop_front() {
            let to = to.0 as usize;
            if to >= self.nodes.len() || self.is_cut(from, to) {
                continue;
            }
            let bytes = items.iter().map(codec::item_len).sum::<usize>() + codec::HEADER_LEN;
            let sender_origin = self.nodes[from].origin();
            let mut fx = Vec::new();
            self.nodes[to].receive(
                self.now,
                Inbound {
                    from: PeerId(from as u64),
                    sender_origin,
                    frame_len: bytes,
                    items,
                },
                &mut fx,
            );
            self.collect(to, fx);
        }
    }

    /// Moves time on, firing due timers in order.
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.timers.sort_by_key(|(at, i, _)| (*at, *i));
            match self.timers.first() {
                Some((at, _, _)) if *at <= until => {
                    let (at, i, (inc, timer)) = self.timers.remove(0);
                    self.now = self.now.max(at);
                    if inc != self.incarnation[i] {
                        continue;
                    }
                    let mut fx = Vec::new();
                    self.nodes[i].timer(self.now, timer, &mut fx);
                    self.collect(i, fx);
                    self.run();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn publish(&mut self, i: usize, key: &str) -> EventId {
        let mut fx = Vec::new();
        let id = self.nodes[i].publish(self.now, inv(key), &mut fx).unwrap();
        self.collect(i, fx);
        self.run();
        id
    }

    fn set_config(&mut self, i: usize, key: &str, value: &str) {
        self.try_set_config(i, key, value).unwrap();
    }

    fn try_set_config(
        &mut self,
        i: usize,
        key: &str,
        value: &str,
    ) -> Result<EventId, PublishError> {
        let mut fx = Vec::new();
        let r = self.nodes[i].set_config(self.now, key.into(), value.into(), &mut fx);
        self.collect(i, fx);
        self.run();
        r
    }

    fn delete_config(&mut self, i: usize, key: &str) -> Result<EventId, PublishError> {
        let mut fx = Vec::new();
        let r = self.nodes[i].delete_config(self.now, key.into(), &mut fx);
        self.collect(i, fx);
        self.run();
        r
    }

    fn count(&self, i: usize, id: EventId) -> usize {
        self.delivered[i].iter().filter(|e| e.id == id).count()
    }

    fn config_of(&self, i: usize) -> Vec<(String, String)> {
        self.nodes[i]
            .config_live()
            .map(|(k, r)| (k.to_owned(), r.value.clone().unwrap_or_default()))
            .collect()
    }
}

mod antientropy;
mod config;
mod confirm;
mod hostile;
mod membership;
mod outbound;
mod publish;
mod receive;
mod tree;

//! The simulation loop: pops the earliest action, hands it to the node it
//! concerns (the real [`Node`], not a model of it), repeats.

use crate::message::Inbound;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::config::{SimConfig, SimConfigError};
use super::report::Report;
use super::world::{Action, Network, SimRuntime, World, peer_of};

mod control;
use crate::{
    EventId, Invalidation, MembershipUpdate, Node, NodeConfig, Origin, PeerSet, PublishError,
    Stats, Time,
};

/// A running simulation: the nodes, the virtual network and the clock.
pub struct Sim {
    cfg: SimConfig,
    node_cfg: Arc<NodeConfig>,
    nodes: Vec<Option<Node>>,
    world: World,
    members: Arc<PeerSet>,
    rng: Xoshiro256PlusPlus,
    end: Time,
    /// Counts of incarnations that crashed.
    dead_stats: Stats,
    crashes: usize,
    partitioned: usize,
}

/// A well-mixed 64-bit value from a seed and two indices (splitmix64), so
/// each node incarnation gets its own independent seed and origin.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sim {
    /// Builds the cluster, starts every node at time zero and schedules the
    /// publishes and faults the config describes.
    pub fn new(cfg: SimConfig) -> Result<Sim, SimConfigError> {
        cfg.validate()?;
        let n = cfg.nodes;
        let net = Network {
            latency: cfg.latency,
            jitter: cfg.jitter,
            loss: cfg.loss,
            cut_off: None,
        };
        let mut world = World::new(
            n,
            net,
            Xoshiro256PlusPlus::seed_from_u64(mix(cfg.seed, 1, 0)),
        );
        world.apps_settle = cfg.track;
        let mut sim = Sim {
            node_cfg: Arc::new(cfg.node.clone()),
            nodes: (0..n).map(|_| None).collect(),
            world,
            members: Arc::new(PeerSet::from_ids((0..n).map(peer_of))),
            rng: Xoshiro256PlusPlus::seed_from_u64(mix(cfg.seed, 2, 0)),
            end: Time::ZERO,
            dead_stats: Stats::default(),
            crashes: 0,
            partitioned: 0,
            cfg,
        };
        for i in 0..n {
            sim.spawn(i);
        }
        sim.schedule_scenario();
        Ok(sim)
    }

    fn schedule_scenario(&mut self) {
        let cfg = self.cfg.clone();
        let at = |secs: f64| Time::ZERO + Duration::from_secs_f64(secs);
        for k in 0..cfg.events {
            self.world.push(at(k as f64 / cfg.rate), Action::Publish(k));
        }
        let publish_end = at(cfg.events.saturating_sub(1) as f64 / cfg.rate);
        let mut last_fault = publish_end;
        if let Some(p) = &cfg.partition {
            let start = Time::ZERO + p.start;
            let heal = start + p.duration;
            self.world.push(start, Action::PartitionStart);
            self.world.push(heal, Action::PartitionHeal);
            last_fault = last_fault.max(heal);
        }
        if let Some(c) = &cfg.churn {
            let mut order: Vec<usize> = (0..cfg.nodes).collect();
            order.shuffle(&mut self.rng);
            let count = ((cfg.nodes as f64) * c.fraction).round() as usize;
            let window = publish_end.as_micros().max(1);
            for &i in &order[..count] {
                let crash = Time::from_micros(self.rng.random_range(0..window));
                let restart = crash + c.downtime;
                self.world.push(crash, Action::Crash(i));
                self.world.push(restart, Action::Restart(i));
                last_fault = last_fault.max(restart);
            }
        }
        self.end = last_fault + cfg.settle;
    }

    fn spawn(&mut self, i: usize) {
        if self.nodes[i].is_some() {
            self.dispatch(Action::Crash(i));
        }
        let now = self.world.now;
        let inc = u64::from(self.world.incarnation[i]);
        let origin = Origin(mix(self.cfg.seed, 3 + i as u64, inc));
        let seed = mix(self.cfg.seed, 4 + i as u64, inc);
        let mut node = Node::new(self.node_cfg.clone(), peer_of(i), origin, now, seed);
        let update = MembershipUpdate {
            members: self.members.clone(),
            joined: Vec::new(),
            left: Vec::new(),
        };
        let mut rt = SimRuntime {
            world: &mut self.world,
            node: i,
            me: peer_of(i),
            origin,
        };
        node.apply_membership(now, &update, &mut rt);
        node.start(now, &mut rt);
        self.world.up[i] = true;
        self.world.started[i] = now;
        self.nodes[i] = Some(node);
    }

    /// When the scenario ends (last publish or fault, plus the settle time).
    pub fn end(&self) -> Time {
        self.end
    }

    /// The virtual clock.
    pub fn now(&self) -> Time {
        self.world.now
    }

    /// Runs the whole scenario and reports.
    pub fn run(mut self) -> Report {
        let wall = std::time::Instant::now();
        let end = self.end;
        self.run_until(end);
        self.report(wall.elapsed())
    }

    /// Processes every action due up to `until`, then sets the clock there.
    pub fn run_until(&mut self, until: Time) {
        while let Some((at, action)) = self.world.pop_until(until) {
            self.world.now = at;
            self.dispatch(action);
        }
        self.world.now = self.world.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.world.now + d;
        self.run_until(until);
    }

    fn dispatch(&mut self, action: Action) {
        let now = self.world.now;
        match action {
            Action::Frame {
                to,
                to_incarnation,
                from,
                sender_origin,
                bytes,
                items,
            } => {
                let inbound = Inbound {
                    from,
                    sender_origin,
                    frame_len: bytes,
                    items,
                };
                self.deliver_frame(now, to, to_incarnation, inbound);
            }
            Action::Timer {
                node: i,
                incarnation,
                timer,
            } => {
                if self.world.incarnation[i] != incarnation {
                    return;
                }
                let Some(node) = self.nodes[i].as_mut() else {
                    return;
                };
                let mut rt = SimRuntime {
                    world: &mut self.world,
                    node: i,
                    me: node.id(),
                    origin: node.origin(),
                };
                node.timer(now, timer, &mut rt);
            }
            Action::Publish(k) => self.publish_at_random(k),
            Action::Crash(i) => {
                if let Some(node) = self.nodes[i].take() {
                    self.dead_stats.merge(node.stats());
                    self.crashes += 1;
                }
                self.world.up[i] = false;
                self.world.incarnation[i] += 1;
            }
            Action::Restart(i) => self.spawn(i),
            Action::PartitionStart => self.start_partition(),
            Action::PartitionHeal => self.world.net.cut_off = None,
        }
        self.settle_apps(now);
    }

    /// Hands each node what its app settled during the last call (tracked
    /// runs), which may send reports.
    fn settle_apps(&mut self, now: Time) {
        while !self.world.to_settle.is_empty() {
            let mut batch = std::mem::take(&mut self.world.to_settle);
            batch.sort_by_key(|(node, inc, _)| (*node, *inc));
            let mut i = 0;
            while i < batch.len() {
                let (node, inc, _) = batch[i];
                let j = batch[i..]
                    .iter()
                    .position(|(n, c, _)| (*n, *c) != (node, inc))
                    .map_or(batch.len(), |k| i + k);
                let items: Vec<_> = batch[i..j].iter().map(|(_, _, s)| *s).collect();
                i = j;
                if self.world.incarnation[node] != inc {
                    continue;
                }
                let Some(n) = self.nodes[node].as_mut() else {
                    continue;
                };
                let mut rt = SimRuntime {
                    world: &mut self.world,
                    node,
                    me: n.id(),
                    origin: n.origin(),
                };
                n.settled(now, &items, &mut rt);
            }
        }
    }

    /// A frame reaches node `to`, unless it is down or has restarted since
    /// the frame was sent (then it is lost).
    fn deliver_frame(&mut self, now: Time, to: usize, to_incarnation: u32, inbound: Inbound) {
        if !self.world.up[to] || self.world.incarnation[to] != to_incarnation {
            self.world.counters.frames_lost += 1;
            return;
        }
        let Some(node) = self.nodes[to].as_mut() else {
            return;
        };
        let mut rt = SimRuntime {
            world: &mut self.world,
            node: to,
            me: node.id(),
            origin: node.origin(),
        };
        node.receive(now, inbound, &mut rt);
    }

    /// The `k`th scheduled publish, at a random node that is up.
    fn publish_at_random(&mut self, k: usize) {
        let up: Vec<usize> = (0..self.cfg.nodes).filter(|i| self.world.up[*i]).collect();
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.random_range(0..up.len())];
        if self.cfg.track
            && let Some(n) = self.nodes[i].as_mut()
        {
            n.track_next();
        }
        let inv = Invalidation {
            cache: format!("cache-{}", k % 8),
            keys: vec![format!("key-{k}")],
            ..Invalidation::default()
        };
        // A refused publish (rate limit) is not an event: the app was told
        // and nothing was promised.
        let _ = self.publish(i, inv);
    }

    /// Cuts a random share of the nodes (the configured fraction) off from
    /// the rest.
    fn start_partition(&mut self) {
        let p = self
            .cfg
            .partition
            .clone()
            .unwrap_or(super::config::Partition {
                fraction: 0.5,
                start: Duration::ZERO,
                duration: Duration::ZERO,
            });
        let mut order: Vec<usize> = (0..self.cfg.nodes).collect();
        order.shuffle(&mut self.rng);
        let count = ((self.cfg.nodes as f64) * p.fraction).round() as usize;
        let mut side = vec![false; self.cfg.nodes];
        for &i in &order[..count] {
            side[i] = true;
        }
        self.partitioned = count;
        self.world.net.cut_off = Some(side);
    }
}

//! What a node shows of itself: identity, stats, membership, the tree,
//! dedup, retention and config, read-only.

use std::sync::Arc;

use super::Node;
use crate::bloom::RotatingBloom;
use crate::event::Origin;
use crate::membership::{PeerId, PeerSet};
use crate::registers::Register;
use crate::retention::Retention;
use crate::settings::NodeConfig;
use crate::stats::Stats;
use crate::time::Time;
use crate::tree::Link;

impl Node {
    /// This node's peer id.
    pub fn id(&self) -> PeerId {
        self.me
    }

    /// This node's origin: the prefix of the ids of events it publishes.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// When this node started (events published before it are not its app's).
    pub fn started(&self) -> Time {
        self.started
    }

    /// The settings it runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// What it has counted so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The current members (itself left out).
    pub fn members(&self) -> &Arc<PeerSet> {
        &self.members
    }

    /// This node's link to a peer in the overlay, if it has one.
    pub fn link(&self, peer: PeerId) -> Option<Link> {
        self.tree.link(peer)
    }

    /// Peers this node pushes events to eagerly (in tree mode).
    pub fn eager_peers(&self) -> &[PeerId] {
        self.tree.eager()
    }

    /// Peers this node announces events to lazily (in tree mode).
    pub fn lazy_peers(&self) -> &[PeerId] {
        self.tree.lazy()
    }

    /// The dedup filter, for its memory figure.
    pub fn bloom(&self) -> &RotatingBloom {
        &self.bloom
    }

    /// The events kept for repairs and grafts.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Origins whose sequences this node tracks.
    pub fn origins_known(&self) -> usize {
        self.records.len()
    }

    /// A config key's register, live or a tombstone.
    pub fn config_get(&self, key: &str) -> Option<&Register> {
        self.registers.get(key).filter(|r| r.value.is_some())
    }

    /// Every live config key with its register, in key order.
    pub fn config_live(&self) -> impl Iterator<Item = (&str, &Register)> {
        self.registers.live()
    }

    /// How many config keys have a live value.
    pub fn config_live_len(&self) -> usize {
        self.registers.live_len()
    }

    /// True when this node pushes its own events to every peer directly.
    pub fn is_direct_mode(&self) -> bool {
        let others = self.members.len() - usize::from(self.members.contains(self.me));
        others <= self.cfg.direct_push_max_peers
    }
}

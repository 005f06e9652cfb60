//! Finding peers (DESIGN §9). Each source publishes its current peer set on
//! a watch channel; the owner task and the transport's admission read it.
//! While a source fails, the last known set stays in use.

pub mod kubernetes;
pub mod static_peers;

use std::sync::Arc;

use tokio::sync::watch;

use crate::gossip::PeerSet;

/// Where a discovery source sends what it finds: each new peer set, and
/// that it has listed its peers once (what `/readyz` waits for).
pub struct Publisher {
    members: watch::Sender<Arc<PeerSet>>,
    listed: watch::Sender<bool>,
}

impl Publisher {
    /// A publisher to `members`, and the receiving end of "listed once".
    pub fn new(members: watch::Sender<Arc<PeerSet>>) -> (Publisher, watch::Receiver<bool>) {
        let (listed, listed_rx) = watch::channel(false);
        (Publisher { members, listed }, listed_rx)
    }

    /// Publishes `set` if it differs from the current one.
    pub fn publish(&self, set: PeerSet) {
        self.members.send_if_modified(|cur| {
            if **cur == set {
                false
            } else {
                *cur = Arc::new(set);
                true
            }
        });
    }

    /// Says that the source has listed its peers once.
    pub fn listed(&self) {
        self.listed
            .send_if_modified(|l| !std::mem::replace(l, true));
    }

    /// How many peers the published set holds.
    pub fn peer_count(&self) -> usize {
        self.members.borrow().len()
    }
}

//! The gossip transport (DESIGN §8): persistent TCP connections, framed,
//! every frame authenticated.
//!
//! - [`keyring`]: HMAC-SHA256 keys (primary signs; primary or secondary
//!   accepted).
//! - [`frame`]: read and write one frame on a stream.
//! - [`writer`]: a task per peer that batches what is queued for it.
//! - [`listener`]: accepts connections, admits and forwards frames.
//! - [`hello`]: what a receiver says first: which incarnation listens.
//! - [`slots`]: bounds pending and authenticated connections apart.
//! - [`replay`]: refuses frames seen before or too old.
//! - [`reload`]: re-reads the key files when the mounted Secret changes.
//! - [`auth_watch`]: which peers' frames or hellos failed authentication.
//! - [`liveness`]: noticing a peer that is gone without a word.
//! - [`faults`]: injected frame loss, for tests.
//!
//! [`Transport`] is the owner task's handle on the writers.

pub mod auth_watch;
pub mod faults;
pub mod frame;
pub mod hello;
pub mod keyring;
pub mod listener;
pub mod liveness;
pub mod reload;
pub mod replay;
pub mod slots;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::gossip::{Item, PeerId, PeerSet};
use crate::metrics::DropReason;
use writer::{ConnState, PeerWriter, SendRefused, WriterCtx};

/// Sends queued per peer before further sends to it are dropped (and
/// counted; anti-entropy repairs what a slow peer missed).
pub const PEER_QUEUE_CAPACITY: usize = 4096;

pub struct Transport {
    ctx: Arc<WriterCtx>,
    writers: FxHashMap<PeerId, PeerWriter>,
}

impl Transport {
    pub fn new(ctx: Arc<WriterCtx>) -> Transport {
        Transport {
            ctx,
            writers: FxHashMap::default(),
        }
    }

    /// Queues items for a peer at `addr`, starting its writer if needed.
    pub fn send(&mut self, to: PeerId, addr: Option<SocketAddr>, items: Vec<Item>) {
        let Some(addr) = addr else {
            self.ctx
                .metrics
                .transport
                .send_dropped(DropReason::NoAddress);
            return;
        };
        let stale = self
            .writers
            .get(&to)
            .is_some_and(|w| w.addr != addr || w.is_finished());
        if stale && let Some(old) = self.writers.remove(&to) {
            drop(old.close());
        }
        let writer = self
            .writers
            .entry(to)
            .or_insert_with(|| PeerWriter::spawn(self.ctx.clone(), to, addr, PEER_QUEUE_CAPACITY));
        match writer.try_send(items) {
            Ok(()) => {}
            Err(SendRefused::QueueFull) => {
                self.ctx
                    .metrics
                    .transport
                    .send_dropped(DropReason::QueueFull);
            }
            Err(SendRefused::Closed) => {
                self.ctx
                    .metrics
                    .transport
                    .send_dropped(DropReason::WriteFailed);
                self.writers.remove(&to);
            }
        }
    }

    /// Stops the writers of peers that are no longer members (or moved).
    pub fn retain_members(&mut self, members: &PeerSet) {
        self.writers
            .retain(|id, w| members.get(*id).is_some_and(|p| p.addr == Some(w.addr)));
    }

    pub fn state(&self, peer: PeerId) -> Option<ConnState> {
        self.writers.get(&peer).map(PeerWriter::state)
    }

    /// Whether frames or hellos of `peer` failed authentication lately.
    pub fn auth_failing(&self, peer: PeerId) -> bool {
        self.ctx.auth.is_failing(peer)
    }

    pub fn connected(&self) -> usize {
        self.writers
            .values()
            .filter(|w| w.state() == ConnState::Up)
            .count()
    }

    /// Stops every writer from taking sends; the returned future lets them
    /// send what they have queued, for at most `within`.
    pub fn close(&mut self, within: Duration) -> impl Future<Output = ()> + Send + 'static {
        let tasks: Vec<_> = self.writers.drain().map(|(_, w)| w.close()).collect();
        async move {
            let all = async {
                for t in tasks {
                    let _ = t.await;
                }
            };
            let _ = tokio::time::timeout(within, all).await;
        }
    }
}

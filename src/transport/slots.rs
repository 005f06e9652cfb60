//! Connection slots of the gossip listener.
//!
//! A connection is *pending* from its accept until its first authentic
//! frame, then *authenticated* (bound to the peer that sealed it). The two
//! are bounded apart, so connections that never authenticate cannot take
//! the slots that peers need:
//!
//! - pending connections from one IP are at most [`PENDING_PER_IP`]: a new
//!   one evicts the oldest pending one from that IP (an honest peer's
//!   connection authenticates within a round trip, so the one evicted is
//!   the idle one), and in all at most `max` are pending;
//! - each pending connection has a handshake deadline (the listener's);
//! - an authenticated connection holds one of `max` slots, and a peer holds
//!   at most one: its new connection (after a restart, say) replaces the
//!   old, so a member can always get a slot while there are no more
//!   members than slots.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::gossip::PeerId;

/// Pending (not yet authenticated) connections kept per remote IP.
pub const PENDING_PER_IP: usize = 8;

/// Why a connection was told to close.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A newer pending connection from the same IP took its place.
    Evicted,
    /// The same peer authenticated a newer connection.
    Replaced,
}

struct Conn {
    id: u64,
    close: Arc<Notify>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    pending: HashMap<IpAddr, VecDeque<Conn>>,
    pending_total: usize,
    authed: HashMap<PeerId, Conn>,
    reasons: HashMap<u64, Closed>,
}

pub struct Slots {
    max: usize,
    state: Mutex<State>,
}

/// A connection's hold on a slot; dropping it frees the slot.
pub struct Ticket {
    slots: Arc<Slots>,
    id: u64,
    ip: IpAddr,
    peer: Option<PeerId>,
    close: Arc<Notify>,
}

/// No slot is free.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Full;

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Held for a map update, never across an await.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pending slot for a connection from `ip`; `true` with it when an
    /// older pending connection from that IP was evicted for it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Ticket, bool), Full> {
        let mut s = self.lock();
        let from_ip = s.pending.get(&ip).map_or(0, VecDeque::len);
        let mut evicted = false;
        if from_ip >= PENDING_PER_IP {
            let old = s.pending.get_mut(&ip).and_then(VecDeque::pop_front);
            if let Some(old) = old {
                s.pending_total -= 1;
                s.reasons.insert(old.id, Closed::Evicted);
                old.close.notify_one();
                evicted = true;
            }
        } else if s.pending_total >= self.max {
            return Err(Full);
        }
        s.next_id += 1;
        let id = s.next_id;
        let close = Arc::new(Notify::new());
        s.pending.entry(ip).or_default().push_back(Conn {
            id,
            close: close.clone(),
        });
        s.pending_total += 1;
        Ok((
            Ticket {
                slots: self.clone(),
                id,
                ip,
                peer: None,
                close,
            },
            evicted,
        ))
    }

    /// Connections pending now (for tests and status).
    pub fn pending(&self) -> usize {
        self.lock().pending_total
    }

    /// Authenticated connections now.
    pub fn authenticated(&self) -> usize {
        self.lock().authed.len()
    }
}

impl State {
    fn remove_pending(&mut self, ip: IpAddr, id: u64) -> bool {
        let Some(q) = self.pending.get_mut(&ip) else {
            return false;
        };
        let Some(pos) = q.iter().position(|c| c.id == id) else {
            return false;
        };
        q.remove(pos);
        if q.is_empty() {
            self.pending.remove(&ip);
        }
        self.pending_total -= 1;
        true
    }
}

/// Tells one connection when it must close (a handle apart from its
/// [`Ticket`], so a task can wait on it while it uses the ticket).
pub struct CloseSignal {
    slots: Arc<Slots>,
    id: u64,
    close: Arc<Notify>,
}

impl CloseSignal {
    /// Resolves when the connection must close, with why.
    pub async fn closed(&self) -> Closed {
        self.close.notified().await;
        self.slots
            .lock()
            .reasons
            .remove(&self.id)
            .unwrap_or(Closed::Evicted)
    }
}

impl Ticket {
    pub fn signal(&self) -> CloseSignal {
        CloseSignal {
            slots: self.slots.clone(),
            id: self.id,
            close: self.close.clone(),
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.peer.is_some()
    }

    /// Moves this connection from pending to authenticated for `peer`,
    /// closing that peer's previous connection if it had one.
    pub fn authenticate(&mut self, peer: PeerId) -> Result<(), Full> {
        let mut s = self.slots.lock();
        let replacing = s.authed.contains_key(&peer);
        if !replacing && s.authed.len() >= self.slots.max {
            return Err(Full);
        }
        s.remove_pending(self.ip, self.id);
        let conn = Conn {
            id: self.id,
            close: self.close.clone(),
        };
        if let Some(old) = s.authed.insert(peer, conn) {
            s.reasons.insert(old.id, Closed::Replaced);
            old.close.notify_one();
        }
        self.peer = Some(peer);
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.slots.lock();
        s.reasons.remove(&self.id);
        match self.peer {
            Some(peer) => {
                if s.authed.get(&peer).is_some_and(|c| c.id == self.id) {
                    s.authed.remove(&peer);
                }
            }
            None => {
                s.remove_pending(self.ip, self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    async fn closes(t: &Ticket) -> Option<Closed> {
        tokio::time::timeout(Duration::from_millis(50), t.signal().closed())
            .await
            .ok()
    }

    #[tokio::test]
    async fn idle_connections_from_one_ip_evict_each_other_not_an_authenticated_peer() {
        let slots = Slots::new(16);
        let mut honest = slots.admit(ip(1)).unwrap().0;
        honest.authenticate(PeerId(1)).unwrap();
        let mut idle = Vec::new();
        for _ in 0..PENDING_PER_IP {
            let (t, evicted) = slots.admit(ip(1)).unwrap();
            assert!(!evicted);
            idle.push(t);
        }
        let (newest, evicted) = slots.admit(ip(1)).unwrap();
        assert!(evicted, "the oldest idle one made room");
        assert_eq!(closes(&idle[0]).await, Some(Closed::Evicted));
        assert_eq!(closes(&idle[1]).await, None);
        assert_eq!(closes(&honest).await, None);
        assert_eq!(slots.pending(), PENDING_PER_IP);
        drop(newest);
        assert_eq!(slots.pending(), PENDING_PER_IP - 1);
    }

    #[tokio::test]
    async fn a_peers_new_connection_replaces_its_old_one_and_slots_are_freed_on_drop() {
        let slots = Slots::new(2);
        let mut a = slots.admit(ip(1)).unwrap().0;
        a.authenticate(PeerId(1)).unwrap();
        let mut b = slots.admit(ip(2)).unwrap().0;
        b.authenticate(PeerId(2)).unwrap();
        let mut c = slots.admit(ip(3)).unwrap().0;
        assert_eq!(c.authenticate(PeerId(3)), Err(Full), "two slots, both held");
        let mut a2 = slots.admit(ip(1)).unwrap().0;
        a2.authenticate(PeerId(1)).unwrap();
        assert_eq!(closes(&a).await, Some(Closed::Replaced));
        drop(a);
        assert_eq!(slots.authenticated(), 2, "a's drop did not free a2's slot");
        drop(b);
        c.authenticate(PeerId(3)).unwrap();
        assert!(c.is_authenticated());
    }

    #[test]
    fn pending_connections_are_bounded_in_all() {
        let slots = Slots::new(3);
        let _held: Vec<_> = (1..=3).map(|i| slots.admit(ip(i)).unwrap()).collect();
        assert!(slots.admit(ip(4)).is_err());
    }
}

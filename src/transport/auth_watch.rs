//! Which peers' frames failed authentication lately: a peer whose key
//! differs from ours still connects and shows `up`, so `GET /v1/peers`
//! says `auth: failing` for it as well.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::gossip::PeerId;

/// A failure this recent makes a peer `failing`.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Peers remembered at most (the oldest failure is forgotten first).
const MAX_PEERS: usize = 4096;

#[derive(Default)]
pub struct AuthWatch {
    last_failure: Mutex<HashMap<PeerId, Instant>>,
}

impl AuthWatch {
    /// A frame claiming to be from `peer` (at its address), or `peer`'s
    /// hello, failed authentication.
    pub fn failed(&self, peer: PeerId) {
        let mut m = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_PEERS && !m.contains_key(&peer) {
            m.retain(|_, t| t.elapsed() < WINDOW);
            if m.len() >= MAX_PEERS
                && let Some(oldest) = m.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p)
            {
                m.remove(&oldest);
            }
        }
        m.insert(peer, Instant::now());
    }

    pub fn is_failing(&self, peer: PeerId) -> bool {
        let m = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&peer).is_some_and(|t| t.elapsed() < WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failure_marks_a_peer_for_a_minute() {
        let w = AuthWatch::default();
        assert!(!w.is_failing(PeerId(1)));
        w.failed(PeerId(1));
        assert!(w.is_failing(PeerId(1)));
        assert!(!w.is_failing(PeerId(2)));
        tokio::time::advance(WINDOW + Duration::from_secs(1)).await;
        assert!(!w.is_failing(PeerId(1)));
    }
}

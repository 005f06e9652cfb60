//! Who the peers are. Discovery (Kubernetes, static, DNS) lives outside the
//! core; it hands the core a set of peer ids, and the core works out who
//! joined and who left.

use std::fmt;
use std::hash::Hasher;
use std::net::SocketAddr;
use std::sync::Arc;

use rand::RngExt;
use rustc_hash::FxHashMap;

/// A peer's stable identity as discovery names it (a pod UID, or a
/// `host:port` for static peers), hashed to 64 bits so the core can keep
/// and compare it cheaply.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl PeerId {
    /// The id for a discovery name. Stable across processes and versions
    /// (SipHash-1-3 with fixed keys), since every node must derive the same
    /// id for the same peer.
    pub fn from_name(name: &str) -> PeerId {
        let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6865_6172, 0x0073_6179);
        h.write(name.as_bytes());
        PeerId(h.finish())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One discovered peer: who it is and where its gossip port is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its id, derived from its name.
    pub id: PeerId,
    /// The discovery name the id was derived from (pod name or UID,
    /// `host:port`), for people and logs.
    pub name: Arc<str>,
    /// The gossip address; `None` where there is no network (the simulator).
    pub addr: Option<SocketAddr>,
}

impl Peer {
    /// A peer named `name` at `addr`.
    pub fn new(name: &str, addr: SocketAddr) -> Peer {
        Peer {
            id: PeerId::from_name(name),
            name: name.into(),
            addr: Some(addr),
        }
    }

    /// A peer known only by its id.
    pub fn anonymous(id: PeerId) -> Peer {
        Peer {
            id,
            name: Arc::from(""),
            addr: None,
        }
    }
}

/// An immutable snapshot of the discovered peers. Shared by `Arc`, so a
/// simulator can hand one snapshot to 10,000 nodes without 10,000 copies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSet {
    ids: Vec<PeerId>,
    peers: FxHashMap<PeerId, Peer>,
}

impl PeerSet {
    /// A snapshot of these peers; a later duplicate id replaces an earlier.
    pub fn new(peers: impl IntoIterator<Item = Peer>) -> PeerSet {
        let peers: FxHashMap<PeerId, Peer> = peers.into_iter().map(|p| (p.id, p)).collect();
        let mut ids: Vec<PeerId> = peers.keys().copied().collect();
        ids.sort_unstable();
        PeerSet { ids, peers }
    }

    /// A snapshot of peers known only by id.
    pub fn from_ids(ids: impl IntoIterator<Item = PeerId>) -> PeerSet {
        PeerSet::new(ids.into_iter().map(Peer::anonymous))
    }

    /// A member by id.
    pub fn get(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(&id)
    }

    /// The peers in id order.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.ids.iter().filter_map(|id| self.peers.get(id))
    }

    /// Members in the set.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: PeerId) -> bool {
        self.peers.contains_key(&id)
    }

    /// Every member's id, sorted.
    pub fn ids(&self) -> &[PeerId] {
        &self.ids
    }

    /// A uniformly random member other than `exclude`, if there is one.
    pub fn random_other(&self, rng: &mut impl rand::Rng, exclude: PeerId) -> Option<PeerId> {
        let n = self.ids.len();
        let others = n - usize::from(self.contains(exclude));
        if others == 0 {
            return None;
        }
        loop {
            let p = self.ids[rng.random_range(0..n)];
            if p != exclude {
                return Some(p);
            }
        }
    }
}

/// A new membership snapshot and how it differs from the previous one. A
/// peer whose address changed counts as having left and joined (a reused
/// identity at a new address is a different process).
#[derive(Clone, Debug)]
pub struct MembershipUpdate {
    /// The new snapshot.
    pub members: Arc<PeerSet>,
    /// Members in it that were not in the previous one.
    pub joined: Vec<PeerId>,
    /// Members of the previous one that are not in it.
    pub left: Vec<PeerId>,
}

impl MembershipUpdate {
    /// The update from `old` to `new`.
    pub fn between(old: &PeerSet, new: Arc<PeerSet>) -> MembershipUpdate {
        let same = |a: &PeerSet, b: &PeerSet, id: PeerId| {
            b.get(id)
                .is_some_and(|p| a.get(id).map(|q| &q.addr) == Some(&p.addr))
        };
        let joined = new
            .ids
            .iter()
            .copied()
            .filter(|p| !same(old, &new, *p))
            .collect();
        let left = old
            .ids
            .iter()
            .copied()
            .filter(|p| !same(&new, old, *p))
            .collect();
        MembershipUpdate {
            members: new,
            joined,
            left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn peer_ids_are_stable_and_distinct() {
        assert_eq!(PeerId::from_name("pod-a"), PeerId::from_name("pod-a"));
        assert_ne!(PeerId::from_name("pod-a"), PeerId::from_name("pod-b"));
    }

    #[test]
    fn update_between_two_snapshots_names_who_joined_and_left() {
        let old = PeerSet::from_ids([PeerId(1), PeerId(2), PeerId(3)]);
        let new = Arc::new(PeerSet::from_ids([
            PeerId(3),
            PeerId(2),
            PeerId(4),
            PeerId(4),
        ]));
        let u = MembershipUpdate::between(&old, new);
        assert_eq!(u.joined, vec![PeerId(4)]);
        assert_eq!(u.left, vec![PeerId(1)]);
        assert_eq!(u.members.len(), 3);
    }

    #[test]
    fn a_peer_at_a_new_address_has_left_and_joined() {
        let a: SocketAddr = "10.0.0.1:7946".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7946".parse().unwrap();
        let old = PeerSet::new([Peer::new("pod-a", a)]);
        let moved = Peer {
            addr: Some(b),
            ..Peer::new("pod-a", a)
        };
        let u = MembershipUpdate::between(&old, Arc::new(PeerSet::new([moved])));
        let id = PeerId::from_name("pod-a");
        assert_eq!((u.joined, u.left), (vec![id], vec![id]));
        assert_eq!(u.members.get(id).unwrap().addr, Some(b));
        assert_eq!(&*u.members.get(id).unwrap().name, "pod-a");
    }

    #[test]
    fn random_other_never_returns_the_excluded_peer() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
        let set = PeerSet::from_ids([PeerId(1), PeerId(2)]);
        for _ in 0..100 {
            assert_eq!(set.random_other(&mut rng, PeerId(1)), Some(PeerId(2)));
        }
        let alone = PeerSet::from_ids([PeerId(1)]);
        assert_eq!(alone.random_other(&mut rng, PeerId(1)), None);
        assert_eq!(PeerSet::default().random_other(&mut rng, PeerId(1)), None);
    }
}

//! Node tests: membership.

use super::*;
use crate::message::Inbound;

#[test]
fn a_departed_peers_origin_is_forgotten_after_retention() {
    let cfg = NodeConfig {
        retention: Duration::from_secs(5),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1, 2]), &mut fx);
    n.start(T0, &mut fx);
    let ev = event(origin_of(1), 1, T0, "k");
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 60,
            items: vec![direct(&ev)],
        },
        &mut fx,
    );
    let before = n.origins_known();
    let update = MembershipUpdate::between(
        n.members(),
        Arc::new(PeerSet::from_ids([PeerId(0), PeerId(2)])),
    );
    n.apply_membership(T0, &update, &mut fx);
    n.timer(
        T0 + Duration::from_secs(4),
        Timer::SyncWithRandomPeer,
        &mut fx,
    );
    assert_eq!(n.origins_known(), before);
    n.timer(
        T0 + Duration::from_secs(6),
        Timer::SyncWithRandomPeer,
        &mut fx,
    );
    assert_eq!(n.origins_known(), before - 1);
    assert_eq!(n.stats().origins_forgotten, 1);
}

#[test]
fn a_restarted_peer_has_a_new_origin_and_its_old_one_is_retired() {
    let cfg = NodeConfig {
        retention: Duration::from_secs(5),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1]), &mut fx);
    n.start(T0, &mut fx);
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: Origin(77),
            frame_len: 40,
            items: vec![Item::Prune],
        },
        &mut fx,
    );
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: Origin(78),
            frame_len: 40,
            items: vec![Item::Prune],
        },
        &mut fx,
    );
    n.timer(
        T0 + Duration::from_secs(6),
        Timer::SyncWithRandomPeer,
        &mut fx,
    );
    assert_eq!(n.stats().origins_forgotten, 1);
}

/// Each event from a peer that restarted, whether a node got it by push or
/// late by repair, and a few of its old events still in another node's
/// buffer.
fn restarted_peer_cluster() -> (Cluster, Vec<EventId>) {
    let mut c = Cluster::new(3, config());
    let mut ids: Vec<EventId> = (0..5).map(|k| c.publish(2, &format!("k{k}"))).collect();
    // Node 1 misses one and gets it by repair a little later, so its
    // buffer keeps it longer than node 0 keeps the origin.
    c.cut.push((1, 2));
    ids.push(c.publish(2, "late"));
    c.advance(Duration::from_millis(200));
    c.restart(2, config());
    c.cut.clear();
    c.advance(Duration::from_secs(3));
    ids.push(c.publish(2, "after"));
    (c, ids)
}

#[test]
fn a_restarted_peers_old_origin_is_forgotten_without_a_flush() {
    let (mut c, ids) = restarted_peer_cluster();
    c.advance(Duration::from_secs(90));
    for i in 0..2 {
        assert!(
            c.flushes[i].is_empty(),
            "node {i} flushed: {:?}",
            c.flushes[i]
        );
        for id in &ids {
            assert_eq!(c.count(i, *id), 1, "node {i}, event {id}");
        }
    }
    assert!(c.nodes[0].stats().origins_forgotten >= 1);
}

#[test]
fn a_late_copy_of_a_forgotten_origins_event_is_not_delivered_again() {
    let mut c = Cluster::new(3, config());
    // Node 1 is cut off while node 2 publishes, then restarts.
    c.cut = vec![(0, 1), (1, 2)];
    let id = c.publish(2, "k");
    c.advance(Duration::from_millis(100));
    c.restart(2, config());
    c.advance(Duration::from_secs(10));
    // Node 1 gets the event by repair 10 s later, so its buffer holds it
    // until long after node 0 has forgotten the origin.
    c.cut.clear();
    c.advance(Duration::from_secs(3));
    assert_eq!(c.count(1, id), 1);
    c.advance(Duration::from_secs(60));
    assert_eq!(c.count(0, id), 1, "delivered again to node 0");
    assert_eq!(c.count(1, id), 1);
    assert!(c.flushes[0].is_empty() && c.flushes[1].is_empty());
}

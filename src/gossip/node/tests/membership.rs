//! Node tests: membership.

use super::*;

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
    n.receive(T0, PeerId(1), origin_of(1), 60, vec![direct(&ev)], &mut fx);
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
    n.receive(T0, PeerId(1), Origin(77), 40, vec![Item::Prune], &mut fx);
    n.receive(T0, PeerId(1), Origin(78), 40, vec![Item::Prune], &mut fx);
    n.timer(
        T0 + Duration::from_secs(6),
        Timer::SyncWithRandomPeer,
        &mut fx,
    );
    assert_eq!(n.stats().origins_forgotten, 1);
}

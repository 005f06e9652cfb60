//! Confirmations between nodes: an origin tracks a publish, replicas report
//! what their apps made of it, and the origin's answer follows.

use super::*;

fn states(c: &Cluster, i: usize, id: EventId) -> Vec<ReplicaState> {
    c.nodes[i]
        .confirmation(id)
        .unwrap()
        .replicas
        .iter()
        .map(|r| r.state)
        .collect()
}

#[test]
fn a_tracked_publish_is_confirmed_once_every_other_app_acknowledged_it() {
    let mut c = Cluster::new(4, config());
    let id = c.publish_tracked(0, "42");
    assert_eq!(c.confirmed[0], [id]);
    let conf = c.nodes[0].confirmation(id).unwrap();
    assert!(conf.confirmed());
    assert_eq!(conf.done_at, Some(c.now));
    assert_eq!(states(&c, 0, id), [ReplicaState::Acknowledged; 3]);
    assert_eq!(c.nodes[0].stats().confirm_reports_received, 3);
}

#[test]
fn an_untracked_publish_sends_nothing_for_confirmations() {
    let mut c = Cluster::new(4, config());
    let frames_before: u64 = c.nodes.iter().map(|n| n.stats().frames_out).sum();
    let id = c.publish(0, "42");
    let frames: u64 = c.nodes.iter().map(|n| n.stats().frames_out).sum();
    assert_eq!(frames - frames_before, 3, "one frame per peer, the event's");
    assert!(c.nodes[0].confirmation(id).is_none());
    let wants: u64 = c.nodes.iter().map(|n| n.stats().confirm_wants_sent).sum();
    let reports: u64 = c.nodes.iter().map(|n| n.stats().confirm_reports_sent).sum();
    assert_eq!((wants, reports), (0, 0));
}

#[test]
fn a_replica_whose_app_holds_the_event_stays_pending_until_it_settles() {
    let mut c = Cluster::new(3, config());
    c.apps[2] = None;
    let id = c.publish_tracked(0, "42");
    assert!(c.confirmed[0].is_empty());
    assert_eq!(
        states(&c, 0, id),
        [ReplicaState::Acknowledged, ReplicaState::Pending]
    );
    c.settle(2, &[id], Outcome::Flushed);
    assert_eq!(c.confirmed[0], [id]);
    assert_eq!(
        states(&c, 0, id),
        [ReplicaState::Acknowledged, ReplicaState::Flushed]
    );
}

#[test]
fn a_rejection_finishes_the_wait_unconfirmed() {
    let mut c = Cluster::new(3, config());
    c.apps[1] = Some(Outcome::Rejected);
    c.apps[2] = None;
    let id = c.publish_tracked(0, "42");
    assert_eq!(c.confirmed[0], [id]);
    let conf = c.nodes[0].confirmation(id).unwrap();
    assert!(!conf.confirmed() && conf.finished());
}

#[test]
fn a_lost_report_is_asked_for_again() {
    let mut c = Cluster::new(3, config());
    c.apps[2] = None;
    let id = c.publish_tracked(0, "42");
    // The report goes out while the link back is cut: lost.
    c.cut.push((0, 2));
    c.settle(2, &[id], Outcome::Acknowledged);
    assert!(c.confirmed[0].is_empty());
    c.cut.clear();
    c.advance(Duration::from_millis(600));
    assert_eq!(
        c.confirmed[0],
        [id],
        "asked again, answered from the record"
    );
}

#[test]
fn a_replica_that_leaves_is_departed_and_no_longer_waited_for() {
    let mut c = Cluster::new(3, config());
    c.apps[2] = None;
    let id = c.publish_tracked(0, "42");
    let mut fx = Vec::new();
    let old = c.nodes[0].members().clone();
    let now: Vec<PeerId> = vec![PeerId(0), PeerId(1)];
    let update = MembershipUpdate::between(&old, Arc::new(PeerSet::from_ids(now)));
    c.nodes[0].apply_membership(c.now, &update, &mut fx);
    c.collect(0, fx);
    assert_eq!(c.confirmed[0], [id]);
    assert_eq!(
        states(&c, 0, id),
        [ReplicaState::Acknowledged, ReplicaState::Departed]
    );
}

#[test]
fn in_tree_mode_replicas_report_straight_to_the_origin() {
    let cfg = NodeConfig {
        direct_push_max_peers: 2,
        ..config()
    };
    let mut c = Cluster::new(12, cfg);
    let id = c.publish_tracked(3, "42");
    c.advance(Duration::from_millis(200));
    assert_eq!(c.confirmed[3], [id]);
    assert_eq!(states(&c, 3, id), [ReplicaState::Acknowledged; 11]);
}

#[test]
fn own_app_must_confirm_too_with_deliver_own() {
    let cfg = NodeConfig {
        deliver_own: true,
        ..config()
    };
    let mut c = Cluster::new(2, cfg);
    c.apps[0] = None;
    let id = c.publish_tracked(0, "42");
    assert!(c.confirmed[0].is_empty(), "its own app holds it");
    c.settle(0, &[id], Outcome::Acknowledged);
    assert_eq!(c.confirmed[0], [id]);
    assert_eq!(c.nodes[0].confirmation(id).unwrap().replicas.len(), 2);
}

#[test]
fn a_run_of_tracked_events_is_reported_in_one_range() {
    let mut c = Cluster::new(2, config());
    c.apps[1] = None;
    let ids: Vec<EventId> = (0..50)
        .map(|k| c.publish_tracked(0, &format!("k{k}")))
        .collect();
    let before = c.nodes[1].stats().confirm_reports_sent;
    c.settle(1, &ids, Outcome::Acknowledged);
    assert_eq!(c.confirmed[0], ids);
    assert_eq!(
        c.nodes[1].stats().confirm_reports_sent - before,
        1,
        "one report for the whole run"
    );
}

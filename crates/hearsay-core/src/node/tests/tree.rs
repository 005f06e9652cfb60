//! Node tests: the broadcast tree.

use super::*;
use crate::message::Inbound;

fn tree_node(view_max: usize) -> (Node, Vec<Effect>) {
    let cfg = NodeConfig {
        direct_push_max_peers: 1,
        view_min: 1,
        view_max,
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1, 2, 3, 4]), &mut fx);
    fx.clear();
    (n, fx)
}

#[test]
fn a_duplicate_over_the_tree_prunes_the_link_but_not_the_parent() {
    let (mut n, mut fx) = tree_node(8);
    n.receive(
        T0,
        Inbound {
            from: PeerId(2),
            sender_origin: origin_of(2),
            frame_len: 40,
            items: vec![Item::Neighbor],
        },
        &mut fx,
    );
    assert_eq!(n.link(PeerId(2)), Some(Link::Eager));
    let ev = event(origin_of(9), 1, T0, "k");
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 60,
            items: vec![relay(&ev, 1)],
        },
        &mut fx,
    );
    n.receive(
        T0,
        Inbound {
            from: PeerId(2),
            sender_origin: origin_of(2),
            frame_len: 60,
            items: vec![relay(&ev, 2)],
        },
        &mut fx,
    );
    assert_eq!(n.link(PeerId(2)), Some(Link::Lazy));
    assert!(
        sends(&fx)
            .iter()
            .any(|(p, items)| *p == PeerId(2) && items.contains(&Item::Prune))
    );
    // The parent sends a duplicate of something it just relayed: kept.
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 60,
            items: vec![relay(&ev, 1)],
        },
        &mut fx,
    );
    assert_eq!(n.link(PeerId(1)), Some(Link::Eager));
    // Outside the protection window it is pruned like any other link.
    let later = T0 + Duration::from_secs(10);
    n.receive(
        later,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 60,
            items: vec![relay(&ev, 1)],
        },
        &mut fx,
    );
    assert_eq!(n.link(PeerId(1)), Some(Link::Lazy));
}

#[test]
fn a_new_event_goes_to_eager_peers_and_is_announced_to_lazy_ones_in_one_batch() {
    let (mut n, mut fx) = tree_node(8);
    let mut setup = Vec::new();
    n.receive(
        T0,
        Inbound {
            from: PeerId(3),
            sender_origin: origin_of(3),
            frame_len: 40,
            items: vec![Item::Neighbor],
        },
        &mut setup,
    );
    n.receive(
        T0,
        Inbound {
            from: PeerId(4),
            sender_origin: origin_of(4),
            frame_len: 40,
            items: vec![Item::Prune],
        },
        &mut setup,
    );
    n.receive(
        T0,
        Inbound {
            from: PeerId(4),
            sender_origin: origin_of(4),
            frame_len: 40,
            items: vec![Item::IHave(vec![])],
        },
        &mut setup,
    );
    assert_eq!(n.link(PeerId(4)), Some(Link::Lazy));
    let evs: Vec<_> = (1..=3).map(|s| event(origin_of(9), s, T0, "k")).collect();
    for ev in &evs {
        n.receive(
            T0,
            Inbound {
                from: PeerId(1),
                sender_origin: origin_of(1),
                frame_len: 60,
                items: vec![relay(ev, 1)],
            },
            &mut fx,
        );
    }
    let to3: usize = sends(&fx)
        .iter()
        .filter(|(p, _)| *p == PeerId(3))
        .map(|(_, items)| items.iter().filter(|i| i.is_payload()).count())
        .sum();
    assert_eq!(to3, 3, "eager peer 3 gets every event");
    assert!(sends(&fx).iter().all(|(p, _)| *p != PeerId(4)));
    let flush: Vec<_> = timers(&fx)
        .into_iter()
        .filter(|(_, t)| *t == Timer::FlushLazyQueue)
        .collect();
    assert_eq!(flush.len(), 1, "one flush timer for the batch");
    let mut out = Vec::new();
    n.timer(flush[0].0, Timer::FlushLazyQueue, &mut out);
    let ihave: Vec<_> = sends(&out)
        .into_iter()
        .filter(|(p, _)| *p == PeerId(4))
        .collect();
    assert_eq!(ihave.len(), 1);
    let Item::IHave(anns) = &ihave[0].1[0] else {
        panic!("expected IHAVE")
    };
    assert_eq!(anns.len(), 3);
    assert!(anns.iter().all(|a| a.hop == 2));
}

#[test]
fn an_announced_event_that_does_not_arrive_is_grafted_from_the_announcer() {
    let (mut n, mut fx) = tree_node(8);
    let id = EventId {
        origin: origin_of(9),
        seq: 1,
    };
    n.receive(
        T0,
        Inbound {
            from: PeerId(2),
            sender_origin: origin_of(2),
            frame_len: 40,
            items: vec![Item::IHave(vec![Announcement { id, hop: 3 }])],
        },
        &mut fx,
    );
    let (at, timer) = timers(&fx)
        .into_iter()
        .find(|(_, t)| matches!(t, Timer::GraftMissing(_)))
        .expect("graft timer");
    assert_eq!(at, T0 + n.config().graft_timeout);
    let mut out = Vec::new();
    n.timer(at, timer, &mut out);
    assert!(
        sends(&out)
            .iter()
            .any(|(p, items)| *p == PeerId(2) && items == &[Item::Graft(vec![id])])
    );
    assert_eq!(n.link(PeerId(2)), Some(Link::Eager));
    // Once the event has arrived, a late timer does nothing.
    let ev = event(origin_of(9), 1, T0, "k");
    n.receive(
        at,
        Inbound {
            from: PeerId(2),
            sender_origin: origin_of(2),
            frame_len: 60,
            items: vec![relay(&ev, 3)],
        },
        &mut out,
    );
    let mut none = Vec::new();
    n.timer(at + Duration::from_secs(1), timer, &mut none);
    assert!(sends(&none).is_empty());
}

#[test]
fn a_graft_is_answered_with_the_event_and_makes_the_link_eager() {
    let (mut n, mut fx) = tree_node(8);
    let ev = event(origin_of(9), 1, T0, "k");
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 60,
            items: vec![relay(&ev, 1)],
        },
        &mut fx,
    );
    n.receive(
        T0,
        Inbound {
            from: PeerId(3),
            sender_origin: origin_of(3),
            frame_len: 40,
            items: vec![Item::Prune],
        },
        &mut fx,
    );
    let mut out = Vec::new();
    n.receive(
        T0,
        Inbound {
            from: PeerId(3),
            sender_origin: origin_of(3),
            frame_len: 40,
            items: vec![Item::Graft(vec![ev.id])],
        },
        &mut out,
    );
    assert_eq!(n.link(PeerId(3)), Some(Link::Eager));
    let answer = sends(&out);
    let Item::Event(item) = &answer[0].1[0] else {
        panic!("expected the event")
    };
    assert_eq!(item.route, crate::message::Route::GraftAnswer);
    assert_eq!(item.hop, 2);
}

#[test]
fn a_full_view_refuses_new_neighbours() {
    let (mut n, mut fx) = tree_node(2);
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 40,
            items: vec![Item::Neighbor],
        },
        &mut fx,
    );
    n.receive(
        T0,
        Inbound {
            from: PeerId(2),
            sender_origin: origin_of(2),
            frame_len: 40,
            items: vec![Item::Neighbor],
        },
        &mut fx,
    );
    fx.clear();
    n.receive(
        T0,
        Inbound {
            from: PeerId(3),
            sender_origin: origin_of(3),
            frame_len: 40,
            items: vec![Item::Neighbor],
        },
        &mut fx,
    );
    assert_eq!(n.link(PeerId(3)), None);
    assert_eq!(sends(&fx), vec![(PeerId(3), &[Item::Disconnect][..])]);
    assert_eq!(n.stats().neighbors_refused, 1);
}

#[test]
fn a_small_cluster_in_tree_mode_delivers_everything_exactly_once() {
    let cfg = NodeConfig {
        direct_push_max_peers: 2,
        view_min: 2,
        ..config()
    };
    let mut c = Cluster::new(12, cfg);
    let ids: Vec<EventId> = (0..24)
        .map(|k| c.publish(k % 12, &format!("k{k}")))
        .collect();
    c.advance(Duration::from_secs(2));
    for (k, id) in ids.iter().enumerate() {
        for i in 0..12 {
            let want = usize::from(i != k % 12);
            assert_eq!(c.count(i, *id), want, "event {k} at node {i}");
        }
    }
}

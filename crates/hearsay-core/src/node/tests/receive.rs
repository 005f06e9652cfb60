//! Node tests: receiving.

use super::*;
use crate::message::Inbound;

#[test]
fn an_event_is_delivered_once_and_a_duplicate_is_suppressed() {
    let mut c = Cluster::new(3, config());
    let id = c.publish(0, "42");
    assert_eq!((c.count(1, id), c.count(2, id)), (1, 1));
    assert_eq!(c.count(0, id), 0);
    // The same frame again.
    let ev = c.nodes[0].retention().get(&id).unwrap().event.clone();
    let mut fx = Vec::new();
    c.nodes[1].receive(
        c.now,
        Inbound {
            from: PeerId(0),
            sender_origin: origin_of(0),
            frame_len: 100,
            items: vec![direct(&ev)],
        },
        &mut fx,
    );
    assert!(delivered(&fx).is_empty());
    assert_eq!(c.nodes[1].stats().duplicates_suppressed, 1);
}

#[test]
fn frames_from_itself_and_events_claiming_its_origin_are_ignored() {
    let mut n = node_at(0, config(), T0);
    let mut fx = Vec::new();
    let forged = event(origin_of(0), 7, T0, "k");
    n.receive(
        T0,
        Inbound {
            from: PeerId(0),
            sender_origin: origin_of(0),
            frame_len: 50,
            items: vec![direct(&forged)],
        },
        &mut fx,
    );
    assert_eq!(n.stats().frames_in, 0);
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 50,
            items: vec![direct(&forged)],
        },
        &mut fx,
    );
    assert!(delivered(&fx).is_empty());
}

#[test]
fn an_invalid_event_from_a_peer_is_counted_and_dropped() {
    let mut n = node_at(0, config(), T0);
    let mut fx = Vec::new();
    let bad = Arc::new(Event {
        id: EventId {
            origin: origin_of(1),
            seq: 1,
        },
        published_at: T0,
        body: EventBody::Invalidate(Invalidation::default()),
    });
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 50,
            items: vec![direct(&bad)],
        },
        &mut fx,
    );
    assert!(delivered(&fx).is_empty());
    assert_eq!(n.stats().events_invalid, 1);
}

#[test]
fn events_published_before_the_node_started_are_not_delivered_but_config_is() {
    let start = T0 + Duration::from_secs(10);
    let mut n = node_at(0, config(), start);
    let mut fx = Vec::new();
    let old = event(origin_of(1), 1, T0, "k");
    let cfg_write = Arc::new(Event {
        id: EventId {
            origin: origin_of(1),
            seq: 2,
        },
        published_at: T0,
        body: EventBody::Config {
            key: "feature".into(),
            value: "on".into(),
            version: Version {
                hlc: 5,
                origin: origin_of(1),
            },
        },
    });
    n.receive(
        start,
        Inbound {
            from: PeerId(1),
            sender_origin: origin_of(1),
            frame_len: 50,
            items: vec![direct(&old), direct(&cfg_write)],
        },
        &mut fx,
    );
    assert_eq!(delivered(&fx), vec![cfg_write.id]);
    assert_eq!(n.stats().events_predating_start, 1);
    assert_eq!(
        n.config_get("feature").unwrap().value.as_deref(),
        Some("on")
    );
}

#[test]
fn inbound_frames_over_a_peers_limit_are_dropped_and_counted_without_affecting_others() {
    let cfg = NodeConfig {
        inbound_frames_per_peer: RateSpec::new(2, 2),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    for seq in 1..=5 {
        let ev = event(origin_of(1), seq, T0, "k");
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
    }
    let ev = event(origin_of(2), 1, T0, "k");
    n.receive(
        T0,
        Inbound {
            from: PeerId(2),
            sender_origin: origin_of(2),
            frame_len: 60,
            items: vec![direct(&ev)],
        },
        &mut fx,
    );
    assert_eq!(n.stats().frames_in, 3);
    assert_eq!(n.stats().frames_rate_limited_in, 3);
    assert_eq!(delivered(&fx).len(), 3);
}

#[test]
fn inbound_bytes_over_a_peers_limit_are_dropped_and_counted() {
    let cfg = NodeConfig {
        inbound_bytes_per_peer: RateSpec::new(1000, 1000),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    for seq in 1..=3 {
        let ev = event(origin_of(1), seq, T0, "k");
        n.receive(
            T0,
            Inbound {
                from: PeerId(1),
                sender_origin: origin_of(1),
                frame_len: 600,
                items: vec![direct(&ev)],
            },
            &mut fx,
        );
    }
    assert_eq!(n.stats().frames_in, 1);
    assert_eq!(n.stats().bytes_rate_limited_in, 1200);
}

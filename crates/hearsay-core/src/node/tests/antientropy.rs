//! Node tests: anti-entropy.

use super::*;
use crate::message::Inbound;

#[test]
fn an_event_missed_behind_a_cut_link_is_repaired_by_anti_entropy() {
    let mut c = Cluster::new(3, config());
    c.cut.push((0, 2));
    let id = c.publish(0, "42");
    assert_eq!(c.count(2, id), 0);
    c.cut.clear();
    c.advance(Duration::from_secs(3));
    assert_eq!(c.count(2, id), 1);
    assert!(c.nodes[2].stats().repairs_received >= 1);
    assert!(c.flushes[2].is_empty());
}

#[test]
fn a_late_joiner_gets_the_whole_config_as_soon_as_the_others_learn_of_it() {
    let mut c = Cluster::new(3, config());
    c.set_config(0, "color", "blue");
    c.set_config(1, "size", "xl");
    c.set_config(2, "color", "green");
    let mut fx = Vec::new();
    c.nodes[1]
        .delete_config(c.now, "size".into(), &mut fx)
        .unwrap();
    c.collect(1, fx);
    c.run();
    c.set_config(0, "mode", "fast");
    let expected = c.config_of(0);
    assert_eq!(expected, c.config_of(1));
    assert_eq!(
        expected,
        vec![
            ("color".to_owned(), "green".to_owned()),
            ("mode".to_owned(), "fast".to_owned())
        ]
    );
    c.advance(Duration::from_secs(2));
    let late = c.join_seen_by(config(), &[]);
    assert!(c.config_of(late).is_empty());
    // No periodic round: node 0's discovery lists the joiner, and its
    // digest starts the exchange.
    c.tell_all_members(0);
    assert_eq!(c.config_of(late), expected);
    let got: Vec<String> = c.delivered[late]
        .iter()
        .filter_map(|e| e.body.config_version().map(|(k, _)| k.to_owned()))
        .collect();
    assert!(got.contains(&"color".to_owned()) && got.contains(&"mode".to_owned()));
}

#[test]
fn an_event_published_before_its_origin_knew_a_joiner_reaches_it_when_it_does() {
    let cfg = NodeConfig {
        anti_entropy_interval: Duration::from_secs(60),
        ..config()
    };
    let mut c = Cluster::new(2, cfg.clone());
    // The joiner's discovery and node 1's list it; node 0's does not yet.
    let late = c.join_seen_by(cfg, &[1]);
    let id = c.publish(0, "k");
    assert_eq!(c.count(1, id), 1);
    assert_eq!(c.count(late, id), 0, "node 0 did not know the joiner");
    c.advance(Duration::from_millis(300));
    assert_eq!(c.count(late, id), 0, "no periodic round came");
    c.tell_all_members(0);
    assert_eq!(c.count(late, id), 1);
    assert!(c.flushes[late].is_empty(), "{:?}", c.flushes[late]);
}

#[test]
fn concurrent_writes_to_one_key_converge_to_the_same_value_everywhere() {
    let mut c = Cluster::new(3, config());
    c.cut = vec![(0, 1), (0, 2), (1, 2)];
    c.set_config(0, "k", "from-0");
    c.set_config(1, "k", "from-1");
    c.set_config(2, "k", "from-2");
    c.cut.clear();
    c.advance(Duration::from_secs(5));
    let v0 = c.config_of(0);
    assert_eq!(v0.len(), 1);
    assert_eq!(c.config_of(1), v0);
    assert_eq!(c.config_of(2), v0);
}

#[test]
fn events_gone_from_every_buffer_turn_into_one_flush() {
    let cfg = NodeConfig {
        retention: Duration::from_secs(2),
        gap_flush_after: Duration::from_secs(60),
        ..config()
    };
    let mut c = Cluster::new(3, cfg);
    c.cut = vec![(0, 2), (1, 2)];
    let a = c.publish(0, "a");
    let b = c.publish(0, "b");
    c.advance(Duration::from_secs(5));
    c.cut.clear();
    c.advance(Duration::from_secs(3));
    assert_eq!((c.count(2, a), c.count(2, b)), (0, 0));
    assert_eq!(c.flushes[2], vec![FlushReason::GapUnrecoverable]);
    assert_eq!(c.nodes[2].stats().seqs_lost, 2);
    // Covered for good: later rounds do not flush again.
    c.advance(Duration::from_secs(5));
    assert_eq!(c.flushes[2].len(), 1);
    // A later event still gets through normally.
    let d = c.publish(0, "d");
    assert_eq!(c.count(2, d), 1);
}

#[test]
fn a_gap_nobody_can_fill_is_flushed_after_its_timeout() {
    let cfg = NodeConfig {
        gap_flush_after: Duration::from_secs(3),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1]), &mut fx);
    // Seq 2 arrives, seq 1 never does.
    let ev = event(origin_of(1), 2, T0, "k");
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
    fx.clear();
    n.timer(
        T0 + Duration::from_secs(2),
        Timer::SyncWithRandomPeer,
        &mut fx,
    );
    assert!(!fx.iter().any(|e| matches!(e, Effect::Flush { .. })));
    n.timer(
        T0 + Duration::from_secs(4),
        Timer::SyncWithRandomPeer,
        &mut fx,
    );
    let flushes: Vec<_> = fx
        .iter()
        .filter(|e| matches!(e, Effect::Flush { .. }))
        .collect();
    assert_eq!(
        flushes,
        vec![&Effect::Flush {
            cache: None,
            reason: FlushReason::GapTimeout
        }]
    );
    assert_eq!(n.stats().seqs_lost, 1);
}

#[test]
fn a_joiner_skips_what_predates_it_without_flushing() {
    let cfg = NodeConfig {
        retention: Duration::from_secs(2),
        ..config()
    };
    let mut c = Cluster::new(2, cfg.clone());
    for k in 0..3 {
        c.publish(0, &format!("old-{k}"));
    }
    c.advance(Duration::from_secs(10));
    let late = c.join(cfg);
    let fresh = c.publish(0, "new");
    c.advance(Duration::from_secs(5));
    assert_eq!(c.count(late, fresh), 1);
    assert!(c.flushes[late].is_empty(), "{:?}", c.flushes[late]);
    assert_eq!(c.delivered[late].len(), 1);
}

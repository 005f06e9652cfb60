//! The simulator's scenarios: the same core, thousands of
//! nodes, faults; every pair delivered or covered by a flush.

use std::time::Duration;

use hearsay::sim::{Churn, Partition, Report, Sim, SimConfig};

fn run(cfg: SimConfig) -> Report {
    Sim::new(cfg).expect("valid scenario").run()
}

fn assert_nothing_lost(r: &Report) {
    assert_eq!(r.undelivered, 0, "{r:#?}");
    assert_eq!(r.duplicates, 0, "{r:#?}");
    assert_eq!(r.published, r.events, "{r:#?}");
}

#[test]
fn a_small_cluster_gets_every_event_in_one_hop_at_the_physical_minimum() {
    let r = run(SimConfig::new(20, 50, 0.0, 1));
    assert_nothing_lost(&r);
    assert_eq!(r.delivered_ratio, 1.0);
    assert_eq!(r.payload_per_event_per_peer, 1.0);
    assert_eq!(r.last_delivery_hop_max, 1);
}

#[test]
fn a_thousand_nodes_get_every_event_over_the_tree_near_the_minimum() {
    let r = run(SimConfig::new(1000, 100, 0.0, 7));
    assert_nothing_lost(&r);
    assert_eq!(r.delivered_ratio, 1.0);
    assert!(r.payload_per_event_per_peer <= 1.1, "{r:#?}");
    assert!(r.last_delivery_hop_max <= 10, "{r:#?}");
}

#[test]
fn ten_thousand_nodes_meet_the_issue_targets() {
    let r = run(SimConfig::new(10_000, 100, 0.0, 7));
    assert_nothing_lost(&r);
    assert_eq!(r.delivered_ratio, 1.0);
    assert!(r.payload_per_event_per_peer <= 1.2, "{r:#?}");
    assert!(r.last_delivery_hop_max <= 14, "{r:#?}");
}

#[test]
fn one_percent_loss_loses_nothing_at_a_thousand_nodes() {
    let r = run(SimConfig::new(1000, 100, 0.01, 7));
    assert_nothing_lost(&r);
    assert!(r.frames_lost > 0);
}

#[test]
fn one_percent_loss_loses_nothing_at_ten_thousand_nodes() {
    let r = run(SimConfig::new(10_000, 100, 0.01, 7));
    assert_nothing_lost(&r);
    assert!(r.frames_lost > 0);
}

#[test]
fn ten_percent_loss_loses_nothing_at_a_thousand_nodes() {
    let r = run(SimConfig::new(1000, 100, 0.1, 7));
    assert_nothing_lost(&r);
    assert!(r.grafts > 0, "the tree repaired losses: {r:#?}");
}

#[test]
fn a_partition_of_thirty_percent_that_heals_loses_nothing() {
    let mut cfg = SimConfig::new(1000, 100, 0.0, 7);
    cfg.partition = Some(Partition {
        fraction: 0.3,
        start: Duration::from_millis(200),
        duration: Duration::from_secs(5),
    });
    let r = run(cfg);
    assert_nothing_lost(&r);
    assert_eq!(r.partitioned_nodes, 300);
    assert!(r.repairs_received > 0, "the partition forced repairs");
}

#[test]
fn crashing_and_restarting_ten_percent_of_nodes_loses_nothing() {
    let mut cfg = SimConfig::new(1000, 100, 0.0, 7);
    cfg.churn = Some(Churn {
        fraction: 0.1,
        downtime: Duration::from_secs(2),
    });
    let r = run(cfg);
    assert_nothing_lost(&r);
    assert_eq!(r.crashes, 100);
    assert!(r.pairs < 100 * 999, "crashed replicas are not counted");
}

#[test]
fn a_partition_longer_than_retention_ends_in_flushes_not_silence() {
    let mut cfg = SimConfig::new(200, 50, 0.0, 3);
    cfg.node.retention = Duration::from_secs(2);
    cfg.partition = Some(Partition {
        fraction: 0.3,
        start: Duration::ZERO,
        duration: Duration::from_secs(10),
    });
    let r = run(cfg);
    assert_nothing_lost(&r);
    assert!(r.flushed > 0, "{r:#?}");
    assert!(r.flushes > 0);
}

#[test]
fn bloom_false_positives_are_each_repaired_by_anti_entropy() {
    // A tiny, overloaded filter in a direct-push cluster with no loss: the
    // only way an event can go missing is a bloom false positive, and the
    // only repair path is anti-entropy.
    let mut cfg = SimConfig::new(30, 300, 0.0, 11);
    cfg.node.bloom.capacity = 16;
    cfg.node.bloom.fp_target = 0.3;
    let r = run(cfg);
    assert_nothing_lost(&r);
    assert_eq!(r.delivered_ratio, 1.0);
    assert_eq!(r.flushed, 0);
    assert!(r.bloom_false_positives > 10, "{r:#?}");
    assert_eq!(r.repairs_received, r.bloom_false_positives, "{r:#?}");
    assert_eq!(r.grafts, 0);
}

#[test]
fn the_same_arguments_give_the_same_report() {
    let cfg = || {
        let mut c = SimConfig::new(300, 60, 0.05, 42);
        c.churn = Some(Churn {
            fraction: 0.1,
            downtime: Duration::from_millis(500),
        });
        c
    };
    let mut a = run(cfg());
    let mut b = run(cfg());
    a.wall_seconds = 0.0;
    b.wall_seconds = 0.0;
    assert_eq!(a, b);
    let mut other = cfg();
    other.seed = 43;
    let mut c = run(other);
    c.wall_seconds = 0.0;
    c.seed = 42;
    assert_ne!(a, c, "a different seed is a different run");
}

#[test]
fn the_broadcast_tree_stays_connected_under_loss() {
    let mut sim = Sim::new(SimConfig::new(1000, 100, 0.01, 7)).unwrap();
    let end = sim.end();
    sim.run_until(end);
    let components = sim.eager_components();
    assert!(
        components[0] >= 980,
        "largest eager component {components:?}"
    );
}

#[test]
fn a_late_joiner_converges_on_config_within_one_round() {
    let mut sim = Sim::new(SimConfig::new(40, 0, 0.0, 5)).unwrap();
    sim.set_config(3, "color", "blue").unwrap();
    sim.set_config(9, "size", "xl").unwrap();
    sim.run_for(Duration::from_secs(3));
    sim.crash(17);
    sim.run_for(Duration::from_secs(1));
    sim.restart(17);
    assert_eq!(sim.node(17).unwrap().config_live().count(), 0);
    // One round: the node's own digest, and the answer, are back within
    // the anti-entropy period (1.5 s with jitter) plus a round trip.
    sim.run_for(Duration::from_millis(1600));
    let got: Vec<_> = sim
        .node(17)
        .unwrap()
        .config_live()
        .map(|(k, r)| (k.to_owned(), r.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("color".to_owned(), Some("blue".to_owned())),
            ("size".to_owned(), Some("xl".to_owned()))
        ]
    );
}

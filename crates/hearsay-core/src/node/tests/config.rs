//! Node tests: config at the key limit and the register cap.

use super::*;
use crate::Limits;

fn limited(max_config_keys: usize) -> NodeConfig {
    NodeConfig {
        limits: Limits {
            max_config_keys,
            ..Limits::default()
        },
        ..config()
    }
}

#[test]
fn writes_accepted_on_both_sides_of_a_partition_at_the_key_limit_converge() {
    let mut c = Cluster::new(2, limited(4));
    for k in ["a", "b", "c"] {
        c.set_config(0, k, "1");
    }
    assert_eq!(c.config_of(1).len(), 3);
    c.cut.push((0, 1));
    // Each side has room for one more key, and takes one.
    c.set_config(0, "x", "1");
    c.set_config(1, "y", "1");
    c.cut.clear();
    c.advance(Duration::from_secs(5));
    let keys =
        |c: &Cluster, i| -> Vec<String> { c.config_of(i).into_iter().map(|(k, _)| k).collect() };
    assert_eq!(keys(&c, 0), ["a", "b", "c", "x", "y"]);
    assert_eq!(keys(&c, 1), keys(&c, 0));
    // Each side's app heard of the other's key.
    for (i, key) in [(0, "y"), (1, "x")] {
        assert!(
            c.delivered[i]
                .iter()
                .any(|e| e.body.config_version().is_some_and(|(k, _)| k == key)),
            "node {i} was not told of {key}"
        );
    }
    // The local limit still holds for each app: live keys are over it now.
    assert!(matches!(
        c.try_set_config(0, "z", "1"),
        Err(PublishError::Invalid(EventError::TooManyConfigKeys { .. }))
    ));
    assert_eq!(c.nodes[0].stats().config_rejected_cap, 0);
}

#[test]
fn past_the_register_cap_every_replica_keeps_the_same_keys_and_apps_are_told() {
    // max 1 live key per app, so the cap is 4 registers; five isolated
    // nodes each write one key.
    let n = 5;
    let mut c = Cluster::new(n, limited(1));
    for a in 0..n {
        for b in a + 1..n {
            c.cut.push((a, b));
        }
    }
    for (i, key) in ["d", "b", "e", "a", "c"].iter().enumerate() {
        c.set_config(i, key, "v");
    }
    c.cut.clear();
    c.advance(Duration::from_secs(20));
    for i in 0..n {
        let keys: Vec<String> = c.config_of(i).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c", "d"], "node {i}");
    }
    // "e" was node 2's own write: its app learns that the key is gone.
    assert_eq!(c.evicted[2], ["e"]);
    let evicted: u64 = c.nodes.iter().map(|n| n.stats().config_evicted).sum();
    let refused: u64 = c.nodes.iter().map(|n| n.stats().config_rejected_cap).sum();
    assert!(evicted >= 1, "evicted {evicted}");
    assert!(refused >= 1, "refused {refused}");
}

#[test]
fn deleting_a_key_that_has_no_value_is_refused_and_leaves_nothing_behind() {
    let mut c = Cluster::new(2, limited(2));
    for _ in 0..10 {
        assert!(matches!(
            c.delete_config(0, "never-written"),
            Err(PublishError::NoSuchKey { .. })
        ));
    }
    assert_eq!(c.nodes[0].stats().publish_no_such_key, 10);
    assert_eq!(c.nodes[0].stats().published, 0);
    // Both keys of the limit are still free.
    c.set_config(0, "a", "1");
    c.set_config(1, "b", "1");
    // A real delete works, and a second one finds nothing.
    c.delete_config(1, "a").unwrap();
    assert!(c.delete_config(0, "a").is_err());
}

#[test]
fn tombstones_do_not_count_against_the_key_limit() {
    let mut c = Cluster::new(2, limited(2));
    c.set_config(0, "a", "1");
    c.set_config(0, "b", "1");
    assert!(c.try_set_config(1, "c", "1").is_err());
    c.delete_config(1, "a").unwrap();
    c.delete_config(0, "b").unwrap();
    // Two tombstones, no live key: both nodes take two new keys.
    c.set_config(0, "c", "1");
    c.set_config(1, "d", "1");
    assert_eq!(c.config_of(0), c.config_of(1));
    assert_eq!(c.config_of(0).len(), 2);
}

#[test]
fn a_tombstone_is_forgotten_by_its_version_time_on_every_node_at_once() {
    let cfg = NodeConfig {
        config_tombstone_ttl: Duration::from_secs(10),
        ..config()
    };
    let mut c = Cluster::new(2, cfg);
    c.set_config(0, "k", "1");
    c.cut.push((0, 1));
    c.delete_config(0, "k").unwrap();
    // Node 1 hears of the delete 8 s later, by anti-entropy.
    c.advance(Duration::from_secs(8));
    c.cut.clear();
    c.advance(Duration::from_secs(2));
    assert!(c.config_of(1).is_empty());
    // 12 s after the delete both have dropped the tombstone, and neither
    // brings it back to the other.
    c.advance(Duration::from_secs(3));
    for i in 0..2 {
        assert!(
            c.nodes[i].registers.get("k").is_none(),
            "node {i} still holds it"
        );
    }
    c.advance(Duration::from_secs(5));
    for i in 0..2 {
        assert!(
            c.nodes[i].registers.get("k").is_none(),
            "node {i} got it back"
        );
    }
}

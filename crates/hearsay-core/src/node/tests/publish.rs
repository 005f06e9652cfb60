//! Node tests: publishing.

use super::*;

#[test]
fn a_publish_in_a_small_cluster_is_pushed_once_to_every_peer() {
    let mut n = node_at(0, config(), T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1, 2, 3]), &mut fx);
    fx.clear();
    let id = n.publish(T0, inv("42"), &mut fx).unwrap();
    assert_eq!(
        id,
        EventId {
            origin: origin_of(0),
            seq: 1
        }
    );
    let s = sends(&fx);
    let mut to: Vec<u64> = s.iter().map(|(p, _)| p.0).collect();
    to.sort_unstable();
    assert_eq!(to, vec![1, 2, 3]);
    for (_, items) in s {
        assert_eq!(items.len(), 1);
        let Item::Event(ev) = &items[0] else {
            panic!("expected an event, got {items:?}")
        };
        assert_eq!((ev.hop, ev.route), (1, crate::message::Route::Push));
        assert_eq!(ev.event.id, id);
    }
    assert!(
        delivered(&fx).is_empty(),
        "not delivered back to its own app"
    );
    assert_eq!(n.stats().published, 1);
}

#[test]
fn own_publications_reach_the_own_app_only_when_asked() {
    let cfg = NodeConfig {
        deliver_own: true,
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    let id = n.publish(T0, inv("42"), &mut fx).unwrap();
    assert_eq!(delivered(&fx), vec![id]);
}

#[test]
fn an_invalid_publish_is_refused_counted_and_has_no_effect() {
    let mut n = node_at(0, config(), T0);
    let mut fx = Vec::new();
    let bad = Invalidation {
        cache: String::new(),
        ..inv("42")
    };
    let err = n.publish(T0, bad, &mut fx).unwrap_err();
    assert_eq!(err, PublishError::Invalid(EventError::EmptyCacheName));
    assert!(fx.is_empty());
    assert_eq!(n.stats().publish_invalid, 1);
    assert_eq!(n.stats().published, 0);
}

#[test]
fn an_event_over_the_size_limit_is_refused() {
    let mut cfg = config();
    cfg.limits.max_event_bytes = 64;
    cfg.repair_budget_bytes = 64;
    cfg.retention_bytes = 64;
    let mut n = node_at(0, cfg, T0);
    let big = Invalidation {
        keys: (0..20).map(|i| format!("key-{i}")).collect(),
        ..inv("x")
    };
    let err = n.publish(T0, big, &mut Vec::new()).unwrap_err();
    assert!(matches!(
        err,
        PublishError::Invalid(EventError::EventTooLarge { max: 64, .. })
    ));
}

#[test]
fn the_publish_rate_limit_answers_with_a_retry_time() {
    let cfg = NodeConfig {
        publish_rate: RateSpec::new(2, 2),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    n.publish(T0, inv("1"), &mut fx).unwrap();
    n.publish(T0, inv("2"), &mut fx).unwrap();
    let err = n.publish(T0, inv("3"), &mut fx).unwrap_err();
    assert_eq!(
        err,
        PublishError::RateLimited {
            retry_after: Duration::from_millis(500)
        }
    );
    assert_eq!(n.stats().publish_rate_limited, 1);
    assert!(
        n.publish(T0 + Duration::from_millis(500), inv("3"), &mut fx)
            .is_ok()
    );
}

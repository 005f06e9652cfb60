//! Node tests: outbound limit.

use super::*;

#[test]
fn the_outbound_byte_limit_defers_events_and_sends_them_batched() {
    let cfg = NodeConfig {
        outbound_bytes: RateSpec::new(100, 100),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1]), &mut fx);
    fx.clear();
    for k in 0..4 {
        n.publish(T0, inv(&format!("key-{k}")), &mut fx).unwrap();
    }
    // The bucket holds about two small events; the rest wait.
    let first: usize = sends(&fx).iter().map(|(_, items)| items.len()).sum();
    assert!(first < 4, "sent {first} of 4 at once");
    assert!(n.stats().items_deferred_out > 0);
    let retry = timers(&fx)
        .into_iter()
        .find(|(_, t)| *t == Timer::RetryOutbound)
        .expect("a retry is scheduled");
    let mut later = Vec::new();
    n.timer(
        retry.0 + Duration::from_secs(5),
        Timer::RetryOutbound,
        &mut later,
    );
    let s = sends(&later);
    assert_eq!(s.len(), 1, "everything deferred goes in one send");
    assert_eq!(first + s[0].1.len(), 4, "nothing is lost");
}

#[test]
fn deferred_items_are_counted_once_as_sent_and_once_as_deferred() {
    let cfg = NodeConfig {
        outbound_bytes: RateSpec::new(100, 100),
        ..config()
    };
    let mut n = node_at(0, cfg, T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1]), &mut fx);
    fx.clear();
    for k in 0..4 {
        n.publish(T0, inv(&format!("key-{k}")), &mut fx).unwrap();
    }
    let deferred = n.stats().items_deferred_out;
    assert!(deferred > 0);
    // Retries that are themselves held back once more.
    let mut t = T0;
    for _ in 0..3 {
        t = t + Duration::from_millis(1);
        n.timer(t, Timer::RetryOutbound, &mut fx);
    }
    n.timer(t + Duration::from_secs(5), Timer::RetryOutbound, &mut fx);
    let sent: usize = sends(&fx)
        .iter()
        .flat_map(|(_, items)| items.iter())
        .filter(|i| i.is_payload())
        .count();
    assert_eq!(sent, 4);
    assert_eq!(n.stats().events_sent, 4);
    assert_eq!(n.stats().items_deferred_out, deferred);
}

//! Faults made by the kernel, not by our transport, on sidecars that each
//! run in a network namespace of their own (`netns`). The faults:
//!
//! - a partition into halves by removing routes (each side's subnet route
//!   replaced by routes to its own half and the host), healed within the
//!   retention, and one healed after it;
//! - a black-holed peer: the host side of its veth taken down, so its
//!   packets vanish and TCP sees nothing. It prints how long its senders
//!   took to notice (their connection state in `/v1/peers`);
//! - a peer frozen with SIGSTOP for 20 s;
//! - 10% of packets dropped by nftables in every namespace;
//! - a publish waiting for confirmation across a partition: the far side
//!   pending, confirmed once healed.
//!
//! Each ends with the per-(receiver, event) accounting of `accounting`.
//! Needs root; outside CI a machine without it skips with the reason, in
//! CI (`CI` set) that is a failure. The scenarios run one at a time.

mod accounting;
mod common;
mod netns;

use std::time::Duration;

use accounting::*;
use netns::{Need, NetCluster};
use nix::sys::signal::Signal;
use tokio::time::Instant;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_by_routes_for_ten_seconds_then_healing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(n) = NetCluster::start("kernel-partition", 6, &[], Need::Kernel).await else {
        return;
    };
    let load = publisher(apis_of(&n.c), 20.0, Duration::from_secs(14));
    tokio::time::sleep(Duration::from_secs(1)).await;
    n.partition(3);
    tokio::time::sleep(Duration::from_secs(10)).await;
    n.heal();
    let published = load.await.unwrap();
    let t = settle_and_report("routes cut 10 s, heal", &published, || n.events(), &[]).await;
    assert_eq!(t.flushed, 0, "10 s is within the retention (30 s)");
    let mut repairs = 0.0;
    for i in 0..6 {
        repairs += n
            .metric(
                i,
                "hearsay_antientropy_repairs_total{direction=\"received\"}",
            )
            .await;
    }
    eprintln!("partition: {repairs} repairs received");
    assert!(repairs > 0.0, "the healed halves repaired each other");
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_heals_after_the_retention_ends_in_flushes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(n) = NetCluster::start(
        "kernel-long-partition",
        4,
        &["--retention", "3s"],
        Need::Kernel,
    )
    .await
    else {
        return;
    };
    let load = publisher(apis_of(&n.c), 20.0, Duration::from_secs(12));
    tokio::time::sleep(Duration::from_secs(1)).await;
    n.partition(2);
    tokio::time::sleep(Duration::from_secs(8)).await;
    n.heal();
    let published = load.await.unwrap();
    let t = settle_and_report(
        "routes cut 8 s, retention 3 s",
        &published,
        || n.events(),
        &[],
    )
    .await;
    assert!(
        t.flushed > 0,
        "what left the retention during the partition ends in flushes"
    );
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_peer_for_fifteen_seconds_is_noticed_and_repaired() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(n) = NetCluster::start("kernel-black-hole", 5, &[], Need::Kernel).await else {
        return;
    };
    let apis = apis_of(&n.c);
    // The load runs until the link comes back: then the catch-up is timed.
    let load = publisher(apis.clone(), 20.0, Duration::from_secs(17));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hole = 4;
    assert_eq!(n.state_of(0, hole).await, "up");
    apis.lock().unwrap()[hole] = None;
    let start = Instant::now();
    n.link(hole, false);
    // How long node 0, which keeps sending to it, takes to notice.
    let mut noticed = None;
    while start.elapsed() < Duration::from_secs(15) {
        if noticed.is_none() && n.state_of(0, hole).await != "up" {
            noticed = Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost = n
        .metric(
            0,
            "hearsay_connections_total{direction=\"out\",outcome=\"lost\"}",
        )
        .await;
    n.link(hole, true);
    let healed = Instant::now();
    let published = load.await.unwrap();
    // Everything published before and during the black hole reaches the
    // black-holed node's app: how long after the link came back.
    let mut caught_up = None;
    while healed.elapsed() < SETTLE {
        if tally(&published, &n.events(), &[]).undelivered.is_empty() {
            caught_up = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = settle_and_report("black hole 15 s", &published, || n.events(), &[]).await;
    let repaired = n
        .metric(
            hole,
            "hearsay_antientropy_repairs_total{direction=\"received\"}",
        )
        .await;
    eprintln!(
        "black hole: node 0 noticed after {} ({lost} connections lost); everything had arrived {:.1} s after the link came back; the black-holed node received {repaired} repairs",
        noticed.map_or("more than 15 s (never)".into(), |d| format!(
            "{:.1} s",
            d.as_secs_f64()
        )),
        caught_up.unwrap_or(SETTLE).as_secs_f64()
    );
    assert!(
        noticed.is_some(),
        "the sender noticed within the black hole's 15 s"
    );
    assert!(lost > 0.0, "the sender gave up its connection");
    assert!(
        repaired > 0.0,
        "what was sent into the hole was repaired, not trusted"
    );
    assert_eq!(t.flushed, 0, "15 s is within the retention");
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_frozen_with_sigstop_for_twenty_seconds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(n) = NetCluster::start("kernel-sigstop", 4, &[], Need::Kernel).await else {
        return;
    };
    let apis = apis_of(&n.c);
    let load = publisher(apis.clone(), 20.0, Duration::from_secs(26));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frozen = 3;
    apis.lock().unwrap()[frozen] = None;
    n.signal(frozen, Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(20)).await;
    n.signal(frozen, Signal::SIGCONT);
    apis.lock().unwrap()[frozen] = Some(n.c.api(frozen));
    let published = load.await.unwrap();
    let t = settle_and_report("SIGSTOP 20 s", &published, || n.events(), &[]).await;
    let stale = n
        .metric(frozen, "hearsay_frames_rejected_total{reason=\"stale\"}")
        .await;
    let repaired = n
        .metric(
            frozen,
            "hearsay_antientropy_repairs_total{direction=\"received\"}",
        )
        .await;
    eprintln!(
        "SIGSTOP: the frozen node refused {stale} stale frames and received {repaired} repairs"
    );
    assert!(t.delivered > 0);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_packets_dropped_by_the_kernel() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(n) = NetCluster::start("kernel-loss", 5, &[], Need::Kernel).await else {
        return;
    };
    n.lose_packets(10);
    let published = publisher(apis_of(&n.c), 40.0, Duration::from_secs(6))
        .await
        .unwrap();
    let t = settle_and_report("10% packet loss", &published, || n.events(), &[]).await;
    let lost = n.packets_lost();
    eprintln!("packet loss: nftables dropped {lost} packets");
    assert!(lost > 0, "the rules dropped packets");
    assert_eq!(t.duplicates, 0);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_waits_for_the_far_side_of_a_partition_and_heals_to_confirmed() {
    use hyper::{Method, StatusCode};
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(n) = NetCluster::start("kernel-confirm", 4, &[], Need::Kernel).await else {
        return;
    };
    let state = |doc: &serde_json::Value, j: usize| {
        let name = n.c.node(j).unwrap().ready.gossip.to_string();
        doc["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name.as_str())
            .map(|r| r["state"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{name} not in {doc}"))
    };
    n.c.wait_all_see_all(Duration::from_secs(20)).await.unwrap();
    n.partition(2);
    let body = serde_json::json!({"cache": "products", "keys": ["42"]}).to_string();
    let (status, bytes) =
        n.c.api(0)
            .send(
                Method::POST,
                "/v1/invalidate?wait=2s",
                Some(body.into_bytes()),
            )
            .await
            .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    assert_eq!(
        state(&doc, 1),
        "acknowledged",
        "the near side has it: {doc}"
    );
    assert_eq!(state(&doc, 2), "pending", "the far side does not");
    assert_eq!(state(&doc, 3), "pending");
    let id = doc["id"].as_str().unwrap().to_owned();
    n.heal();
    let healed = Instant::now();
    let mut last = serde_json::Value::Null;
    while healed.elapsed() < Duration::from_secs(20) {
        let bytes =
            n.c.api(0)
                .call(Method::GET, &format!("/v1/events/{id}"), None)
                .await
                .unwrap();
        last = serde_json::from_slice(&bytes).unwrap();
        if last["confirmed"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "partition healed: confirmed {:.1} s later",
        healed.elapsed().as_secs_f64()
    );
    assert_eq!(last["confirmed"], true, "{last}");
    assert_eq!(state(&last, 2), "acknowledged");
    assert_eq!(state(&last, 3), "acknowledged");
    n.finish().await;
}

//! End-to-end checks of the sidecar: real `hearsay run` processes on 127.0.0.1
//! with ephemeral ports, real webhook receivers, and faults.

mod common;

use std::time::Duration;

use common::*;
use hearsay::gossip::codec::HEADER_LEN;
use hearsay::gossip::{Item, Origin, PeerId};
use hearsay::receiver::Mode;
use hearsay::transport::frame::{Seal, now_ms, seal_frame};
use hearsay::transport::keyring::Keyring;
use hyper::Method;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_at_every_node_reach_every_other_node_exactly_once() {
    let (c, recv) = cluster("every-node", 5, &[]).await;
    let mut ids = Vec::new();
    for round in 0..4 {
        for i in 0..5 {
            ids.push((i, publish(&c, i, &format!("k-{round}-{i}")).await));
        }
    }
    eventually(WAIT, "every event at every other node", || async {
        ids.iter()
            .all(|(origin, id)| (0..5).all(|r| r == *origin || count(&recv[r], id) >= 1))
    })
    .await;
    // Let stragglers (duplicates) show, then check exactly once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (origin, id) in &ids {
        for (r, rx) in recv.iter().enumerate() {
            let want = usize::from(r != *origin);
            assert_eq!(
                count(rx, id),
                want,
                "event {id} from node {origin} at receiver {r}"
            );
        }
    }
    let body = invalidations(&recv[1]).into_iter().next().unwrap();
    assert_eq!(body.kind, "dev.hearsay.invalidate");
    // Each app got exactly one flush: the one its sidecar sends at start.
    for r in &recv {
        let flushes: Vec<_> = r
            .events()
            .into_iter()
            .filter(|e| e.kind == "dev.hearsay.flush")
            .collect();
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0].data["reason"], "sidecar_start");
        assert!(flushes[0].data["cache"].is_null());
    }
    assert_eq!(body.data["cache"], "products");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reaches_every_node_and_a_node_started_later_gets_the_current_config() {
    let (mut c, recv) = cluster("config", 3, &[]).await;
    let api0 = c.api(0);
    api0.call(Method::PUT, "/v1/config/color", Some(b"blue".to_vec()))
        .await
        .unwrap();
    c.api(1)
        .call(Method::PUT, "/v1/config/size", Some(b"xl".to_vec()))
        .await
        .unwrap();
    c.api(2)
        .call(Method::PUT, "/v1/config/color", Some(b"green".to_vec()))
        .await
        .unwrap();
    let config_of = |c: &hearsay::demo::cluster::LocalCluster, i: usize| {
        let api = c.api(i);
        async move {
            let v: serde_json::Value = api.json(Method::GET, "/v1/config", None).await.unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["key"].as_str().unwrap().to_owned(),
                        e["value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let want = vec![
        ("color".to_owned(), "green".to_owned()),
        ("size".to_owned(), "xl".to_owned()),
    ];
    for i in 0..3 {
        eventually(WAIT, "config converged", || {
            let f = config_of(&c, i);
            let want = want.clone();
            async move { f.await == want }
        })
        .await;
    }
    // A node started later: its app receives the current config.
    let late_recv = receivers(1).await.pop().unwrap();
    let late = c.add_node(late_recv.url(), &[]).await.unwrap();
    eventually(WAIT, "late node has the config", || {
        let f = config_of(&c, late);
        let want = want.clone();
        async move { f.await == want }
    })
    .await;
    // The app gets the current config delivered (asynchronously).
    let config_events = || {
        late_recv
            .events()
            .iter()
            .filter(|e| e.kind == "dev.hearsay.config")
            .map(|e| {
                format!(
                    "{}={}",
                    e.data["key"].as_str().unwrap(),
                    e.data["value"].as_str().unwrap()
                )
            })
            .collect::<Vec<String>>()
    };
    eventually(WAIT, "the late app receives the current config", || async {
        let got = config_events();
        got.contains(&"color=green".to_owned()) && got.contains(&"size=xl".to_owned())
    })
    .await;
    let one: serde_json::Value = c
        .api(late)
        .json(Method::GET, "/v1/config/size", None)
        .await
        .unwrap();
    assert_eq!(one["value"], "xl");
    drop(recv);
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_500_for_a_while_gets_every_event_after_it_recovers() {
    let (c, recv) = cluster("recovering-app", 3, &[]).await;
    // The app must have answered once before failures count (readiness).
    let first = publish(&c, 0, "warm-up").await;
    eventually(WAIT, "warm-up delivered", || async {
        count(&recv[1], &first) == 1
    })
    .await;
    recv[1].set_mode(Mode::Fail);
    let before = recv[1].requests();
    let mut ids = Vec::new();
    for k in 0..5 {
        ids.push(publish(&c, 0, &format!("during-{k}")).await);
    }
    eventually(WAIT, "the failing app was retried", || async {
        recv[1].requests() >= before + 3
    })
    .await;
    recv[1].set_mode(Mode::Accept);
    eventually(WAIT, "every event after recovery", || async {
        ids.iter().all(|id| count(&recv[1], id) == 1)
    })
    .await;
    assert_eq!(flushes_beyond_start(&recv[1]), 0);
    assert!(
        c.metric(1, "hearsay_webhook_requests_total{outcome=\"retry\"}")
            .await
            .unwrap()
            >= 2.0
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_past_the_retry_budget_gets_a_flush() {
    let (c, recv) = cluster("budget", 3, &["--webhook-retry-budget", "1s"]).await;
    let first = publish(&c, 0, "warm-up").await;
    eventually(WAIT, "warm-up delivered", || async {
        count(&recv[2], &first) == 1
    })
    .await;
    recv[2].set_mode(Mode::Fail);
    for k in 0..3 {
        publish(&c, 0, &format!("lost-{k}")).await;
    }
    eventually(WAIT, "the budget ran out", || async {
        c.metric(2, "hearsay_flushes_total{reason=\"webhook_budget\"}")
            .await
            .unwrap()
            >= 1.0
    })
    .await;
    recv[2].set_mode(Mode::Accept);
    eventually(WAIT, "a flush of every cache arrives", || async {
        recv[2].events().iter().any(|e| {
            e.kind == "dev.hearsay.flush"
                && e.data["cache"].is_null()
                && e.data["reason"] == "webhook_budget"
        })
    })
    .await;
    // The other app never failed and gets everything.
    eventually(WAIT, "the healthy app has all four", || async {
        invalidations(&recv[1]).len() == 4
    })
    .await;
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_does_not_stop_the_others() {
    let (mut c, recv) = cluster("sigkill", 4, &[]).await;
    c.kill9(2).await.unwrap();
    let id = publish(&c, 0, "after-kill").await;
    eventually(WAIT, "the live nodes get it", || async {
        count(&recv[1], &id) == 1 && count(&recv[3], &id) == 1
    })
    .await;
    let id = publish(&c, 3, "again").await;
    eventually(WAIT, "and again", || async {
        count(&recv[0], &id) == 1 && count(&recv[1], &id) == 1
    })
    .await;
    assert!(invalidations(&recv[2]).is_empty());
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_with_a_wrong_key_are_rejected_and_counted() {
    let (c, recv) = cluster("wrong-key", 2, &[]).await;
    let target = c.node(1).unwrap().ready.gossip;
    let claimed = PeerId::from_name(&c.node(0).unwrap().ready.gossip.to_string());
    let event = hearsay::gossip::Event {
        id: hearsay::gossip::EventId {
            origin: Origin(99),
            seq: 1,
        },
        published_at: hearsay::gossip::Time::from_millis(u64::MAX / 2000),
        body: hearsay::gossip::EventBody::Invalidate(hearsay::gossip::Invalidation {
            cache: "products".into(),
            keys: vec!["forged".into()],
            ..Default::default()
        }),
    };
    let item = Item::Event(hearsay::gossip::message::EventItem {
        route: hearsay::gossip::message::Route::Push,
        hop: 1,
        event: std::sync::Arc::new(event),
    });
    let receiver = PeerId::from_name(&target.to_string());
    let seal = |seq| Seal {
        receiver,
        receiver_origin: None,
        sender: claimed,
        origin: Origin(99),
        frame_seq: seq,
        sent_at_ms: now_ms(),
    };
    let mut frame = Vec::new();
    seal_frame(
        seal(1),
        std::slice::from_ref(&item),
        &Keyring::new(b"not-the-key-0123456789", None),
        &mut frame,
    );
    let mut untagged = Vec::new();
    seal_frame(seal(2), &[item], &Keyring::insecure(), &mut untagged);
    for bytes in [&frame, &untagged] {
        let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let _ = s.shutdown().await;
    }
    eventually(WAIT, "both frames rejected", || async {
        c.metric(1, "hearsay_frames_rejected_total{reason=\"bad_tag\"}")
            .await
            .unwrap()
            >= 1.0
            && c.metric(1, "hearsay_frames_rejected_total{reason=\"missing_tag\"}")
                .await
                .unwrap()
                >= 1.0
    })
    .await;
    assert!(c.metric(1, "hearsay_auth_failures_total").await.unwrap() >= 2.0);
    assert!(frame.len() > HEADER_LEN);
    // The node still works. The real event comes after the forged frames
    // were refused, so once it is here the forged one never will be.
    let id = publish(&c, 0, "real").await;
    eventually(WAIT, "real event delivered", || async {
        count(&recv[1], &id) == 1
    })
    .await;
    assert!(
        recv[1]
            .events()
            .iter()
            .all(|e| e.data["keys"][0] != "forged")
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_slower_than_the_webhook_timeout_gets_the_batch_again_and_it_is_counted() {
    let (c, recv) = cluster("slow-app", 2, &["--webhook-timeout", "300ms"]).await;
    let warm = publish(&c, 0, "warm-up").await;
    eventually(WAIT, "warm-up", || async { count(&recv[1], &warm) == 1 }).await;
    let redelivered = "hearsay_webhook_redelivered_total";
    assert_eq!(c.metric(1, redelivered).await.unwrap(), 0.0);
    // The app takes the batch but answers after the sidecar gave up on it.
    recv[1].set_mode(Mode::Slow);
    let id = publish(&c, 0, "slow").await;
    eventually(WAIT, "the slow app has it once", || async {
        count(&recv[1], &id) == 1
    })
    .await;
    recv[1].set_mode(Mode::Accept);
    eventually(WAIT, "the retry delivers it a second time", || async {
        count(&recv[1], &id) == 2
    })
    .await;
    assert!(
        c.metric(1, redelivered).await.unwrap() >= 1.0,
        "the second copy is counted"
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_and_delivers_what_is_queued_then_exits_zero() {
    let (mut c, recv) = cluster("sigterm", 3, &[]).await;
    let warm = publish(&c, 0, "warm-up").await;
    eventually(WAIT, "warm-up", || async { count(&recv[1], &warm) == 1 }).await;
    // Node 1's app fails, so node 1 holds an event when it is told to stop.
    recv[1].set_mode(Mode::Fail);
    let id = publish(&c, 0, "pending").await;
    eventually(WAIT, "node 1 holds it", || async {
        c.metric(1, "hearsay_events_delivered_total").await.unwrap() >= 2.0
    })
    .await;
    let api = c.api(1);
    let stopping = tokio::spawn(async move {
        let status = c.terminate(1, Duration::from_secs(15)).await;
        (c, status)
    });
    // Only once node 1 is draining does its app come back. Draining, its
    // API stays up: the status says so and a publish gets 503.
    eventually(WAIT, "node 1 is shutting down", || async {
        let s: serde_json::Value = api.json(Method::GET, "/v1/status", None).await.unwrap();
        s["shutting_down"] == true
    })
    .await;
    let refused = api
        .invalidate(&serde_json::json!({"cache": "products", "keys": ["late"]}))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, hearsay::client::ClientError::Refused { status, .. } if status.as_u16() == 503),
        "{refused:?}"
    );
    assert_eq!(
        count(&recv[1], &id),
        0,
        "not delivered before the app is back"
    );
    recv[1].set_mode(Mode::Accept);
    let (mut c, status) = stopping.await.unwrap();
    assert!(status.unwrap().success(), "exit status 0 after draining");
    assert_eq!(count(&recv[1], &id), 1, "delivered during the grace period");
    // A publish accepted just before SIGTERM still reaches the peers.
    let last = publish(&c, 0, "last-words").await;
    assert!(
        c.terminate(0, Duration::from_secs(15))
            .await
            .unwrap()
            .success()
    );
    eventually(WAIT, "sent before exit", || async {
        count(&recv[2], &last) == 1
    })
    .await;
    finish(c).await;
}

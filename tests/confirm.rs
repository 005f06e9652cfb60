//! Confirmed invalidation with real sidecars on 127.0.0.1: a publish with
//! `?wait=` answers once every other replica's app has the event (or was
//! told to flush it), and `GET /v1/events/{id}` tells where each stands.

mod common;

use std::time::Duration;

use common::*;
use hearsay::client::ClientError;
use hearsay::demo::cluster::LocalCluster;
use hearsay::receiver::Mode;
use hyper::{Method, StatusCode};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

/// POSTs an invalidation at node `i` with `?wait=`: the status and the
/// document.
async fn publish_wait(c: &LocalCluster, i: usize, key: &str, wait: &str) -> (StatusCode, Value) {
    let body = serde_json::json!({"cache": "products", "keys": [key]});
    let (status, bytes) = c
        .api(i)
        .send(
            Method::POST,
            &format!("/v1/invalidate?wait={wait}"),
            Some(body.to_string().into_bytes()),
        )
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn event_doc(c: &LocalCluster, i: usize, id: &str) -> Value {
    let bytes = c
        .api(i)
        .call(Method::GET, &format!("/v1/events/{id}"), None)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The state of node `j` in a confirmation document (replicas are named by
/// their gossip address in a static cluster).
fn state_of(c: &LocalCluster, doc: &Value, j: usize) -> String {
    let name = c.node(j).unwrap().ready.gossip.to_string();
    state_named(doc, &name)
}

fn state_named(doc: &Value, name: &str) -> String {
    doc["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{name} is not a replica in {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_confirms_invalidations_and_config_writes() {
    let (c, recv) = cluster("confirm-all", 5, &[]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let (status, doc) = publish_wait(&c, 0, "42", "5s").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["confirmed"], true);
    assert_eq!(doc["replicas"].as_array().unwrap().len(), 4);
    for j in 1..5 {
        assert_eq!(state_of(&c, &doc, j), "acknowledged");
    }
    let id = doc["id"].as_str().unwrap().to_owned();
    // When the answer came, every other app had it.
    for r in &recv[1..] {
        assert_eq!(count(r, &id), 1);
    }
    assert!(doc["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(event_doc(&c, 0, &id).await["confirmed"], true);

    for (method, path, body) in [
        (
            Method::PUT,
            "/v1/config/color?wait=5s",
            Some(b"blue".to_vec()),
        ),
        (Method::DELETE, "/v1/config/color?wait=5s", None),
    ] {
        let (status, bytes) = c.api(2).send(method.clone(), path, body).await.unwrap();
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, StatusCode::OK, "{method} {doc}");
        assert_eq!(doc["confirmed"], true, "{method} {doc}");
        assert_eq!(state_of(&c, &doc, 0), "acknowledged");
    }
    let m = c
        .metric(0, "hearsay_confirm_waits_total{outcome=\"confirmed\"}")
        .await
        .unwrap();
    assert_eq!(m, 1.0);
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_answering_500_keeps_its_replica_pending_until_it_recovers() {
    let (c, recv) = cluster("confirm-500", 5, &[]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    recv[2].set_mode(Mode::Fail);
    let (status, doc) = publish_wait(&c, 0, "42", "1s").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    assert_eq!(doc["confirmed"], false);
    assert_eq!(state_of(&c, &doc, 2), "pending");
    for j in [1, 3, 4] {
        assert_eq!(state_of(&c, &doc, j), "acknowledged");
    }
    let id = doc["id"].as_str().unwrap().to_owned();
    recv[2].set_mode(Mode::Accept);
    eventually(WAIT, "confirmed once the app recovered", || async {
        event_doc(&c, 0, &id).await["confirmed"] == true
    })
    .await;
    assert_eq!(
        state_of(&c, &event_doc(&c, 0, &id).await, 2),
        "acknowledged"
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_failing_past_the_retry_budget_is_flushed_when_it_is_back() {
    let (c, recv) = cluster("confirm-budget", 3, &["--webhook-retry-budget", "1s"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    // Ready first (the budget counts only for an app that answered once).
    publish(&c, 0, "warm").await;
    eventually(WAIT, "warm-up delivered", || async { recv[1].count() >= 2 }).await;
    recv[1].set_mode(Mode::Fail);
    let (status, doc) = publish_wait(&c, 0, "42", "500ms").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = doc["id"].as_str().unwrap().to_owned();
    eventually(
        WAIT,
        "the budget spent: a webhook_budget flush queued",
        || async {
            c.metric(1, "hearsay_flushes_total{reason=\"webhook_budget\"}")
                .await
                .unwrap()
                >= 1.0
        },
    )
    .await;
    assert_eq!(state_of(&c, &event_doc(&c, 0, &id).await, 1), "pending");
    recv[1].set_mode(Mode::Accept);
    eventually(WAIT, "confirmed by the flush", || async {
        event_doc(&c, 0, &id).await["confirmed"] == true
    })
    .await;
    assert_eq!(state_of(&c, &event_doc(&c, 0, &id).await, 1), "flushed");
    assert_eq!(count(&recv[1], &id), 0, "the flush stood for it");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_pending_until_it_leaves_the_peers_then_departed() {
    let (mut c, _recv) = cluster("confirm-kill", 5, &[]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let killed = c.node(4).unwrap().ready.gossip.to_string();
    c.kill9(4).await.unwrap();
    let (status, doc) = publish_wait(&c, 0, "42", "1s").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{doc}");
    assert_eq!(state_named(&doc, &killed), "pending");
    let id = doc["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        state_named(&event_doc(&c, 0, &id).await, &killed),
        "pending"
    );
    c.unlist(4).unwrap();
    eventually(WAIT, "departed once it left the peers", || async {
        let d = event_doc(&c, 0, &id).await;
        d["confirmed"] == true
    })
    .await;
    let d = event_doc(&c, 0, &id).await;
    assert_eq!(state_named(&d, &killed), "departed");
    assert_eq!(state_of(&c, &d, 1), "acknowledged");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_answering_400_rejects_and_the_wait_ends_unconfirmed() {
    let (c, recv) = cluster("confirm-400", 3, &[]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    recv[1].set_mode(Mode::Reject);
    let (status, doc) = publish_wait(&c, 0, "42", "10s").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a rejection is a final answer: {doc}"
    );
    assert_eq!(doc["confirmed"], false);
    assert_eq!(state_of(&c, &doc, 1), "rejected");
    assert!(
        doc["elapsed_ms"].as_f64().unwrap() < 5000.0,
        "it did not wait out the 10 s"
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_waits_prints_who_confirmed_and_exits_75_when_not_all_did() {
    let (c, recv) = cluster("confirm-cli", 3, &[]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let api = c.node(0).unwrap().ready.api.to_string();
    let run = |key: &'static str, wait: &'static str| {
        let api = api.clone();
        async move {
            tokio::process::Command::new(binary())
                .args(["publish", "--api-addr", &api, "--cache", "products"])
                .args(["--key", key, "--wait", wait])
                .output()
                .await
                .unwrap()
        }
    };
    let out = run("1", "3s").await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("confirmed by 2/2 replicas in "), "{text}");
    recv[2].set_mode(Mode::Fail);
    let out = run("2", "500ms").await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(75), "{text}");
    let pending = c.node(2).unwrap().ready.gossip.to_string();
    assert!(
        text.contains("not confirmed: 1/2 replicas") && text.contains(&pending),
        "{text}"
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_are_bounded_and_a_refused_wait_publishes_nothing() {
    let (c, recv) = cluster("confirm-bounded", 2, &["--max-confirm-waits", "1"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    recv[1].set_mode(Mode::Fail);
    let api = c.api(0);
    let first = tokio::spawn(async move {
        let body = serde_json::json!({"cache": "a", "keys": ["1"]}).to_string();
        api.send(
            Method::POST,
            "/v1/invalidate?wait=3s",
            Some(body.into_bytes()),
        )
        .await
    });
    eventually(WAIT, "one publisher waits, its event counted", || async {
        c.metric(0, "hearsay_confirm_waits").await.unwrap() == 1.0
            && c.metric(0, "hearsay_events_published_total").await.unwrap() == 1.0
    })
    .await;
    let published = c.metric(0, "hearsay_events_published_total").await.unwrap();
    let body = serde_json::json!({"cache": "a", "keys": ["2"]}).to_string();
    let second = c
        .api(0)
        .send(
            Method::POST,
            "/v1/invalidate?wait=3s",
            Some(body.into_bytes()),
        )
        .await;
    match second {
        Err(ClientError::Refused {
            status,
            code,
            retry_after,
            ..
        }) => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(code, "too_many_waits");
            assert_eq!(retry_after, Some(1));
        }
        other => panic!("expected 429, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.metric(0, "hearsay_events_published_total").await.unwrap(),
        published,
        "nothing was published for the refused wait"
    );
    let (status, _) = first.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    // Bad waits are a 400.
    for q in ["wait=61s", "wait=soon", "colour=red"] {
        let body = serde_json::json!({"cache": "a", "keys": ["3"]}).to_string();
        let r = c
            .api(0)
            .send(
                Method::POST,
                &format!("/v1/invalidate?{q}"),
                Some(body.into_bytes()),
            )
            .await;
        assert!(
            matches!(
                r,
                Err(ClientError::Refused {
                    status: StatusCode::BAD_REQUEST,
                    ..
                })
            ),
            "{q}: {r:?}"
        );
    }
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_streams_an_event_is_confirmed_once_written_to_the_connected_streams() {
    let (c, _recv) = cluster("confirm-streams", 2, &["--delivery", "stream"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    // No stream yet at node 1: it waits there, pending.
    let (status, doc) = publish_wait(&c, 0, "early", "500ms").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(state_of(&c, &doc, 1), "pending");
    let id = doc["id"].as_str().unwrap().to_owned();
    let opts = hearsay::subscriber::SubscribeOptions::default();
    let mut sub = hearsay::subscriber::Subscriber::open(c.node(1).unwrap().ready.api, &opts)
        .await
        .unwrap();
    eventually(WAIT, "confirmed once a stream took it", || async {
        event_doc(&c, 0, &id).await["confirmed"] == true
    })
    .await;
    let (status, doc) = publish_wait(&c, 0, "later", "5s").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let later = doc["id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    while !seen.contains(&later) {
        let r = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(r.unwrap().id);
    }
    assert!(seen.contains(&id));
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untracked_event_is_not_found_and_bad_ids_are_refused() {
    let (c, _recv) = cluster("confirm-404", 2, &[]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let id = publish(&c, 0, "plain").await;
    for (path, want) in [
        (format!("/v1/events/{id}"), StatusCode::NOT_FOUND),
        ("/v1/events/xyz".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        match c.api(0).call(Method::GET, &path, None).await {
            Err(ClientError::Refused { status, .. }) => assert_eq!(status, want, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    finish(c).await;
}

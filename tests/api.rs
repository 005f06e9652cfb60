//! The local API's contract: status codes, the error shape, limits, the
//! token, against a real `hearsay run`.

mod common;

use common::*;
use hearsay::client::{ApiClient, ClientError};
use hyper::{Method, StatusCode};

fn refused(r: Result<bytes::Bytes, ClientError>) -> (StatusCode, String, Option<u64>) {
    match r {
        Err(ClientError::Refused {
            status,
            code,
            retry_after,
            ..
        }) => (status, code, retry_after),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_400_with_the_error_shape_and_size_limits_are_413() {
    let (c, _recv) = cluster("api-input", 1, &[]).await;
    let api = c.api(0);
    let post = |body: &[u8]| api.call(Method::POST, "/v1/invalidate", Some(body.to_vec()));
    assert_eq!(refused(post(b"{not json").await).0, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused(post(b"{\"cache\":\"c\",\"key\":[\"typo\"]}").await).1,
        "invalid_json"
    );
    assert_eq!(
        refused(post(b"{\"cache\":\"c\"}").await).1,
        "nothing_to_invalidate"
    );
    assert_eq!(
        refused(post(b"{\"cache\":\"\",\"all\":true}").await).1,
        "missing_cache"
    );
    assert_eq!(
        refused(post(&[0xff, 0xfe, b'{']).await).0,
        StatusCode::BAD_REQUEST
    );
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let many = serde_json::to_vec(&serde_json::json!({"cache": "c", "keys": keys})).unwrap();
    let (status, code, _) = refused(post(&many).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(refused(post(&huge).await).0, StatusCode::PAYLOAD_TOO_LARGE);
    let long_key =
        serde_json::to_vec(&serde_json::json!({"cache": "c", "keys": ["x".repeat(600)]})).unwrap();
    assert_eq!(
        refused(post(&long_key).await).0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // The raw error body has the documented shape.
    let raw = ApiClient::new(c.node(0).unwrap().ready.api, None);
    match raw
        .call(Method::POST, "/v1/invalidate", Some(b"[]".to_vec()))
        .await
    {
        Err(ClientError::Refused { code, message, .. }) => {
            assert_eq!(code, "invalid_json");
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let ok = post(b"{\"cache\":\"c\",\"keys\":[\"1\"],\"prefixes\":[\"p:\"],\"tags\":[\"t\"]}")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ok).unwrap();
    assert_eq!(v["id"].as_str().unwrap().len(), 32);
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_rate_limit_answers_429_with_retry_after() {
    let (c, _recv) = cluster("api-rate", 1, &["--publish-rate", "1"]).await;
    let api = c.api(0);
    let body = serde_json::json!({"cache": "c", "all": true});
    api.invalidate(&body).await.unwrap();
    match api.invalidate(&body).await {
        Err(ClientError::Refused {
            status,
            code,
            retry_after,
            ..
        }) => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(code, "rate_limited");
            assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
        }
        other => panic!("expected 429, got {other:?}"),
    }
    eventually(
        std::time::Duration::from_secs(5),
        "the refusal is counted",
        || async {
            c.metric(0, "hearsay_publish_refused_total{reason=\"rate_limited\"}")
                .await
                .unwrap()
                == 1.0
        },
    )
    .await;
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protects_every_route() {
    let (c, _recv) = cluster("api-token", 1, &["--api-token", "s3cret-token"]).await;
    let addr = c.node(0).unwrap().ready.api;
    let anonymous = ApiClient::new(addr, None);
    assert_eq!(
        refused(anonymous.call(Method::GET, "/v1/status", None).await).0,
        StatusCode::UNAUTHORIZED
    );
    let wrong = ApiClient::new(addr, Some("nope".into()));
    assert_eq!(
        refused(wrong.call(Method::GET, "/v1/peers", None).await).1,
        "unauthorized"
    );
    let right = ApiClient::new(addr, Some("s3cret-token".into()));
    assert!(right.call(Method::GET, "/v1/status", None).await.is_ok());
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_status_peers_and_unknown_routes() {
    let (c, _recv) = cluster("api-routes", 2, &[]).await;
    let api = c.api(0);
    api.call(Method::PUT, "/v1/config/feature%20x", Some(b"on".to_vec()))
        .await
        .unwrap();
    let one: serde_json::Value = api
        .json(Method::GET, "/v1/config/feature%20x", None)
        .await
        .unwrap();
    assert_eq!(one["key"], "feature x");
    assert_eq!(one["value"], "on");
    assert!(one["version"].as_str().unwrap().contains('-'));
    let (status, code, _) = refused(
        api.call(Method::PUT, "/v1/config/k", Some(vec![0xff, 0xfe]))
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_utf8")
    );
    assert_eq!(
        refused(
            api.call(Method::PUT, "/v1/config/a%2Fb", Some(b"v".to_vec()))
                .await
        )
        .1,
        "invalid_config_key"
    );
    api.call(Method::DELETE, "/v1/config/feature%20x", None)
        .await
        .unwrap();
    assert_eq!(
        refused(api.call(Method::GET, "/v1/config/feature%20x", None).await).0,
        StatusCode::NOT_FOUND
    );
    let status: serde_json::Value = api.json(Method::GET, "/v1/status", None).await.unwrap();
    assert_eq!(status["node"], "node-0");
    assert_eq!(status["mode"], "direct");
    assert_eq!(status["members"], 1);
    assert_eq!(status["peer_id"].as_str().unwrap().len(), 16);
    let peers: serde_json::Value = api.json(Method::GET, "/v1/peers", None).await.unwrap();
    let p = &peers.as_array().unwrap()[0];
    assert_eq!(p["address"], c.node(1).unwrap().ready.gossip.to_string());
    assert!(p["name"].is_string() && p["state"].is_string());
    assert_eq!(
        refused(api.call(Method::GET, "/v2/nothing", None).await).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        refused(api.call(Method::GET, "/v1/invalidate", None).await).0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    finish(c).await;
}

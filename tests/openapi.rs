//! The local API against its OpenAPI 3.1 document (`docs/openapi.json`):
//! the server serves it, has exactly its routes and methods, and
//! schemathesis (PyPI, from the test venv) runs every check it has
//! against a live sidecar, seeded and bounded: no 5xx, every response as
//! documented, valid data accepted and invalid data refused.

mod chart_tools;
mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use hearsay::client::{ApiClient, ClientError};
use hyper::{Method, StatusCode};
use serde_json::Value;

const TOKEN: &str = "openapi-test-token";

fn document() -> Value {
    let path = chart_tools::root().join("docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every documented (path, method), with `{key}` filled in.
fn operations(doc: &Value) -> Vec<(String, Method)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "put", "post", "delete", "patch"] {
            if item.get(m).is_some() {
                let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
                let path = path.replace("{key}", "some-key");
                ops.push((path.replace("{id}", &"0".repeat(32)), method));
            }
        }
    }
    ops
}

fn status_of(r: &Result<bytes::Bytes, ClientError>) -> (StatusCode, String) {
    match r {
        Ok(_) => (StatusCode::OK, String::new()),
        Err(ClientError::Refused { status, code, .. }) => (*status, code.clone()),
        Err(e) => panic!("no answer: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_document_and_has_exactly_its_routes() {
    let (c, _recv) = cluster("openapi-routes", 1, &["--api-token", TOKEN]).await;
    let node = c.node(0).unwrap();
    let api = ApiClient::new(node.ready.api, Some(TOKEN.into()));
    let served = api
        .call(Method::GET, "/v1/openapi.json", None)
        .await
        .unwrap();
    let served: Value = serde_json::from_slice(&served).unwrap();
    let doc = document();
    assert_eq!(served, doc, "the server serves docs/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");

    let ops = operations(&doc);
    assert!(ops.len() >= 8, "{ops:?}");
    let paths: BTreeSet<&String> = ops.iter().map(|(p, _)| p).collect();
    for path in &paths {
        let documented: BTreeSet<&str> = ops
            .iter()
            .filter(|(p, _)| p == *path)
            .map(|(_, m)| m.as_str())
            .collect();
        for m in [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
        ] {
            let body = (m == Method::POST).then(|| b"{}".to_vec());
            let (status, code) = status_of(&api.call(m.clone(), path, body).await);
            if documented.contains(m.as_str()) {
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED && code != "not_found"
                        || path.contains("some-key") && code == "not_found",
                    "{m} {path} is documented but answers {status} {code}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {path} is not documented"
                );
            }
        }
    }
    let (status, _) = status_of(&api.call(Method::GET, "/v1/nothing-here", None).await);
    assert_eq!(status, StatusCode::NOT_FOUND);
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_with_all_its_checks() {
    let extra = ["--api-token", TOKEN, "--publish-rate", "100000"];
    let (c, _recv) = cluster("openapi-schemathesis", 2, &extra).await;
    c.wait_all_see_all(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let api = c.node(0).unwrap().ready.api;
    let root = chart_tools::root();
    let out = Command::new(chart_tools::venv().join("bin/st"))
        .arg("--config-file")
        .arg(root.join("tests/tools/schemathesis.toml"))
        .arg("run")
        .arg(root.join("docs/openapi.json"))
        .args(["--url", &format!("http://{api}")])
        .args(["--checks", "all", "--seed", "1", "--max-examples", "100"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg("--no-color")
        .current_dir(c.dir())
        .output()
        .expect("run schemathesis");
    let said = chart_tools::text(&out.stdout);
    finish(c).await;
    assert!(
        out.status.success(),
        "schemathesis found failures ({}):\n{said}\n{}",
        out.status,
        chart_tools::text(&out.stderr)
    );
    assert!(said.contains("Selected: 10/10"), "{said}");
    assert!(said.contains("Tested: 10"), "{said}");
}

/// The status line and headers of a `GET` (read up to the blank line; the
/// body of a stream never ends, so no client that waits for it will do).
async fn head_of(
    addr: std::net::SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, std::collections::BTreeMap<String, String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before the head ended");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscribe_route_answers_as_documented() {
    let doc = document();
    let op = &doc["paths"]["/v1/subscribe"]["get"];
    let extra = ["--api-token", TOKEN, "--delivery", "both"];
    let (c, _recv) = cluster("openapi-subscribe", 1, &extra).await;
    let addr = c.node(0).unwrap().ready.api;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, Option<&'a str>);
    let cases: [Case; 7] = [
        ("/v1/subscribe", &[], 200, Some("text/event-stream")),
        (
            "/v1/subscribe?format=ndjson",
            &[],
            200,
            Some("application/x-ndjson"),
        ),
        (
            "/v1/subscribe",
            &[("Accept", "application/x-ndjson")],
            200,
            Some("application/x-ndjson"),
        ),
        (
            "/v1/subscribe?cache=a&cache=b",
            &[("Last-Event-ID", "nope")],
            200,
            Some("text/event-stream"),
        ),
        ("/v1/subscribe?format=xml", &[], 400, None),
        ("/v1/subscribe?cache=", &[], 400, None),
        ("/v1/subscribe?colour=red", &[], 400, None),
    ];
    for (target, headers, want, content_type) in cases {
        let (status, got) = head_of(addr, target, headers).await;
        assert_eq!(status, want, "{target} {headers:?}");
        let documented = &op["responses"][status.to_string()];
        assert!(documented.is_object(), "{status} is documented");
        let ct = got["content-type"].as_str();
        assert!(
            documented["content"].get(ct).is_some(),
            "{target}: {ct} is documented for {status}"
        );
        if let Some(want_ct) = content_type {
            assert_eq!(ct, want_ct, "{target}");
            for (h, spec) in documented["headers"].as_object().unwrap() {
                let v = got.get(&h.to_ascii_lowercase());
                let v = v.unwrap_or_else(|| panic!("{target}: header {h} is missing"));
                if let Some(allowed) = spec["schema"]["enum"].as_array() {
                    assert!(allowed.iter().any(|a| a == v.as_str()), "{h}: {v}");
                }
                if let Some(k) = spec["schema"]["const"].as_str() {
                    assert_eq!(v, k, "{h}");
                }
            }
        }
    }
    let (status, got) = head_of(addr, "/v1/subscribe", &[("Last-Event-ID", "nope")]).await;
    assert_eq!((status, got["hearsay-stream"].as_str()), (200, "gap"));
    finish(c).await;

    let (off, _recv) = cluster("openapi-subscribe-off", 1, &["--api-token", TOKEN]).await;
    let (status, got) = head_of(off.node(0).unwrap().ready.api, "/v1/subscribe", &[]).await;
    assert_eq!(status, 404);
    assert!(
        op["responses"]["404"]["content"]
            .get(got["content-type"].as_str())
            .is_some()
    );
    finish(off).await;
}

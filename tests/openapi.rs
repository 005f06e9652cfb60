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
                ops.push((path.replace("{key}", "some-key"), method));
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
    assert!(said.contains("Selected: 8/8"), "{said}");
    assert!(said.contains("Tested: 8"), "{said}");
}

//! The webhook as a user's app sees it, parsed by a tool we did not write:
//! every batch three sidecars deliver goes to a Python app that reads it
//! with the CloudEvents SDK (PyPI `cloudevents`, from the test venv) and
//! records what it parsed, or why it could not.

mod chart_tools;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use hearsay::demo::cluster::LocalCluster;
use hyper::Method;
use serde_json::{Value, json};

/// One Python app; killed when dropped.
struct App {
    child: Child,
    out: PathBuf,
    url: String,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    fn start(dir: &Path, i: usize) -> App {
        let python = chart_tools::venv().join("bin/python");
        let script = chart_tools::root().join("tests/tools/cloudevents_app.py");
        let ready = dir.join(format!("app-{i}.port"));
        let out = dir.join(format!("app-{i}.jsonl"));
        let mut child = Command::new(python)
            .arg(script)
            .arg(&ready)
            .arg(&out)
            .spawn()
            .expect("start the CloudEvents app");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&ready) {
                break p;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the CloudEvents app exited with {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the app wrote no port"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        App {
            child,
            out,
            url: format!("http://127.0.0.1:{}/", port.trim()),
        }
    }

    /// Every request the app recorded.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn events(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .flat_map(|r| r["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn ids(&self) -> BTreeSet<String> {
        self.events()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[derive(serde::Deserialize)]
struct Accepted {
    id: String,
}

/// Publishes invalidations of each shape and a config write at node `i`;
/// their ids.
async fn publish_each_kind(c: &LocalCluster, i: usize) -> Vec<String> {
    let api = c.api(i);
    let mut ids = Vec::new();
    for body in [
        json!({"cache": "products", "keys": ["42", "43"]}),
        json!({"cache": "users", "prefixes": ["user:"], "tags": ["vip"]}),
        json!({"cache": "orders", "all": true}),
    ] {
        ids.push(api.invalidate(&body).await.unwrap());
    }
    let path = format!("/v1/config/color-{i}");
    let set: Accepted = api
        .json(Method::PUT, &path, Some(b"blue".to_vec()))
        .await
        .unwrap();
    ids.push(set.id);
    ids
}

/// Deletes node `i`'s config key (after its write reached every app: a
/// write still queued when its delete arrives is replaced by it).
async fn delete_config(c: &LocalCluster, i: usize) -> String {
    let path = format!("/v1/config/color-{i}");
    let deleted: Accepted = c.api(i).json(Method::DELETE, &path, None).await.unwrap();
    deleted.id
}

/// Waits until every app has every event of `published` that another
/// node published.
async fn wait_delivered(apps: &[App], published: &[(usize, String)]) {
    for (node, app) in apps.iter().enumerate() {
        let want: BTreeSet<String> = published
            .iter()
            .filter(|(origin, _)| *origin != node)
            .map(|(_, id)| id.clone())
            .collect();
        eventually(
            Duration::from_secs(20),
            "every event at every app",
            || async { want.is_subset(&app.ids()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_batch_parses_with_the_cloudevents_sdk() {
    let dir = test_dir("cloudevents-apps");
    let apps: Vec<App> = (0..3).map(|i| App::start(&dir, i)).collect();
    let urls: Vec<String> = apps.iter().map(|a| a.url.clone()).collect();
    let c = LocalCluster::start(options("cloudevents", &[]), &urls)
        .await
        .unwrap();
    let mut published: Vec<(usize, String)> = Vec::new();
    for i in 0..3 {
        for id in publish_each_kind(&c, i).await {
            published.push((i, id));
        }
    }
    wait_delivered(&apps, &published).await;
    for i in 0..3 {
        published.push((i, delete_config(&c, i).await));
    }
    wait_delivered(&apps, &published).await;
    finish(c).await;

    let mut types = BTreeSet::new();
    for app in &apps {
        let requests = app.requests();
        assert!(!requests.is_empty());
        for r in &requests {
            assert_eq!(r["error"], Value::Null, "the SDK refused a batch: {r}");
            assert_eq!(r["content_type"], "application/cloudevents-batch+json");
        }
        for e in app.events() {
            assert_eq!(e["specversion"], "1.0");
            assert_eq!(e["datacontenttype"], "application/json");
            assert!(e["source"].as_str().unwrap().starts_with("/hearsay/"));
            assert!(e["time"].is_string(), "every event has a time: {e}");
            types.insert(e["type"].as_str().unwrap().to_owned());
        }
        let deletes: Vec<Value> = app
            .events()
            .into_iter()
            .filter(|e| e["type"] == "dev.hearsay.config" && e["data"]["value"].is_null())
            .collect();
        assert_eq!(deletes.len(), 2, "the two other nodes' deletes");
        let flush = app
            .events()
            .into_iter()
            .find(|e| e["type"] == "dev.hearsay.flush")
            .expect("the sidecar_start flush");
        assert_eq!(flush["data"]["reason"], "sidecar_start");
    }
    assert_eq!(
        types,
        [
            "dev.hearsay.config",
            "dev.hearsay.flush",
            "dev.hearsay.invalidate"
        ]
        .map(String::from)
        .into(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

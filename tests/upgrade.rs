//! A rolling upgrade: the last released version's binary and this one run
//! side by side in one cluster, and every event and config write crosses
//! between them both ways.
//!
//! The baseline is built from git (`BASELINE`, or `HEARSAY_BASELINE`) into
//! `target/baseline/<commit>` the first time; later runs reuse it. Bump
//! `BASELINE` to the commit of each release once it has landed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use hearsay::demo::cluster::{LocalCluster, NodeSpec};
use hyper::Method;

/// The last landed version (#14: kernel-made faults; with the hello and
/// bound frames, before subscription streams and confirmations).
const BASELINE: &str = "8410a0dfa02a58ddc8b72fab18f55032e9df8aab";

const WAIT: Duration = Duration::from_secs(15);

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed with {status}");
}

/// Builds (once) and returns the baseline's `hearsay` binary.
fn baseline_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wanted = std::env::var("HEARSAY_BASELINE").unwrap_or_else(|_| BASELINE.to_owned());
    let out = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--verify", &format!("{wanted}^{{commit}}")])
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "the baseline commit {wanted} is not in this clone (a shallow clone? fetch its history): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commit = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let dir = root.join("target").join("baseline").join(&commit);
    let binary = dir.join("target/ci/hearsay");
    if binary.exists() {
        return binary;
    }
    let src = dir.join("src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).unwrap();
    // `git archive` gives the tree without touching this checkout.
    let archive = dir.join("src.tar");
    run(Command::new("git").current_dir(root).args([
        "archive",
        "--output",
        archive.to_str().unwrap(),
        &commit,
    ]));
    run(Command::new("tar").args([
        "-xf",
        archive.to_str().unwrap(),
        "-C",
        src.to_str().unwrap(),
    ]));
    eprintln!("building the baseline {commit} (once; a few minutes)");
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .args(["build", "--profile", "ci", "--bin", "hearsay"]),
    );
    assert!(
        binary.exists(),
        "the baseline build made {}",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_and_this_one_work_side_by_side() {
    let old = tokio::task::spawn_blocking(baseline_binary).await.unwrap();
    let recv = receivers(4).await;
    let mut c = LocalCluster::new(options("upgrade", &[])).unwrap();
    // Half the cluster already upgraded, as in the middle of a rollout.
    for (i, r) in recv.iter().enumerate() {
        c.add(NodeSpec {
            webhook_url: r.url(),
            binary: (i % 2 == 0).then(|| old.clone()),
            ..NodeSpec::default()
        })
        .await
        .unwrap();
    }
    c.wait_all_see_all(WAIT).await.unwrap();
    let mut ids = Vec::new();
    for round in 0..5 {
        for i in 0..4 {
            ids.push((i, publish(&c, i, &format!("k-{round}-{i}")).await));
        }
    }
    eventually(WAIT, "every event at every other node, once", || async {
        ids.iter().all(|(from, id)| {
            (0..4)
                .filter(|r| r != from)
                .all(|r| count(&recv[r], id) == 1)
        })
    })
    .await;
    // Config written at an old node reaches the new ones and back.
    c.api(0)
        .call(Method::PUT, "/v1/config/colour", Some(b"blue".to_vec()))
        .await
        .unwrap();
    c.api(1)
        .call(Method::PUT, "/v1/config/size", Some(b"9".to_vec()))
        .await
        .unwrap();
    eventually(WAIT, "both config keys everywhere", || async {
        let mut all = true;
        for i in 0..4 {
            let v: Vec<serde_json::Value> = c
                .api(i)
                .json(Method::GET, "/v1/config", None)
                .await
                .unwrap();
            all &= v.len() == 2;
        }
        all
    })
    .await;
    // A publish that waits, at a new node: the new replica confirms, the
    // old ones (which cannot decode confirmations, so are never sent any)
    // stay pending, and the answer says so.
    let body = serde_json::json!({"cache": "products", "keys": ["waited"]}).to_string();
    let (status, bytes) = c
        .api(1)
        .send(
            Method::POST,
            "/v1/invalidate?wait=1s",
            Some(body.into_bytes()),
        )
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, hyper::StatusCode::ACCEPTED, "{doc}");
    let state = |doc: &serde_json::Value, j: usize| {
        let name = c.node(j).unwrap().ready.gossip.to_string();
        doc["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name.as_str())
            .map(|r| r["state"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(state(&doc, 3), "acknowledged", "{doc}");
    assert_eq!(state(&doc, 0), "pending", "{doc}");
    assert_eq!(state(&doc, 2), "pending", "{doc}");
    let waited = doc["id"].as_str().unwrap().to_owned();
    eventually(WAIT, "the waited event at the old nodes too", || async {
        count(&recv[0], &waited) == 1 && count(&recv[2], &waited) == 1
    })
    .await;
    let unsupported = c
        .metric(1, "hearsay_sends_dropped_total{reason=\"unsupported\"}")
        .await
        .unwrap();
    assert!(unsupported > 0.0, "asks left out for the old nodes");
    // Nothing was refused on either side: no frame, no connection.
    for i in 0..4 {
        let text = c.scrape(i).await.unwrap();
        let rejected: f64 = text
            .lines()
            .filter(|l| l.starts_with("hearsay_frames_rejected_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(rejected, 0.0, "node {i} rejected frames:\n{text}");
        for r in &recv {
            assert_eq!(flushes_beyond_start(r), 0, "no flush was needed");
        }
    }
    // The old nodes upgrade one by one; nothing is lost meanwhile.
    for i in [0, 2] {
        c.terminate(i, WAIT).await.unwrap();
        c.restart_with_binary(i, None).await.unwrap();
        c.wait_all_see_all(WAIT).await.unwrap();
        let id = publish(&c, i, &format!("upgraded-{i}")).await;
        eventually(WAIT, "the upgraded node's event everywhere", || async {
            (0..4)
                .filter(|r| *r != i)
                .all(|r| count(&recv[r], &id) == 1)
        })
        .await;
    }
    // All upgraded: a waited publish is confirmed by every replica.
    let body = serde_json::json!({"cache": "products", "keys": ["all-new"]}).to_string();
    let (status, bytes) = c
        .api(0)
        .send(
            Method::POST,
            "/v1/invalidate?wait=5s",
            Some(body.into_bytes()),
        )
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, hyper::StatusCode::OK, "{doc}");
    assert_eq!(doc["confirmed"], true, "{doc}");
    finish(c).await;
}

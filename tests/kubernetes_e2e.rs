//! `hearsay run --discovery kubernetes` end to end: real processes, each
//! bound to its own loopback address (127.0.0.2-4, like pods), against one
//! fake API server.

mod common;
mod fake_apiserver;

use std::time::Duration;

use common::*;
use fake_apiserver::{FakeApiServer, Kind, pod};
use hearsay::demo::cluster::{LocalCluster, NodeSpec};

const NS: &str = "shop";
const WAIT: Duration = Duration::from_secs(20);

fn k8s_node(webhook_url: String, ip: &str, kubeconfig: &std::path::Path, i: usize) -> NodeSpec {
    fake_apiserver::pod_sidecar(webhook_url, ip, kubeconfig, i, NS, "app=orders")
}

async fn peer_names(c: &LocalCluster, i: usize) -> Vec<String> {
    let mut v: Vec<String> = c
        .peers_of(i)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sidecars_find_each_other_through_the_api_and_follow_deletions() {
    let fake = FakeApiServer::start().await;
    let opts = options("k8s-e2e", &[]);
    let kubeconfig = opts.dir.join("kubeconfig");
    let recv = receivers(3).await;
    let mut c = LocalCluster::new(opts).unwrap();
    fake.write_kubeconfig(&kubeconfig);
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    for (i, ip) in ips.iter().enumerate() {
        c.add(k8s_node(recv[i].url(), ip, &kubeconfig, i))
            .await
            .unwrap();
    }
    // The pods appear in the API with the ports their sidecars got.
    for (i, ip) in ips.iter().enumerate() {
        let port = c.node(i).unwrap().ready.gossip.port();
        fake.put(
            Kind::Pod,
            NS,
            pod(
                &format!("pod-{i}"),
                &format!("uid-{i}"),
                Some(ip),
                &[("app", "orders")],
                Some(port),
            ),
        );
    }
    fake.put(
        Kind::Pod,
        NS,
        pod(
            "unrelated",
            "uid-x",
            Some("127.0.0.9"),
            &[("app", "web")],
            Some(1),
        ),
    );
    c.wait_all_see_all(WAIT).await.unwrap();
    assert_eq!(peer_names(&c, 0).await, vec!["pod-1", "pod-2"]);
    assert_eq!(peer_names(&c, 2).await, vec!["pod-0", "pod-1"]);
    let peers = c.peers_of(1).await.unwrap();
    assert!(peers.iter().any(|p| p.address.starts_with("127.0.0.2:")));

    let id = publish(&c, 0, "42").await;
    eventually(WAIT, "the other two receivers get it", || async {
        count(&recv[1], &id) == 1 && count(&recv[2], &id) == 1
    })
    .await;
    assert_eq!(count(&recv[0], &id), 0);

    fake.delete(Kind::Pod, NS, "pod-2");
    for i in [0, 1] {
        eventually(WAIT, "pod-2 left", || async {
            !peer_names(&c, i).await.contains(&"pod-2".to_owned())
        })
        .await;
    }
    assert_eq!(peer_names(&c, 0).await, vec!["pod-1"]);
    let ready = c.metric(0, "hearsay_ready").await.unwrap();
    assert_eq!(ready, 1.0);
    finish(c).await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pod_namespace_lists_and_watches_and_reports_its_memory() {
    let fake = FakeApiServer::start().await;
    let opts = options("k8s-1000", &[]);
    let kubeconfig = opts.dir.join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig);
    let recv = receivers(1).await;
    let mut c = LocalCluster::new(opts).unwrap();
    c.add(k8s_node(recv[0].url(), "127.0.0.2", &kubeconfig, 0))
        .await
        .unwrap();
    let pid = c.node(0).unwrap().ready.pid;
    let api = c.api(0);
    let members = || async {
        let v: serde_json::Value = api
            .json(hyper::Method::GET, "/v1/status", None)
            .await
            .unwrap();
        v["members"].as_u64().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid);
    for i in 0..1000 {
        fake.put(
            Kind::Pod,
            NS,
            pod(
                &format!("p{i:04}"),
                &format!("u{i}"),
                Some(&format!("10.8.{}.{}", i / 250, i % 250)),
                &[("app", "orders")],
                Some(7946),
            ),
        );
    }
    eventually(WAIT, "1000 members", || async { members().await == 1000 }).await;
    // Churn through the watch: 200 updates and 100 deletions.
    for i in 0..200 {
        fake.update(Kind::Pod, NS, &format!("p{i:04}"), |p| {
            p["status"]["podIP"] = serde_json::json!(format!("10.9.0.{}", i % 250))
        });
    }
    for i in 900..1000 {
        fake.delete(Kind::Pod, NS, &format!("p{i:04}"));
    }
    eventually(WAIT, "900 members", || async { members().await == 900 }).await;
    let loaded = rss_kib(pid);
    eprintln!(
        "memory: sidecar RSS {:.1} MiB idle, {:.1} MiB watching 1000 pods (after 200 updates and 100 deletions)",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0
    );
    finish(c).await;
}

//! The shipped path, run end to end: the chart's `helm template` output and
//! `kubectl kustomize deploy/`, applied to a pod runner (a kubelet and
//! Deployment controller in `tests/pod_runner`) whose pods each have their
//! own network namespace on a bridge, their rendered volumes, users and
//! probes, against the fake API server enforcing the rendered Role.
//! Containers of image `hearsay:*` run this build's binary as the
//! Dockerfile's runtime stage says (`ENTRYPOINT`, `CMD`, `USER`).
//!
//! Needs root. Outside CI a machine without it skips with the reason; in CI
//! (`CI` set) that is a failure.

mod chart_tools;
mod common;
mod fake_apiserver;
mod pod_runner;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pod_runner::{Image, Pod, PodRunner};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);

fn image() -> Image {
    Image::from_dockerfile(
        "hearsay",
        &chart_tools::root().join("Dockerfile"),
        "/hearsay",
        &common::binary(),
    )
}

/// A pod runner, or None (with the reason) where one cannot run outside CI.
async fn runner(name: &str) -> Option<PodRunner> {
    if let Some(why) = pod_runner::unavailable() {
        assert!(std::env::var_os("CI").is_none(), "in CI: {why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(PodRunner::start(&common::test_dir(name), image()).await)
}

/// `kubectl exec POD -c hearsay -- /hearsay ARGS`, which must succeed.
async fn hearsay(r: &PodRunner, pod: &Pod, args: &[&str]) -> String {
    let argv: Vec<&str> = std::iter::once("/hearsay")
        .chain(args.iter().copied())
        .collect();
    let out = r.exec(pod, "hearsay", &argv).await;
    assert!(
        out.status.success(),
        "hearsay {} in {} failed: {}{}",
        args.join(" "),
        pod.name,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn peer_names(r: &PodRunner, pod: &Pod) -> BTreeSet<String> {
    let out = hearsay(r, pod, &["peers", "--json"]).await;
    let peers: Vec<Value> = serde_json::from_str(&out).unwrap();
    peers
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Publishes an invalidation at `pod`; its event id.
async fn publish(r: &PodRunner, pod: &Pod, key: &str) -> String {
    let out = hearsay(r, pod, &["publish", "--cache", "products", "--key", key]).await;
    out.trim()
        .strip_prefix("published ")
        .unwrap_or_else(|| panic!("publish printed {out:?}"))
        .to_owned()
}

/// `(id, type)` of every event the app container logged (`hearsay
/// receiver` logs one line per event); flushes a sidecar sends at its
/// start are left out.
fn received(r: &PodRunner, pod: &Pod) -> Vec<(String, String)> {
    let word = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_owned)
    };
    r.logs(pod, "app")
        .lines()
        .filter(|l| l.contains("received") && !l.contains("sidecar_start"))
        .filter_map(|l| Some((word(l, "id=")?, word(l, "kind=")?)))
        .collect()
}

/// An event id, the pod it was published at, and the pods ready then.
type Published = (String, Arc<Pod>, Vec<Arc<Pod>>);

fn names(pods: &[Arc<Pod>]) -> BTreeSet<String> {
    pods.iter().map(|p| p.name.clone()).collect()
}

/// Every sidecar lists exactly the other pods of the deployment.
async fn wait_peers(r: &PodRunner, pods: &[Arc<Pod>]) {
    let all = names(pods);
    let deadline = Instant::now() + WAIT;
    for p in pods {
        let mut want = all.clone();
        want.remove(&p.name);
        loop {
            let have = peer_names(r, p).await;
            if have == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} lists {have:?}, not {want:?}",
                p.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The first-hour checks on an applied deployment: three pods, each
/// sidecar finds the other two, an invalidation reaches the other apps,
/// and a deleted pod leaves every peer list (its replacement joins).
async fn three_pods_work(r: &PodRunner, deployment: &str) {
    let pods = r.wait_ready(deployment, 3, START).await;
    assert_eq!(pods.len(), 3);
    wait_peers(r, &pods).await;

    let id = publish(r, &pods[0], "sku-1").await;
    common::eventually(WAIT, "the other two apps log the invalidation", || async {
        pods[1..]
            .iter()
            .all(|p| received(r, p).iter().any(|(i, _)| i == &id))
    })
    .await;
    assert!(
        !received(r, &pods[0]).iter().any(|(i, _)| i == &id),
        "the publisher's own app is not sent its own event (deliverOwn: false)"
    );

    let gone = pods[2].name.clone();
    r.delete_pod(&gone).await;
    let now = r.wait_ready(deployment, 3, START).await;
    assert!(!names(&now).contains(&gone));
    wait_peers(r, &now).await;
    let ended = r.terminations();
    let sidecar = ended
        .iter()
        .find(|t| t.pod == gone && t.container == "hearsay")
        .expect("the deleted pod's sidecar ended");
    assert!(
        !sidecar.killed && sidecar.code == Some(0),
        "the sidecar exits cleanly on SIGTERM within the grace period: {sidecar:?}"
    );
    assert_eq!(
        r.api().forbidden(),
        0,
        "the rendered Role allowed all discovery needed"
    );
}

fn example_app() -> Vec<Value> {
    let rendered = chart_tools::render("example-app");
    chart_tools::as_json(&chart_tools::objects(&rendered))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_with_its_example_app_runs_as_pods_that_find_each_other_and_deliver() {
    let Some(r) = runner("pods-helm").await else {
        return;
    };
    r.apply(&example_app());
    three_pods_work(&r, "hearsay-example").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_applied_with_kustomize_runs_as_pods_that_find_each_other_and_deliver() {
    let Some(r) = runner("pods-kustomize").await else {
        return;
    };
    let objs = chart_tools::as_json(&chart_tools::kustomize(&chart_tools::root().join("deploy")));
    // As the kustomization's first line tells the user to.
    r.create_secret(
        "hearsay-gossip-key",
        &[("primary", "bXktZ29zc2lwLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEy")],
    );
    r.apply(&objs);
    three_pods_work(&r, "my-app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_delivers_or_flushes_every_invalidation() {
    let Some(r) = runner("pods-rollout").await else {
        return;
    };
    r.apply(&example_app());
    let first = r.wait_ready("hearsay-example", 3, START).await;
    wait_peers(&r, &first).await;

    // Publish through the whole rollout, each time at a ready pod.
    let r = Arc::new(r);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (r, stop) = (r.clone(), stop.clone());
        tokio::spawn(async move {
            let mut published = Vec::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 400 {
                let ready: Vec<Arc<Pod>> = r
                    .pods("hearsay-example")
                    .into_iter()
                    .filter(|p| p.ready())
                    .collect();
                if let Some(p) = ready.get(n as usize % ready.len().max(1)) {
                    // Others ready now must get it or a flush.
                    let targets: Vec<Arc<Pod>> =
                        ready.iter().filter(|q| q.name != p.name).cloned().collect();
                    let argv = ["/hearsay", "publish", "--cache", "products", "--key"];
                    let key = format!("k{n}");
                    let mut argv = argv.to_vec();
                    argv.push(&key);
                    let out = r.exec(p, "hearsay", &argv).await;
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    if let Some(id) = text.trim().strip_prefix("published ") {
                        published.push((id.to_owned(), p.clone(), targets));
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            published
        })
    };
    r.rollout_restart("hearsay-example", Duration::from_secs(180))
        .await;
    let after = r.wait_ready("hearsay-example", 3, START).await;
    assert!(
        names(&after).is_disjoint(&names(&first)),
        "every pod was replaced"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let published = publisher.await.unwrap();
    assert!(
        published.len() >= 20,
        "published {} events",
        published.len()
    );
    wait_peers(&r, &after).await;

    // Every target that is still running holds each event or a flush
    // after its start; a target deleted meanwhile was told before its
    // sidecar exited (clean exits are checked below), or its cache is gone.
    let live = names(&after);
    let mut checked = 0;
    let missing = |published: &[Published]| {
        let mut out = Vec::new();
        for (id, from, targets) in published {
            for t in targets.iter().filter(|t| live.contains(&t.name)) {
                let got = received(&r, t);
                if !got.iter().any(|(i, k)| i == id || k == "dev.hearsay.flush") {
                    out.push((id.clone(), from.clone(), t.clone()));
                }
            }
        }
        out
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let lacking = missing(&published);
        if lacking.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let mut logs = String::new();
            let mut shown = BTreeSet::new();
            for (_, from, to) in &lacking {
                for p in [from, to] {
                    if shown.insert(p.name.clone()) {
                        logs += &format!("--- {} sidecar\n{}\n", p.name, r.logs(p, "hearsay"));
                    }
                }
            }
            let lacking: Vec<_> = lacking
                .iter()
                .map(|(id, from, to)| (id, &from.name, &to.name))
                .collect();
            panic!(
                "not within {WAIT:?}: every live target has each event or a flush; \
                 (event, publisher, target) lacking: {lacking:?}\n{logs}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut flushed_only = 0;
    for (id, _, targets) in &published {
        for t in targets.iter().filter(|t| live.contains(&t.name)) {
            checked += 1;
            flushed_only += usize::from(!received(&r, t).iter().any(|(i, _)| i == id));
        }
    }
    eprintln!(
        "rollout: {} events published, {checked} (event, live replica) pairs checked, {flushed_only} covered by a flush instead of the event",
        published.len()
    );
    assert!(checked > 0, "some events had live targets");
    for t in r.terminations() {
        assert!(
            !t.killed,
            "{} of {} ended within the grace period: {t:?}",
            t.container, t.pod
        );
        if t.container == "hearsay" {
            assert_eq!(t.code, Some(0), "the sidecar exits cleanly: {t:?}");
        }
    }
    assert_eq!(r.terminations().len(), 6, "3 pods × 2 containers ended");
}

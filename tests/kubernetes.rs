//! Kubernetes discovery against the fake API server: a real `kube::Client`,
//! kube-runtime's watcher, and every case the watcher must survive.

mod common;
mod fake_apiserver;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, test_dir};
use fake_apiserver::{Control, FakeApiServer, Faults, Kind, endpoint_slice, pod};
use hearsay::discovery::Publisher;
use hearsay::discovery::kubernetes::{self, KubeDiscovery};
use hearsay::gossip::PeerSet;
use hearsay::metrics::Metrics;
use hearsay::settings::K8sSource;
use serde_json::json;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);
const NS: &str = "shop";

struct Harness {
    fake: FakeApiServer,
    members: watch::Receiver<Arc<PeerSet>>,
    metrics: Arc<Metrics>,
    listed: watch::Receiver<bool>,
    _stop: watch::Sender<bool>,
    dir: std::path::PathBuf,
}

impl Harness {
    async fn start(name: &str, source: K8sSource, fake: FakeApiServer) -> Harness {
        let dir = test_dir(name);
        let client = fake.client(&dir).await;
        // Pods are chosen by label; EndpointSlices by their Service alone.
        let selector = match source {
            K8sSource::Pods => "app=orders".into(),
            K8sSource::EndpointSlices { .. } => String::new(),
        };
        let d = KubeDiscovery {
            client,
            namespace: NS.into(),
            source,
            selector,
            gossip_port_name: "gossip".into(),
            default_port: 7946,
            me_uid: "uid-me".into(),
        };
        let (members_tx, members) = watch::channel(Arc::new(PeerSet::default()));
        let metrics = Arc::new(Metrics::new());
        let (out, listed) = Publisher::new(members_tx);
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(kubernetes::run(d, out, metrics.clone(), stop_rx));
        Harness {
            fake,
            members,
            metrics,
            listed,
            _stop: stop,
            dir,
        }
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .members
            .borrow()
            .peers()
            .map(|p| p.name.to_string())
            .collect();
        v.sort();
        v
    }

    fn addr_of(&self, name: &str) -> Option<String> {
        self.members
            .borrow()
            .peers()
            .find(|p| &*p.name == name)
            .and_then(|p| p.addr.map(|a| a.to_string()))
    }

    async fn wait_names(&self, want: &[&str]) {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        eventually(WAIT, &format!("peers {want:?}"), || async {
            self.names() == want
        })
        .await;
    }

    fn errors(&self) -> u64 {
        self.metrics
            .membership
            .discovery_errors
            .with_label_values(&["kubernetes"])
            .get()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn orders(name: &str, ip: Option<&str>) -> serde_json::Value {
    pod(
        name,
        &format!("uid-{name}"),
        ip,
        &[("app", "orders")],
        Some(7000),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_list_spans_several_pages_and_finds_exactly_the_matching_pods() {
    let fake = FakeApiServer::start().await;
    for i in 0..1100 {
        fake.put(
            Kind::Pod,
            NS,
            orders(
                &format!("p{i:04}"),
                Some(&format!("10.1.{}.{}", i / 250, i % 250)),
            ),
        );
    }
    fake.put(
        Kind::Pod,
        NS,
        pod(
            "me",
            "uid-me",
            Some("10.9.9.9"),
            &[("app", "orders")],
            Some(7000),
        ),
    );
    for i in 0..5 {
        fake.put(
            Kind::Pod,
            NS,
            pod(
                &format!("other{i}"),
                &format!("o{i}"),
                Some("10.2.0.1"),
                &[("app", "other")],
                None,
            ),
        );
        fake.put(
            Kind::Pod,
            "elsewhere",
            orders(&format!("far{i}"), Some("10.3.0.1")),
        );
    }
    let h = Harness::start("k8s-pages", K8sSource::Pods, fake).await;
    eventually(WAIT, "1100 peers", || async {
        h.members.borrow().len() == 1100
    })
    .await;
    assert!(*h.listed.borrow(), "discovery says it has listed its peers");
    assert!(
        h.fake.continues() >= 2,
        "three pages of 500 take two continues"
    );
    assert!(
        !h.names()
            .iter()
            .any(|n| n == "me" || n.starts_with("other") || n.starts_with("far"))
    );
    assert_eq!(h.addr_of("p0251").as_deref(), Some("10.1.1.1:7000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additions_ip_changes_deletions_relabels_and_terminating_pods_move_the_peer_set() {
    let fake = FakeApiServer::start().await;
    fake.put(Kind::Pod, NS, orders("a", Some("10.0.0.1")));
    fake.put(Kind::Pod, NS, orders("b", Some("10.0.0.2")));
    fake.put(Kind::Pod, NS, orders("c", None));
    let h = Harness::start("k8s-changes", K8sSource::Pods, fake).await;
    h.wait_names(&["a", "b"]).await;
    h.fake.put(Kind::Pod, NS, orders("d", Some("10.0.0.4")));
    h.wait_names(&["a", "b", "d"]).await;
    h.fake.update(Kind::Pod, NS, "c", |p| {
        p["status"]["podIP"] = json!("10.0.0.3")
    });
    h.wait_names(&["a", "b", "c", "d"]).await;
    h.fake.update(Kind::Pod, NS, "a", |p| {
        p["status"]["podIP"] = json!("10.0.0.9")
    });
    eventually(WAIT, "a moved", || async {
        h.addr_of("a").as_deref() == Some("10.0.0.9:7000")
    })
    .await;
    h.fake.mark_terminating(NS, "b");
    h.wait_names(&["a", "c", "d"]).await;
    h.fake.delete(Kind::Pod, NS, "d");
    h.wait_names(&["a", "c"]).await;
    h.fake.update(Kind::Pod, NS, "c", |p| {
        p["metadata"]["labels"]["app"] = json!("other")
    });
    h.wait_names(&["a"]).await;
    // A new pod reusing a's IP is a new peer: identity is the pod UID.
    h.fake.delete(Kind::Pod, NS, "a");
    h.fake.put(
        Kind::Pod,
        NS,
        pod(
            "a2",
            "uid-a2",
            Some("10.0.0.9"),
            &[("app", "orders")],
            Some(7000),
        ),
    );
    h.wait_names(&["a2"]).await;
    assert_ne!(
        h.members.borrow().peers().next().unwrap().id,
        hearsay::gossip::PeerId::from_name("uid-a")
    );
    assert_eq!(h.errors(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookmark_moves_the_watch_position() {
    let fake = FakeApiServer::start().await;
    fake.put(Kind::Pod, NS, orders("a", Some("10.0.0.1")));
    let h = Harness::start("k8s-bookmark", K8sSource::Pods, fake).await;
    h.wait_names(&["a"]).await;
    eventually(WAIT, "watching", || async { h.fake.watches() >= 1 }).await;
    // Writes the watch does not see move the resourceVersion on.
    for i in 0..5 {
        h.fake.put(
            Kind::Pod,
            NS,
            pod(
                &format!("x{i}"),
                &format!("x{i}"),
                None,
                &[("app", "other")],
                None,
            ),
        );
    }
    let rv = h.fake.resource_version();
    h.fake.control(Control::Bookmark);
    eventually(WAIT, "the bookmark is on the stream", || async {
        h.fake.bookmarks() >= 1
    })
    .await;
    h.fake.control(Control::End);
    eventually(WAIT, "a new watch", || async {
        h.fake.watch_positions().len() >= 2
    })
    .await;
    assert_eq!(
        *h.fake.watch_positions().last().unwrap(),
        rv,
        "re-watched from the bookmark"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookmark_then_a_410_forces_a_relist_and_the_peers_are_right_afterwards() {
    let fake = FakeApiServer::start().await;
    fake.put(Kind::Pod, NS, orders("a", Some("10.0.0.1")));
    fake.put(Kind::Pod, NS, orders("b", Some("10.0.0.2")));
    let h = Harness::start("k8s-410", K8sSource::Pods, fake).await;
    h.wait_names(&["a", "b"]).await;
    eventually(WAIT, "watching", || async { h.fake.watches() >= 1 }).await;
    // A write the watch does not see, then a bookmark: the watcher's
    // position moves to it.
    h.fake.put(
        Kind::Pod,
        NS,
        pod("x", "x", None, &[("app", "other")], None),
    );
    let bookmark_rv = h.fake.resource_version();
    h.fake.control(Control::Bookmark);
    eventually(WAIT, "the bookmark is on the stream", || async {
        h.fake.bookmarks() >= 1
    })
    .await;
    let lists = h.fake.lists();
    // The watch ends and cannot be re-opened for now.
    h.fake.set_faults(Faults {
        watch: Some(500),
        ..Faults::default()
    });
    h.fake.control(Control::End);
    eventually(WAIT, "the refused re-watch is counted", || async {
        h.errors() >= 1
    })
    .await;
    // Meanwhile history moves on and is compacted away.
    h.fake.put(Kind::Pod, NS, orders("c", Some("10.0.0.3")));
    h.fake.delete(Kind::Pod, NS, "b");
    h.fake.compact();
    assert_eq!(
        h.names(),
        vec!["a", "b"],
        "the last known peers stay in use"
    );
    h.fake.set_faults(Faults::default());
    h.wait_names(&["a", "c"]).await;
    assert!(
        h.fake.lists() > lists,
        "the 410 made the watcher list again"
    );
    assert!(h.errors() >= 2, "the 500 and the 410 were counted");
    let positions = h.fake.watch_positions();
    assert!(
        positions.iter().filter(|p| **p == bookmark_rv).count() >= 2,
        "the watch was resumed from the bookmark: {positions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_watched_again_and_no_event_is_lost() {
    let fake = FakeApiServer::start().await;
    fake.put(Kind::Pod, NS, orders("a", Some("10.0.0.1")));
    fake.put(Kind::Pod, NS, orders("b", Some("10.0.0.2")));
    let h = Harness::start("k8s-cut", K8sSource::Pods, fake).await;
    h.wait_names(&["a", "b"]).await;
    eventually(WAIT, "watching", || async { h.fake.watches() >= 1 }).await;
    let lists = h.fake.lists();
    h.fake.set_faults(Faults {
        watch: Some(500),
        ..Faults::default()
    });
    h.fake.control(Control::Cut);
    h.fake.put(Kind::Pod, NS, orders("c", Some("10.0.0.3")));
    h.fake.delete(Kind::Pod, NS, "a");
    h.fake.update(Kind::Pod, NS, "b", |p| {
        p["status"]["podIP"] = json!("10.0.0.22")
    });
    h.fake.set_faults(Faults::default());
    h.wait_names(&["b", "c"]).await;
    eventually(WAIT, "b moved", || async {
        h.addr_of("b").as_deref() == Some("10.0.0.22:7000")
    })
    .await;
    assert_eq!(
        h.fake.lists(),
        lists,
        "resumed from the last resourceVersion, no re-list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_an_outage_keep_the_last_peers_are_counted_and_recover() {
    let fake = FakeApiServer::start().await;
    fake.put(Kind::Pod, NS, orders("a", Some("10.0.0.1")));
    fake.put(Kind::Pod, NS, orders("b", Some("10.0.0.2")));
    let h = Harness::start("k8s-errors", K8sSource::Pods, fake).await;
    h.wait_names(&["a", "b"]).await;
    eventually(WAIT, "watching", || async { h.fake.watches() >= 1 }).await;
    // Watch refused with 500.
    h.fake.set_faults(Faults {
        watch: Some(500),
        ..Faults::default()
    });
    h.fake.control(Control::Cut);
    eventually(WAIT, "watch errors counted", || async { h.errors() >= 1 }).await;
    assert_eq!(h.names(), vec!["a", "b"]);
    // A forced re-list refused with 403: history moves past the watch
    // position and is compacted, so the next watch gets 410 and re-lists.
    h.fake.put(
        Kind::Pod,
        NS,
        pod("x", "x", None, &[("app", "other")], None),
    );
    h.fake.compact();
    h.fake.set_faults(Faults {
        list: Some(403),
        ..Faults::default()
    });
    let before = h.errors();
    eventually(WAIT, "list errors counted", || async {
        h.errors() >= before + 2
    })
    .await;
    assert_eq!(h.names(), vec!["a", "b"]);
    // The API server is gone for a while.
    h.fake.go_down();
    h.fake.set_faults(Faults::default());
    let before = h.errors();
    eventually(WAIT, "outage counted", || async { h.errors() > before }).await;
    assert_eq!(h.names(), vec!["a", "b"]);
    h.fake.put(Kind::Pod, NS, orders("c", Some("10.0.0.3")));
    h.fake.come_back().await;
    h.wait_names(&["a", "b", "c"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_continue_token_restarts_the_list() {
    let fake = FakeApiServer::start().await;
    for i in 0..1100 {
        fake.put(Kind::Pod, NS, orders(&format!("p{i:04}"), Some("10.1.0.1")));
    }
    fake.set_faults(Faults {
        expire_next_continue: true,
        ..Faults::default()
    });
    let h = Harness::start("k8s-continue", K8sSource::Pods, fake).await;
    eventually(WAIT, "1100 peers after the restart", || async {
        h.members.borrow().len() == 1100
    })
    .await;
    assert!(
        h.fake.lists() >= 4,
        "one list broke at its continue and was started over"
    );
    assert!(h.errors() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointslices_of_a_headless_service_list_the_peers() {
    let fake = FakeApiServer::start().await;
    fake.put(
        Kind::EndpointSlice,
        NS,
        endpoint_slice(
            "orders-abc",
            "orders-gossip",
            7001,
            &[
                ("10.0.0.1", "uid-a", "a", false),
                ("10.0.0.2", "uid-b", "b", true),
                ("10.0.0.9", "uid-me", "me", false),
            ],
        ),
    );
    fake.put(
        Kind::EndpointSlice,
        NS,
        endpoint_slice(
            "orders-def",
            "orders-gossip",
            7001,
            &[("10.0.0.3", "uid-c", "c", false)],
        ),
    );
    fake.put(
        Kind::EndpointSlice,
        NS,
        endpoint_slice("web-xyz", "web", 80, &[("10.0.0.4", "uid-w", "w", false)]),
    );
    let mut h = Harness::start(
        "k8s-slices",
        K8sSource::EndpointSlices {
            service: "orders-gossip".into(),
        },
        fake,
    )
    .await;
    // Slices carry no app label; only the service label selects them here.
    let _ = &mut h;
    h.wait_names(&["a", "c"]).await;
    assert_eq!(h.addr_of("c").as_deref(), Some("10.0.0.3:7001"));
    assert_eq!(
        h.members
            .borrow()
            .peers()
            .find(|p| &*p.name == "a")
            .unwrap()
            .id,
        hearsay::gossip::PeerId::from_name("uid-a"),
        "same identity as in pod mode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_parses_selectors_like_the_api_server() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let fake = FakeApiServer::start().await;
    let dir = test_dir("k8s-selectors");
    for (name, app, tier) in [
        ("a", "orders", "web"),
        ("b", "payments", "db"),
        ("c", "orders", "db"),
        ("d", "search", "web"),
    ] {
        fake.put(
            Kind::Pod,
            NS,
            pod(
                name,
                name,
                Some("10.0.0.1"),
                &[("app", app), ("tier", tier)],
                None,
            ),
        );
    }
    let api: Api<Pod> = Api::namespaced(fake.client(&dir).await, NS);
    let names = |l: kube::core::ObjectList<Pod>| {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let got = names(
        api.list(&ListParams::default().labels("app in (orders,payments),tier!=web"))
            .await
            .unwrap(),
    );
    assert_eq!(got, vec!["b", "c"]);
    let got = names(
        api.list(&ListParams::default().labels("app notin (orders),!missing"))
            .await
            .unwrap(),
    );
    assert_eq!(got, vec!["b", "d"]);
    let page = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let rv = page.metadata.resource_version.clone().unwrap();
    fake.put(Kind::Pod, NS, pod("e", "e", None, &[], None));
    let rest = api
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        names(rest.clone()),
        vec!["d"],
        "the continuation is the same snapshot"
    );
    assert_eq!(rest.metadata.resource_version.unwrap(), rv);
    let err = api
        .list(&ListParams::default().labels("app in orders"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

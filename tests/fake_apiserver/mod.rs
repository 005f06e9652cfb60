//! A fake Kubernetes API server for tests, on hyper, served on
//! `127.0.0.1:0` and reached by a real `kube::Client` through a generated
//! kubeconfig. It reproduces what kube-runtime's watcher relies on:
//!
//! 1. list with `labelSelector` (equality and set-based), `limit` and
//!    `continue` pagination over a consistent snapshot, and
//!    `metadata.resourceVersion` on the list;
//! 2. one global, increasing resourceVersion on every object;
//! 3. `?watch=true&resourceVersion=N&allowWatchBookmarks=true&timeoutSeconds=T`
//!    as a chunked stream of newline-delimited JSON events strictly after N,
//!    filtered by namespace and selector (objects that stop or start
//!    matching become DELETED or ADDED);
//! 4. BOOKMARK events, on demand;
//! 5. a watch from a compacted resourceVersion: HTTP 200 with an in-stream
//!    `{"type":"ERROR","object":{"kind":"Status","code":410,…}}`;
//! 6. an expired `continue` token answered with 410;
//! 7. watch streams that end (the server's timeout) and connections cut in
//!    the middle of a stream;
//! 8. injected 403 and 500 answers on list or watch, and a server that is
//!    down for a while and comes back on the same port;
//! 9. optionally, a Role enforced for one ServiceAccount's token (`rbac`):
//!    401 without the token, 403 for a verb or resource it does not grant.
#![allow(dead_code)]

pub mod rbac;
mod selector;
mod server;
mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use store::Kind;

/// What a live watch is told to do.
#[derive(Clone, Copy, Debug)]
pub enum Control {
    Bookmark,
    /// End every watch cleanly, as the server's timeout does.
    End,
    /// Break every watch connection in the middle of its stream.
    Cut,
}

/// Injected failures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Answer lists with this status.
    pub list: Option<u16>,
    /// Answer watch requests with this status.
    pub watch: Option<u16>,
    /// Expire continue tokens as soon as they are issued (once).
    pub expire_next_continue: bool,
}

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub changed: broadcast::Sender<()>,
    pub control: broadcast::Sender<Control>,
    pub faults: Mutex<Faults>,
    pub lists: AtomicU64,
    pub watches: AtomicU64,
    /// Requests that carried a continue token.
    pub continues: AtomicU64,
    /// Bookmarks written to a watch stream.
    pub bookmarks: AtomicU64,
    /// The resourceVersion each watch request started from, in order.
    pub watch_from: Mutex<Vec<u64>>,
    /// When set, every request is authorized against it.
    pub rbac: Mutex<Option<rbac::Rbac>>,
    /// Requests refused by `rbac`.
    pub forbidden: AtomicU64,
}

pub struct FakeApiServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl FakeApiServer {
    pub async fn start() -> FakeApiServer {
        Self::start_on([127, 0, 0, 1].into()).await
    }

    /// Serves on `ip` (port 0): a pod runner puts it on its bridge.
    pub async fn start_on(ip: std::net::IpAddr) -> FakeApiServer {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::default()),
            changed: broadcast::channel(1024).0,
            control: broadcast::channel(64).0,
            faults: Mutex::new(Faults::default()),
            lists: AtomicU64::new(0),
            watches: AtomicU64::new(0),
            continues: AtomicU64::new(0),
            bookmarks: AtomicU64::new(0),
            watch_from: Mutex::new(Vec::new()),
            rbac: Mutex::new(None),
            forbidden: AtomicU64::new(0),
        });
        let accept = tokio::spawn(server::accept_loop(listener, shared.clone()));
        FakeApiServer {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// Authorizes every later request against `policy`.
    pub fn enforce(&self, policy: rbac::Rbac) {
        *self.shared.rbac.lock().unwrap() = Some(policy);
    }

    /// Requests refused with 401 or 403 by the enforced policy.
    pub fn forbidden(&self) -> u64 {
        self.shared.forbidden.load(Ordering::Relaxed)
    }

    /// A kubeconfig that points at this server (namespace `default`), with
    /// `token` as the bearer token.
    pub fn write_kubeconfig_with_token(&self, path: &Path, token: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: {token}\n",
            self.addr
        );
        std::fs::write(path, text).unwrap();
    }

    /// A kubeconfig that points at this server (namespace `default`).
    pub fn write_kubeconfig(&self, path: &Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            self.addr
        );
        std::fs::write(path, text).unwrap();
    }

    /// A real kube client through a generated kubeconfig.
    pub async fn client(&self, dir: &Path) -> kube::Client {
        let path = dir.join("kubeconfig");
        self.write_kubeconfig(&path);
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    fn write<T>(&self, f: impl FnOnce(&mut store::Store) -> T) -> T {
        let out = f(&mut self.shared.store.lock().unwrap());
        let _ = self.shared.changed.send(());
        out
    }

    /// Creates or replaces an object (JSON as `kubectl` would send it).
    pub fn put(&self, kind: Kind, ns: &str, obj: Value) -> u64 {
        self.write(|s| s.put(kind, ns, obj))
    }

    pub fn delete(&self, kind: Kind, ns: &str, name: &str) -> Option<u64> {
        self.write(|s| s.delete(kind, ns, name))
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.shared.store.lock().unwrap().get(kind, ns, name)
    }

    /// Changes a stored object in place (a new resourceVersion).
    pub fn update(&self, kind: Kind, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut obj = self.get(kind, ns, name).expect("object exists");
        f(&mut obj);
        self.put(kind, ns, obj);
    }

    /// Sets `deletionTimestamp`, as a graceful delete does first.
    pub fn mark_terminating(&self, ns: &str, name: &str) {
        self.update(Kind::Pod, ns, name, |p| {
            p["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:30Z");
        });
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().unwrap().rv
    }

    /// Forgets history: later watches from older versions get 410 and
    /// paginated lists in progress expire.
    pub fn compact(&self) {
        self.shared.store.lock().unwrap().compact();
    }

    pub fn control(&self, c: Control) {
        let _ = self.shared.control.send(c);
    }

    pub fn set_faults(&self, f: Faults) {
        *self.shared.faults.lock().unwrap() = f;
    }

    pub fn lists(&self) -> u64 {
        self.shared.lists.load(Ordering::Relaxed)
    }

    pub fn watches(&self) -> u64 {
        self.shared.watches.load(Ordering::Relaxed)
    }

    /// Bookmarks written to watch streams so far. A watch reads its
    /// stream in order, so it has the bookmark before anything written
    /// after it (an end of stream included).
    pub fn bookmarks(&self) -> u64 {
        self.shared.bookmarks.load(Ordering::Relaxed)
    }

    pub fn continues(&self) -> u64 {
        self.shared.continues.load(Ordering::Relaxed)
    }

    /// The resourceVersion of every watch request so far.
    pub fn watch_positions(&self) -> Vec<u64> {
        self.shared.watch_from.lock().unwrap().clone()
    }

    /// Stops listening and drops every connection (the server is down).
    pub fn go_down(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
        self.control(Control::Cut);
    }

    /// Listens again on the same address.
    pub async fn come_back(&self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let task = tokio::spawn(server::accept_loop(listener, self.shared.clone()));
        *self.accept.lock().unwrap() = Some(task);
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.go_down();
    }
}

/// A pod as the API would hold it, with the noise real pods carry.
pub fn pod(
    name: &str,
    uid: &str,
    ip: Option<&str>,
    labels: &[(&str, &str)],
    gossip_port: Option<u16>,
) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut init = json!({"name": "hearsay", "image": "hearsay:dev", "restartPolicy": "Always"});
    if let Some(p) = gossip_port {
        init["ports"] = json!([{"name": "gossip", "containerPort": p, "protocol": "TCP"}]);
    }
    let mut status =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    json!({
        "metadata": {
            "name": name,
            "uid": uid,
            "labels": labels,
            "annotations": {"note": "x".repeat(200)},
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1"}]
        },
        "spec": {
            "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "b"}]}],
            "initContainers": [init],
            "nodeName": "node-1"
        },
        "status": status
    })
}

/// An EndpointSlice of `service` listing `(ip, pod uid, pod name)`.
pub fn endpoint_slice(
    name: &str,
    service: &str,
    port: u16,
    endpoints: &[(&str, &str, &str, bool)],
) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, uid, pod, terminating)| {
            json!({
                "addresses": [ip],
                "conditions": {"ready": !terminating, "serving": true, "terminating": terminating},
                "targetRef": {"kind": "Pod", "name": pod, "uid": uid, "namespace": "shop"}
            })
        })
        .collect();
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "gossip", "port": port, "protocol": "TCP"}]
    })
}

/// How a test runs the sidecar of pod `pod-<i>` (uid `uid-<i>`) at `ip`:
/// Kubernetes discovery through this fake (`kubeconfig`), the downward-API
/// environment a kubelet would give it, and `selector`.
pub fn pod_sidecar(
    webhook_url: String,
    ip: &str,
    kubeconfig: &Path,
    i: usize,
    namespace: &str,
    selector: &str,
) -> hearsay::demo::cluster::NodeSpec {
    hearsay::demo::cluster::NodeSpec {
        webhook_url,
        gossip_addr: Some(format!("{ip}:0").parse().unwrap()),
        no_peers_file: true,
        env: vec![
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            ("POD_IP".into(), ip.into()),
            ("POD_UID".into(), format!("uid-{i}")),
            ("POD_NAME".into(), format!("pod-{i}")),
            ("POD_NAMESPACE".into(), namespace.into()),
        ],
        args: vec![
            "--discovery".into(),
            "kubernetes".into(),
            "--k8s-selector".into(),
            selector.into(),
        ],
        ..Default::default()
    }
}

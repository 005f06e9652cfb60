//! A small kubelet and Deployment controller for tests: it takes the
//! objects `helm template` or `kubectl kustomize` produce, creates their
//! pods in the fake API server the way a ReplicaSet would (labels and spec
//! from the pod template plus `pod-template-hash`, a UID, a pod IP), and
//! runs each pod the way a node would:
//!
//! - its own network namespace (its own loopback, so every pod binds the
//!   rendered `127.0.0.1:7070`) with a veth on a bridge in 198.18.0.0/15,
//!   where the fake API server listens too;
//! - every container started from the rendered spec (see `container.rs`):
//!   native sidecars first (the next container starts once the sidecar's
//!   startup probe passes), then the app's containers;
//! - probes polled as a kubelet does, reported in the pod's status
//!   (`Ready`, container statuses, restart counts), with restarts on a
//!   failed liveness or startup probe and when a process exits;
//! - deletion as a kubelet does it: `deletionTimestamp` first, SIGTERM to
//!   the app's containers, then to the sidecars, SIGKILL at the end of the
//!   pod's `terminationGracePeriodSeconds`, then the object goes;
//! - rollouts as the Deployment controller does them, within `maxSurge`
//!   and `maxUnavailable`.
//!
//! The one addition to the rendered spec is `KUBECONFIG`, pointing at a
//! kubeconfig for the fake API server with the pod's ServiceAccount token,
//! in place of the in-cluster service account (the fake speaks HTTP). The
//! rendered Role is enforced for that token. Needs root (for namespaces);
//! [`PodRunner::start`] says why when it cannot run.
#![allow(dead_code)]

mod container;
mod net;
mod probe;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::fake_apiserver::{FakeApiServer, Kind, rbac::Rbac};
pub use container::Image;
use probe::Probe;

/// Why a pod runner cannot run here, if it cannot. Installs what is
/// missing from Debian (iproute2, util-linux, mount) when it can.
pub fn unavailable() -> Option<String> {
    if !crate::common::is_root() {
        return Some("the pod runner needs root (network and mount namespaces)".into());
    }
    crate::common::ensure_programs(&[
        ("ip", "iproute2"),
        ("setpriv", "util-linux"),
        ("mount", "mount"),
    ])
    .err()
}

/// How one container ended when its pod was deleted.
#[derive(Clone, Debug)]
pub struct Termination {
    pub pod: String,
    pub container: String,
    /// Its exit code, or None when a signal ended it.
    pub code: Option<i32>,
    /// Whether it had to be killed at the end of the grace period.
    pub killed: bool,
    pub after: Duration,
}

#[derive(Default)]
struct ContainerState {
    started: bool,
    ready: bool,
    restarts: u32,
    sidecar: bool,
}

pub struct Pod {
    pub name: String,
    pub uid: String,
    pub deployment: String,
    pub hash: String,
    pub ip: std::net::Ipv4Addr,
    net: net::PodNet,
    spec: Value,
    dir: PathBuf,
    volumes: BTreeMap<String, PathBuf>,
    children: tokio::sync::Mutex<BTreeMap<String, tokio::process::Child>>,
    states: Mutex<BTreeMap<String, ContainerState>>,
    problem: Mutex<Option<String>>,
    terminating: AtomicBool,
    created: Instant,
}

impl Pod {
    pub fn ready(&self) -> bool {
        let s = self.states.lock().unwrap();
        !s.is_empty() && s.values().all(|c| c.ready) && !self.terminating()
    }

    pub fn terminating(&self) -> bool {
        self.terminating.load(Ordering::SeqCst)
    }

    pub fn restarts(&self) -> u32 {
        self.states
            .lock()
            .unwrap()
            .values()
            .map(|c| c.restarts)
            .sum()
    }

    fn containers(&self) -> Vec<(Value, bool)> {
        let init = self.spec["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let main = self.spec["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        init.into_iter()
            .map(|c| {
                let sidecar = c["restartPolicy"] == "Always";
                (c, sidecar)
            })
            .chain(main.into_iter().map(|c| (c, false)))
            .collect()
    }

    fn container(&self, name: &str) -> Value {
        self.containers()
            .into_iter()
            .map(|(c, _)| c)
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("pod {} has no container {name}", self.name))
    }

    fn log_path(&self, container: &str) -> PathBuf {
        self.dir.join(format!("{container}.log"))
    }

    fn fail(&self, why: String) {
        eprintln!("pod {}: {why}", self.name);
        *self.problem.lock().unwrap() = Some(why);
    }
}

#[derive(Default)]
struct State {
    namespace: String,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// ServiceAccount → its kubeconfig.
    accounts: BTreeMap<String, PathBuf>,
    deployments: BTreeMap<String, Value>,
    pods: BTreeMap<String, Arc<Pod>>,
    next_host: u8,
    next_pod: u32,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    terminations: Vec<Termination>,
}

struct Inner {
    api: FakeApiServer,
    bridge: net::Bridge,
    dir: PathBuf,
    image: Image,
    state: Mutex<State>,
}

/// One node and the controllers that fill it. Dropping it kills every
/// process it started and removes its namespaces and bridge.
pub struct PodRunner {
    inner: Arc<Inner>,
}

fn template_hash(template: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{:010x}", h.finish() & 0xff_ffff_ffff)
}

fn decode_data(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        let v = v.as_str().unwrap_or_default();
        let bytes = if obj["kind"] == "Secret" {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .expect("Secret data is base64")
        } else {
            v.as_bytes().to_vec()
        };
        out.insert(k.clone(), bytes);
    }
    for (k, v) in obj["stringData"].as_object().into_iter().flatten() {
        out.insert(
            k.clone(),
            v.as_str().unwrap_or_default().as_bytes().to_vec(),
        );
    }
    out
}

impl PodRunner {
    /// A node with its bridge and the fake API server on it, whose
    /// containers of image `image.repository` run `image`.
    pub async fn start(dir: &Path, image: Image) -> PodRunner {
        if let Some(why) = unavailable() {
            panic!("{why}");
        }
        let bridge = net::Bridge::create().unwrap();
        let api = FakeApiServer::start_on(bridge.addr(1).into()).await;
        let state = State {
            namespace: "default".into(),
            next_host: 10,
            ..Default::default()
        };
        PodRunner {
            inner: Arc::new(Inner {
                api,
                bridge,
                dir: dir.to_owned(),
                image,
                state: Mutex::new(state),
            }),
        }
    }

    pub fn api(&self) -> &FakeApiServer {
        &self.inner.api
    }

    pub fn namespace(&self) -> String {
        self.inner.state.lock().unwrap().namespace.clone()
    }

    /// `kubectl apply` of rendered objects: ServiceAccounts get a token,
    /// the Role bound to one is enforced, Secrets and ConfigMaps are kept
    /// for volumes, Deployments are rolled out. Other kinds are accepted
    /// and have no effect on a node.
    pub fn apply(&self, objs: &[Value]) {
        let inner = &self.inner;
        let mut roles = BTreeMap::new();
        let mut bindings = Vec::new();
        let mut deployments = Vec::new();
        {
            let mut st = inner.state.lock().unwrap();
            for o in objs {
                let name = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if let Some(ns) = o["metadata"]["namespace"].as_str() {
                    st.namespace = ns.to_owned();
                }
                match o["kind"].as_str().unwrap_or_default() {
                    "ServiceAccount" => {
                        let path = inner.dir.join(format!("kubeconfig-{name}"));
                        inner
                            .api
                            .write_kubeconfig_with_token(&path, &format!("token-of-{name}"));
                        st.accounts.insert(name, path);
                    }
                    "Secret" => {
                        st.secrets.insert(name, decode_data(o));
                    }
                    "ConfigMap" => {
                        st.config_maps.insert(name, decode_data(o));
                    }
                    "Role" => {
                        roles.insert(name, o.clone());
                    }
                    "RoleBinding" => bindings.push(o.clone()),
                    "Deployment" => deployments.push(o.clone()),
                    _ => {}
                }
            }
        }
        for b in bindings {
            let role = &roles[b["roleRef"]["name"].as_str().unwrap()];
            for s in b["subjects"].as_array().into_iter().flatten() {
                let sa = s["name"].as_str().unwrap();
                inner
                    .api
                    .enforce(Rbac::from_role(role, sa, &format!("token-of-{sa}")));
            }
        }
        for d in deployments {
            let name = d["metadata"]["name"].as_str().unwrap().to_owned();
            inner
                .state
                .lock()
                .unwrap()
                .deployments
                .insert(name.clone(), d);
            self.scale(&name);
        }
    }

    /// `kubectl create secret generic NAME --from-literal=K=V…`.
    pub fn create_secret(&self, name: &str, literals: &[(&str, &str)]) {
        let data = literals
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.inner
            .state
            .lock()
            .unwrap()
            .secrets
            .insert(name.into(), data);
    }

    fn current_hash(&self, deployment: &str) -> (String, usize) {
        let st = self.inner.state.lock().unwrap();
        let d = &st.deployments[deployment];
        (
            template_hash(&d["spec"]["template"]),
            d["spec"]["replicas"].as_u64().unwrap_or(1) as usize,
        )
    }

    /// The deployment's pods that are not terminating, oldest first.
    pub fn pods(&self, deployment: &str) -> Vec<Arc<Pod>> {
        let st = self.inner.state.lock().unwrap();
        let mut v: Vec<Arc<Pod>> = st
            .pods
            .values()
            .filter(|p| p.deployment == deployment && !p.terminating())
            .cloned()
            .collect();
        v.sort_by_key(|p| p.created);
        v
    }

    pub fn pod(&self, name: &str) -> Arc<Pod> {
        self.inner.state.lock().unwrap().pods[name].clone()
    }

    /// What the ReplicaSet of the current template does: create pods until
    /// it has `replicas` of them.
    fn scale(&self, deployment: &str) {
        let (hash, replicas) = self.current_hash(deployment);
        let have = self
            .pods(deployment)
            .iter()
            .filter(|p| p.hash == hash)
            .count();
        for _ in have..replicas {
            self.create_pod(deployment);
        }
    }

    /// Creates one pod of the deployment's current template and starts
    /// running it in the background.
    fn create_pod(&self, deployment: &str) -> Arc<Pod> {
        let inner = self.inner.clone();
        let (pod, task_pod) = {
            let mut st = inner.state.lock().unwrap();
            let d = st.deployments[deployment].clone();
            let template = &d["spec"]["template"];
            let hash = template_hash(template);
            st.next_pod += 1;
            let n = st.next_pod;
            let host = st.next_host;
            st.next_host = st.next_host.checked_add(1).expect("at most 245 pods");
            let name = format!("{deployment}-{hash}-{:05x}", n * 7919 % 0xfffff);
            let uid = format!("00000000-0000-4000-8000-{:012x}", n);
            let net = inner.bridge.attach(host).unwrap();
            let dir = inner.dir.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            let mut spec = template["spec"].clone();
            spec["nodeName"] = json!("node-1");
            let (vols, problem) = match volumes(&st, &spec, &dir) {
                Ok(v) => (v, None),
                Err(e) => (BTreeMap::new(), Some(e)),
            };
            let pod = Arc::new(Pod {
                ip: net.ip,
                name: name.clone(),
                uid: uid.clone(),
                deployment: deployment.to_owned(),
                hash: hash.clone(),
                net,
                spec: spec.clone(),
                dir,
                volumes: vols,
                children: Default::default(),
                states: Default::default(),
                problem: Mutex::new(problem),
                terminating: AtomicBool::new(false),
                created: Instant::now(),
            });
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let obj = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": st.namespace,
                    "uid": uid,
                    "labels": labels,
                    "annotations": template["metadata"]["annotations"].clone(),
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": format!("{deployment}-{hash}"), "controller": true
                    }]
                },
                "spec": spec,
                "status": {"phase": "Pending"}
            });
            let ns = st.namespace.clone();
            inner.api.put(Kind::Pod, &ns, obj);
            st.pods.insert(name, pod.clone());
            (pod.clone(), pod)
        };
        let task = tokio::spawn(run_pod(inner.clone(), task_pod));
        inner.state.lock().unwrap().tasks.push(task);
        pod
    }

    /// Waits until the deployment has `n` ready pods of its current
    /// template; returns them, oldest first. A pod that cannot start fails
    /// the wait with its reason and logs.
    pub async fn wait_ready(&self, deployment: &str, n: usize, within: Duration) -> Vec<Arc<Pod>> {
        let deadline = Instant::now() + within;
        loop {
            let (hash, _) = self.current_hash(deployment);
            let pods: Vec<Arc<Pod>> = self
                .pods(deployment)
                .into_iter()
                .filter(|p| p.hash == hash)
                .collect();
            for p in &pods {
                if let Some(why) = p.problem.lock().unwrap().clone() {
                    panic!("pod {} cannot run: {why}\n{}", p.name, self.all_logs(p));
                }
            }
            let ready: Vec<Arc<Pod>> = pods.into_iter().filter(|p| p.ready()).collect();
            if ready.len() >= n {
                return ready;
            }
            if Instant::now() > deadline {
                let all = self.pods(deployment);
                let logs: Vec<String> = all.iter().map(|p| self.all_logs(p)).collect();
                panic!(
                    "{deployment}: {} of {n} pods ready after {within:?}\n{}",
                    ready.len(),
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kubectl logs POD -c CONTAINER` (every run of it).
    pub fn logs(&self, pod: &Pod, container: &str) -> String {
        std::fs::read_to_string(pod.log_path(container)).unwrap_or_default()
    }

    fn all_logs(&self, pod: &Pod) -> String {
        pod.containers()
            .iter()
            .map(|(c, _)| {
                let name = c["name"].as_str().unwrap();
                format!("--- {} {name}:\n{}", pod.name, self.logs(pod, name))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `kubectl exec POD -c CONTAINER -- ARGV`.
    pub async fn exec(&self, pod: &Pod, container: &str, argv: &[&str]) -> std::process::Output {
        let c = pod.container(container);
        let mut cmd = {
            let st = self.inner.state.lock().unwrap();
            let ctx = context(&self.inner, &st, pod);
            container::exec(&ctx, &self.inner.image, &c, argv).unwrap()
        };
        cmd.output().await.unwrap()
    }

    /// `kubectl delete pod NAME`: the ReplicaSet makes a replacement at
    /// once, and this returns when the pod is gone.
    pub async fn delete_pod(&self, name: &str) {
        let pod = self.pod(name);
        mark_terminating(&self.inner, &pod);
        self.scale(&pod.deployment);
        terminate(self.inner.clone(), pod).await;
    }

    /// `kubectl rollout restart deployment/NAME`, then waits for the
    /// rollout to finish (every old pod gone) as `kubectl rollout status`.
    pub async fn rollout_restart(&self, deployment: &str, within: Duration) {
        let (replicas, surge, unavailable) = {
            let mut st = self.inner.state.lock().unwrap();
            let d = st.deployments.get_mut(deployment).unwrap();
            let stamp = format!("{:?}", std::time::SystemTime::now());
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] =
                json!(stamp);
            let replicas = d["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
            let strategy = &d["spec"]["strategy"]["rollingUpdate"];
            let surge = bound(&strategy["maxSurge"], replicas, true);
            let unavailable = bound(&strategy["maxUnavailable"], replicas, false);
            (
                replicas,
                surge.max(if unavailable == 0 { 1 } else { 0 }),
                unavailable,
            )
        };
        let deadline = Instant::now() + within;
        let mut terminations = Vec::new();
        loop {
            let (hash, _) = self.current_hash(deployment);
            let pods = self.pods(deployment);
            let (new, old): (Vec<_>, Vec<_>) = pods.iter().partition(|p| p.hash == hash);
            if old.is_empty() && new.len() >= replicas {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rollout of {deployment} not done in {within:?}"
            );
            // Scale the new ReplicaSet up within maxSurge…
            let room = (replicas + surge).saturating_sub(pods.len());
            for _ in 0..room.min(replicas.saturating_sub(new.len())) {
                self.create_pod(deployment);
            }
            // …and the old one down within maxUnavailable.
            let available = pods.iter().filter(|p| p.ready()).count();
            let may_go = available.saturating_sub(replicas - unavailable);
            for p in old.iter().take(may_go) {
                mark_terminating(&self.inner, p);
                terminations.push(tokio::spawn(terminate(self.inner.clone(), (*p).clone())));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for t in terminations {
            t.await.unwrap();
        }
    }

    /// How every container of every deleted pod ended.
    pub fn terminations(&self) -> Vec<Termination> {
        self.inner.state.lock().unwrap().terminations.clone()
    }
}

/// A rolling update's maxSurge or maxUnavailable (default 25%): surge
/// rounds up, unavailability down, as the Deployment controller does.
fn bound(v: &Value, replicas: usize, up: bool) -> usize {
    let pct = |p: f64| {
        let x = p / 100.0 * replicas as f64;
        (if up { x.ceil() } else { x.floor() }) as usize
    };
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
        Value::String(s) => pct(s.trim_end_matches('%').parse().unwrap()),
        _ => pct(25.0),
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        // Logs stay for a failed test to read.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.inner.dir);
        }
        let mut st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        for t in st.tasks.drain(..) {
            t.abort();
        }
        for pod in std::mem::take(&mut st.pods).into_values() {
            if let Ok(mut children) = pod.children.try_lock() {
                for c in children.values_mut() {
                    let _ = c.start_kill();
                }
            }
            pod.net.remove();
        }
        self.inner.bridge.remove();
    }
}

fn context<'a>(inner: &'a Inner, st: &'a State, pod: &'a Pod) -> container::PodContext<'a> {
    let sa = pod.spec["serviceAccountName"].as_str().unwrap_or("default");
    let extra_env = st
        .accounts
        .get(sa)
        .map(|k| vec![("KUBECONFIG".to_owned(), k.display().to_string())])
        .unwrap_or_default();
    container::PodContext {
        name: &pod.name,
        namespace: &st.namespace,
        uid: &pod.uid,
        ip: pod.ip.to_string(),
        node_ip: inner.bridge.addr(1).to_string(),
        netns: &pod.net.netns,
        spec: &pod.spec,
        volumes: &pod.volumes,
        secrets: &st.secrets,
        config_maps: &st.config_maps,
        extra_env,
    }
}

/// Writes the pod's volumes: a Secret's or ConfigMap's keys as files
/// (mode 0644, as the kubelet's default), an emptyDir empty.
fn volumes(st: &State, spec: &Value, pod_dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap().to_owned();
        let dir = pod_dir.join("volumes").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let files = if let Some(s) = v.get("secret") {
            let n = s["secretName"].as_str().unwrap_or_default();
            st.secrets
                .get(n)
                .cloned()
                .ok_or_else(|| format!("secret \"{n}\" not found (volume {name})"))?
        } else if let Some(c) = v.get("configMap") {
            let n = c["name"].as_str().unwrap_or_default();
            st.config_maps
                .get(n)
                .cloned()
                .ok_or_else(|| format!("configmap \"{n}\" not found (volume {name})"))?
        } else if v.get("emptyDir").is_some() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
            BTreeMap::new()
        } else {
            return Err(format!(
                "volume {name}: only secret, configMap and emptyDir are supported"
            ));
        };
        for (k, bytes) in files {
            let f = dir.join(k);
            std::fs::write(&f, bytes).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        out.insert(name, dir);
    }
    Ok(out)
}

/// The pod's status as the kubelet reports it.
fn sync_status(inner: &Inner, pod: &Pod) {
    if pod.terminating() {
        return;
    }
    let ns = inner.state.lock().unwrap().namespace.clone();
    let (init, main): (Vec<Value>, Vec<Value>) = {
        let states = pod.states.lock().unwrap();
        let mut init = Vec::new();
        let mut main = Vec::new();
        for (c, sidecar) in pod.containers() {
            let name = c["name"].as_str().unwrap();
            let s = states.get(name);
            let v = json!({
                "name": name,
                "image": c["image"],
                "ready": s.is_some_and(|s| s.ready),
                "started": s.is_some_and(|s| s.started),
                "restartCount": s.map_or(0, |s| s.restarts),
                "state": {"running": {}}
            });
            if sidecar { init.push(v) } else { main.push(v) }
        }
        (init, main)
    };
    let ready = if pod.ready() { "True" } else { "False" };
    let ip = pod.ip.to_string();
    inner.api.update(Kind::Pod, &ns, &pod.name, |p| {
        p["status"] = json!({
            "phase": "Running",
            "hostIP": inner.bridge.addr(1).to_string(),
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": ready},
                {"type": "ContainersReady", "status": ready},
                {"type": "PodScheduled", "status": "True"}
            ],
            "initContainerStatuses": init,
            "containerStatuses": main
        });
    });
}

fn start_container(inner: &Inner, pod: &Pod, c: &Value) -> Result<tokio::process::Child, String> {
    let image = c["image"].as_str().unwrap_or_default();
    let repo = image.rsplit('/').next().unwrap().split(':').next().unwrap();
    if repo != inner.image.repository {
        return Err(format!("ErrImagePull: image {image} is not on this node"));
    }
    let name = c["name"].as_str().unwrap();
    let scratch = pod.dir.join("scratch").join(name);
    let mut cmd = {
        let st = inner.state.lock().unwrap();
        let ctx = context(inner, &st, pod);
        container::command(&ctx, &inner.image, c, &scratch, &pod.log_path(name))?
    };
    cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))
}

/// A kubelet's life of a pod: IP and volumes, sidecars then containers,
/// each watched by its probes until the pod terminates.
async fn run_pod(inner: Arc<Inner>, pod: Arc<Pod>) {
    if let Some(why) = pod.problem.lock().unwrap().clone() {
        eprintln!("pod {}: {why}", pod.name);
        return;
    }
    sync_status(&inner, &pod);
    for (c, sidecar) in pod.containers() {
        let is_init = pod.spec["initContainers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["name"] == c["name"]));
        if is_init && !sidecar {
            pod.fail("init containers that run to completion are not supported".into());
            return;
        }
        let name = c["name"].as_str().unwrap().to_owned();
        pod.states.lock().unwrap().insert(
            name.clone(),
            ContainerState {
                sidecar,
                ..Default::default()
            },
        );
        match start_container(&inner, &pod, &c) {
            Ok(child) => {
                pod.children.lock().await.insert(name.clone(), child);
            }
            Err(e) => return pod.fail(e),
        }
        let started = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(watch(
            inner.clone(),
            pod.clone(),
            c.clone(),
            started.clone(),
        ));
        inner.state.lock().unwrap().tasks.push(task);
        if sidecar {
            // The next container starts once this one has started.
            while !started.load(Ordering::SeqCst) {
                if pod.terminating() || pod.problem.lock().unwrap().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn set(pod: &Pod, name: &str, f: impl FnOnce(&mut ContainerState)) -> bool {
    let mut s = pod.states.lock().unwrap();
    let c = s.get_mut(name).unwrap();
    let before = (c.started, c.ready, c.restarts);
    f(c);
    before != (c.started, c.ready, c.restarts)
}

/// Probes one container until its pod terminates; restarts it when its
/// process ends or its startup or liveness probe fails too often.
async fn watch(inner: Arc<Inner>, pod: Arc<Pod>, c: Value, started_flag: Arc<AtomicBool>) {
    let name = c["name"].as_str().unwrap().to_owned();
    let startup = Probe::of(&c, "startupProbe");
    let readiness = Probe::of(&c, "readinessProbe");
    let liveness = Probe::of(&c, "livenessProbe");
    let tick = Duration::from_millis(100);
    'run: loop {
        let mut started = startup.is_none();
        let mut fails = 0u32;
        let (mut next_start, mut next_ready, mut next_live) =
            (Instant::now(), Instant::now(), Instant::now());
        let (mut live_fails, mut ready_fails) = (0u32, 0u32);
        if started {
            started_flag.store(true, Ordering::SeqCst);
            if set(&pod, &name, |s| {
                s.started = true;
                s.ready = readiness.is_none();
            }) {
                sync_status(&inner, &pod);
            }
        }
        loop {
            if pod.terminating() {
                return;
            }
            let exited = {
                let mut children = pod.children.lock().await;
                match children.get_mut(&name) {
                    Some(ch) => ch.try_wait().ok().flatten().is_some(),
                    None => return,
                }
            };
            let now = Instant::now();
            let mut restart = exited;
            if !exited && !started {
                let p = startup.as_ref().unwrap();
                if now >= next_start {
                    next_start = now + p.period;
                    if p.check(pod.ip).await {
                        started = true;
                        started_flag.store(true, Ordering::SeqCst);
                        if set(&pod, &name, |s| {
                            s.started = true;
                            s.ready = readiness.is_none();
                        }) {
                            sync_status(&inner, &pod);
                        }
                    } else {
                        fails += 1;
                        restart = fails >= p.failure_threshold;
                    }
                }
            } else if !exited {
                if let Some(p) = &readiness
                    && now >= next_ready
                {
                    next_ready = now + p.period;
                    let ok = p.check(pod.ip).await;
                    ready_fails = if ok { 0 } else { ready_fails + 1 };
                    let ready = ok || (ready_fails < p.failure_threshold && is_ready(&pod, &name));
                    if set(&pod, &name, |s| s.ready = ready) {
                        sync_status(&inner, &pod);
                    }
                }
                if let Some(p) = &liveness
                    && now >= next_live
                {
                    next_live = now + p.period;
                    live_fails = if p.check(pod.ip).await {
                        0
                    } else {
                        live_fails + 1
                    };
                    restart = live_fails >= p.failure_threshold;
                }
            }
            if restart {
                if pod.terminating() {
                    return;
                }
                eprintln!("pod {}: restarting container {name}", pod.name);
                if let Some(mut ch) = pod.children.lock().await.remove(&name) {
                    let _ = ch.kill().await;
                }
                set(&pod, &name, |s| {
                    s.restarts += 1;
                    s.started = false;
                    s.ready = false;
                });
                sync_status(&inner, &pod);
                tokio::time::sleep(Duration::from_secs(1)).await;
                if pod.terminating() {
                    return;
                }
                match start_container(&inner, &pod, &c) {
                    Ok(child) => {
                        pod.children.lock().await.insert(name.clone(), child);
                    }
                    Err(e) => return pod.fail(e),
                }
                continue 'run;
            }
            tokio::time::sleep(tick).await;
        }
    }
}

fn is_ready(pod: &Pod, name: &str) -> bool {
    pod.states
        .lock()
        .unwrap()
        .get(name)
        .is_some_and(|s| s.ready)
}

fn mark_terminating(inner: &Inner, pod: &Pod) {
    pod.terminating.store(true, Ordering::SeqCst);
    let ns = inner.state.lock().unwrap().namespace.clone();
    let grace = pod.spec["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    inner.api.update(Kind::Pod, &ns, &pod.name, |p| {
        p["metadata"]["deletionTimestamp"] = json!("2026-12-02T00:00:30Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        p["status"]["conditions"][1]["status"] = json!("False");
    });
}

/// SIGTERM to `names` at once; each waits until `deadline`, then SIGKILL.
async fn stop(pod: &Pod, names: &[String], deadline: Instant, since: Instant) -> Vec<Termination> {
    let mut children = Vec::new();
    {
        let mut map = pod.children.lock().await;
        for n in names {
            if let Some(ch) = map.remove(n) {
                if let Some(pid) = ch.id() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                children.push((n.clone(), ch));
            }
        }
    }
    let mut out = Vec::new();
    for (n, mut ch) in children {
        let wait = deadline.saturating_duration_since(Instant::now());
        let (status, killed) = match tokio::time::timeout(wait, ch.wait()).await {
            Ok(s) => (s.ok(), false),
            Err(_) => {
                let _ = ch.kill().await;
                (ch.wait().await.ok(), true)
            }
        };
        out.push(Termination {
            pod: pod.name.clone(),
            container: n,
            code: status.and_then(|s| s.code()),
            killed,
            after: since.elapsed(),
        });
    }
    out
}

/// The kubelet's graceful deletion: app containers first, then native
/// sidecars (in reverse order), all within the grace period; then the
/// object is removed and the network namespace goes.
async fn terminate(inner: Arc<Inner>, pod: Arc<Pod>) {
    let since = Instant::now();
    let grace = pod.spec["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let deadline = since + Duration::from_secs(grace);
    let containers = pod.containers();
    let main: Vec<String> = containers
        .iter()
        .filter(|(_, s)| !s)
        .map(|(c, _)| c["name"].as_str().unwrap().to_owned())
        .collect();
    let mut ended = stop(&pod, &main, deadline, since).await;
    // Sidecars get at least 2 s, as the kubelet gives them.
    let sidecar_deadline = deadline.max(Instant::now() + Duration::from_secs(2));
    for (c, _) in containers.iter().filter(|(_, s)| *s).rev() {
        let name = [c["name"].as_str().unwrap().to_owned()];
        ended.extend(stop(&pod, &name, sidecar_deadline, since).await);
    }
    let ns = {
        let mut st = inner.state.lock().unwrap();
        st.terminations.extend(ended);
        st.pods.remove(&pod.name);
        st.namespace.clone()
    };
    inner.api.delete(Kind::Pod, &ns, &pod.name);
    pod.net.remove();
}

//! Kubernetes discovery (DESIGN §9): kube-runtime's `watcher` and a
//! reflector on the Pods of this namespace that match the selector (or on
//! the EndpointSlices of a headless Service), never a hand-written watch
//! loop. The watcher lists, watches, re-lists after a `410 Gone`, and backs
//! off on errors; the reflector keeps the last complete view, so while the
//! API server is unreachable the last known peers stay in use.
//!
//! A pod is a peer once it has an IP and is not terminating (no
//! `deletionTimestamp`, not `Succeeded` or `Failed`); the app does not need
//! to be ready, since a warming app must still receive invalidations. A
//! peer's identity is its pod UID, so a reused IP is a new peer. Its gossip
//! port is the container port named `--k8s-gossip-port-name` (containers or
//! init containers, where a native sidecar lives), else this node's own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as make_watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::sync::watch;

use super::Publisher;
use crate::gossip::{Peer, PeerId, PeerSet};
use crate::metrics::Metrics;
use crate::settings::{K8sSettings, K8sSource};

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, Error)]
pub enum KubeSetupError {
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG)")]
    ConfigUnavailable(#[source] kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client")]
    ClientFailed(#[source] kube::Error),
    #[error("cannot tell which namespace to watch: set --k8s-namespace or POD_NAMESPACE")]
    NamespaceUnknown,
    #[error(
        "cannot look up this pod {name:?} to learn its UID (set POD_UID from the downward API)"
    )]
    OwnPodLookupFailed {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("this pod has no UID in the API")]
    OwnPodWithoutUid,
}

/// Everything discovery needs, resolved at start.
pub struct KubeDiscovery {
    pub client: Client,
    pub namespace: String,
    pub source: K8sSource,
    pub selector: String,
    pub gossip_port_name: String,
    /// The port used when a peer names no gossip port (this node's).
    pub default_port: u16,
    pub me_uid: String,
}

impl KubeDiscovery {
    /// Builds the client (in-cluster config, else `KUBECONFIG`), picks the
    /// namespace, and learns this pod's UID.
    pub async fn connect(
        k: &K8sSettings,
        default_port: u16,
    ) -> Result<KubeDiscovery, KubeSetupError> {
        let config = kube::Config::infer()
            .await
            .map_err(KubeSetupError::ConfigUnavailable)?;
        let namespace = k
            .namespace
            .clone()
            .or_else(|| {
                std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| Some(config.default_namespace.clone()).filter(|s| !s.is_empty()))
            .ok_or(KubeSetupError::NamespaceUnknown)?;
        let client = Client::try_from(config).map_err(KubeSetupError::ClientFailed)?;
        let me_uid = match (&k.pod_uid, &k.pod_name) {
            (Some(uid), _) => uid.clone(),
            (None, Some(name)) => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                let pod =
                    pods.get(name)
                        .await
                        .map_err(|source| KubeSetupError::OwnPodLookupFailed {
                            name: name.clone(),
                            source,
                        })?;
                pod.metadata.uid.ok_or(KubeSetupError::OwnPodWithoutUid)?
            }
            (None, None) => return Err(KubeSetupError::OwnPodWithoutUid),
        };
        Ok(KubeDiscovery {
            client,
            namespace,
            source: k.source.clone(),
            selector: k.selector.clone(),
            gossip_port_name: k.gossip_port_name.clone(),
            default_port,
            me_uid,
        })
    }

    /// This node's identity among its peers.
    pub fn me(&self) -> PeerId {
        PeerId::from_name(&self.me_uid)
    }
}

/// Keeps only what discovery reads, so a large namespace costs little.
pub fn slim_pod(pod: &mut Pod) {
    let m = &mut pod.metadata;
    m.managed_fields = None;
    m.annotations = None;
    m.labels = None;
    m.owner_references = None;
    m.finalizers = None;
    if let Some(spec) = &mut pod.spec {
        let slim = |c: &mut Container| Container {
            name: std::mem::take(&mut c.name),
            ports: c.ports.take(),
            ..Container::default()
        };
        spec.containers = spec.containers.iter_mut().map(slim).collect();
        spec.init_containers = spec
            .init_containers
            .as_mut()
            .map(|cs| cs.iter_mut().map(slim).collect());
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
        spec.node_selector = None;
    }
    if let Some(status) = &mut pod.status {
        status.conditions = None;
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
        status.pod_ips = None;
        status.host_ips = None;
    }
}

fn slim_slice(slice: &mut EndpointSlice) {
    slice.metadata.managed_fields = None;
    slice.metadata.annotations = None;
}

/// The gossip port a pod names, if any.
fn named_port(pod: &Pod, name: &str) -> Option<u16> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// The peer a pod stands for, if it is one.
pub fn pod_peer(pod: &Pod, port_name: &str, default_port: u16, me_uid: &str) -> Option<Peer> {
    let uid = pod.metadata.uid.as_deref()?;
    if uid == me_uid || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
    let port = named_port(pod, port_name).unwrap_or(default_port);
    Some(Peer {
        id: PeerId::from_name(uid),
        name: pod.metadata.name.as_deref().unwrap_or(uid).into(),
        addr: Some(SocketAddr::new(ip, port)),
    })
}

/// The peers an EndpointSlice lists (identity from the target pod's UID).
pub fn slice_peers(
    slice: &EndpointSlice,
    port_name: &str,
    default_port: u16,
    me_uid: &str,
) -> Vec<Peer> {
    let port = slice
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(port_name))
        .and_then(|p| p.port)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default_port);
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| {
            !e.conditions
                .as_ref()
                .and_then(|c| c.terminating)
                .unwrap_or(false)
        })
        .filter_map(|e| {
            let ip: IpAddr = e.addresses.first()?.parse().ok()?;
            let target = e.target_ref.as_ref();
            let uid = target
                .and_then(|t| t.uid.clone())
                .unwrap_or_else(|| ip.to_string());
            if uid == me_uid {
                return None;
            }
            let name = target
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| ip.to_string());
            Some(Peer {
                id: PeerId::from_name(&uid),
                name: name.as_str().into(),
                addr: Some(SocketAddr::new(ip, port)),
            })
        })
        .collect()
}

/// Runs discovery until shutdown, publishing each new peer set.
pub async fn run(
    d: KubeDiscovery,
    out: Publisher,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let ns = d.namespace.clone();
    let sink = Sink { out, metrics };
    match d.source.clone() {
        K8sSource::Pods => {
            let api: Api<Pod> = Api::namespaced(d.client.clone(), &ns);
            let config = watcher::Config::default().labels(&d.selector);
            let (name, port, me) = (d.gossip_port_name.clone(), d.default_port, d.me_uid.clone());
            tracing::info!(namespace = %ns, selector = %d.selector, "watching pods");
            watch_peers(
                api,
                config,
                slim_pod,
                move |pods: &[Arc<Pod>]| {
                    pods.iter()
                        .filter_map(|p| pod_peer(p, &name, port, &me))
                        .collect()
                },
                sink,
                shutdown,
            )
            .await;
        }
        K8sSource::EndpointSlices { service } => {
            let api: Api<EndpointSlice> = Api::namespaced(d.client.clone(), &ns);
            let mut labels = format!("kubernetes.io/service-name={service}");
            if !d.selector.is_empty() {
                labels.push(',');
                labels.push_str(&d.selector);
            }
            let config = watcher::Config::default().labels(&labels);
            let (name, port, me) = (d.gossip_port_name.clone(), d.default_port, d.me_uid.clone());
            tracing::info!(namespace = %ns, service = %service, "watching endpointslices");
            watch_peers(
                api,
                config,
                slim_slice,
                move |slices: &[Arc<EndpointSlice>]| {
                    slices
                        .iter()
                        .flat_map(|s| slice_peers(s, &name, port, &me))
                        .collect()
                },
                sink,
                shutdown,
            )
            .await;
        }
    }
}

/// Where discovery's results go.
struct Sink {
    out: Publisher,
    metrics: Arc<Metrics>,
}

async fn watch_peers<K>(
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
    to_peers: impl Fn(&[Arc<K>]) -> Vec<Peer>,
    sink: Sink,
    mut shutdown: watch::Receiver<bool>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = make_watcher(api, config)
        .default_backoff()
        .modify(slim)
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut listed = false;
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = crate::shutdown::requested(&mut shutdown) => return,
        };
        match next {
            Some(Ok(Event::InitDone)) => {
                publish_from(&reader, &to_peers, &sink);
                if !listed {
                    listed = true;
                    sink.out.listed();
                    tracing::info!(peers = sink.out.peer_count(), "first list complete");
                }
            }
            Some(Ok(Event::Apply(_) | Event::Delete(_))) => publish_from(&reader, &to_peers, &sink),
            // A (re-)list in progress: the store swaps in the new view at
            // InitDone; until then the last one stays in use.
            Some(Ok(Event::Init | Event::InitApply(_))) => {}
            Some(Err(e)) => {
                sink.metrics
                    .membership
                    .discovery_errors
                    .with_label_values(&["kubernetes"])
                    .inc();
                tracing::warn!(error = %error_chain(&e), "kubernetes discovery failed; keeping the last known peers and retrying");
            }
            None => return,
        }
    }
}

fn publish_from<K>(reader: &Store<K>, to_peers: &impl Fn(&[Arc<K>]) -> Vec<Peer>, sink: &Sink)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let objects = reader.state();
    sink.out.publish(PeerSet::new(to_peers(&objects)));
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(uid: &str, ip: Option<&str>, port: Option<i32>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("pod-{uid}")),
                uid: Some(uid.into()),
                managed_fields: Some(vec![Default::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("app:1".into()),
                    ..Container::default()
                }],
                init_containers: Some(vec![Container {
                    name: "hearsay".into(),
                    ports: port.map(|p| {
                        vec![ContainerPort {
                            name: Some("gossip".into()),
                            container_port: p,
                            ..ContainerPort::default()
                        }]
                    }),
                    ..Container::default()
                }]),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: ip.map(str::to_owned),
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn a_pod_with_an_ip_is_a_peer_at_its_named_gossip_port() {
        let p = pod_peer(
            &pod("u1", Some("10.0.0.7"), Some(7000)),
            "gossip",
            7946,
            "me",
        )
        .unwrap();
        assert_eq!(p.addr, Some("10.0.0.7:7000".parse().unwrap()));
        assert_eq!(p.id, PeerId::from_name("u1"));
        assert_eq!(&*p.name, "pod-u1");
        let default = pod_peer(&pod("u2", Some("10.0.0.8"), None), "gossip", 7946, "me").unwrap();
        assert_eq!(default.addr, Some("10.0.0.8:7946".parse().unwrap()));
    }

    #[test]
    fn pods_without_ip_terminating_finished_or_this_one_are_not_peers() {
        assert!(pod_peer(&pod("u1", None, None), "gossip", 1, "me").is_none());
        assert!(pod_peer(&pod("me", Some("10.0.0.1"), None), "gossip", 1, "me").is_none());
        let mut terminating = pod("u2", Some("10.0.0.2"), None);
        terminating.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert!(pod_peer(&terminating, "gossip", 1, "me").is_none());
        let mut done = pod("u3", Some("10.0.0.3"), None);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(pod_peer(&done, "gossip", 1, "me").is_none());
    }

    #[test]
    fn slimming_keeps_what_discovery_reads_and_drops_the_rest() {
        let mut p = pod("u1", Some("10.0.0.7"), Some(7000));
        slim_pod(&mut p);
        assert!(p.metadata.managed_fields.is_none());
        assert!(p.spec.as_ref().unwrap().containers[0].image.is_none());
        assert_eq!(
            pod_peer(&p, "gossip", 1, "me").unwrap().addr,
            Some("10.0.0.7:7000".parse().unwrap())
        );
    }
}

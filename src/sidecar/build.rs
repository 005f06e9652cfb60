//! Building a sidecar: binding the listeners, finding out who this node is, loading the keys, and the owner task's state.

use crate::delivery::queue::{AppQueue, AppQueueConfig};
use crate::discovery::kubernetes::KubeDiscovery;
use crate::discovery::static_peers::{self};
use crate::gossip::{FlushReason, Node, Origin, PeerId};
use crate::metrics::Metrics;
use crate::settings::{DiscoveryMode, Settings};
use crate::transport::Transport;
use crate::transport::faults::Faults;
use crate::transport::keyring::{Keyring, SharedKeyring};
use crate::transport::writer::WriterCtx;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;

use super::owner::{Outlet, OutletKind, Owner};
use super::spawn::Wiring;
use crate::clock::Clock;

pub(super) async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// The listeners, bound, and the addresses they got.
pub(super) struct Bound {
    pub(super) gossip: TcpListener,
    pub(super) api: TcpListener,
    pub(super) metrics: TcpListener,
    pub(super) gossip_addr: SocketAddr,
    pub(super) api_addr: SocketAddr,
    pub(super) metrics_addr: SocketAddr,
}

pub(super) async fn bind_all(settings: &Settings) -> anyhow::Result<Bound> {
    let gossip = bind(settings.gossip_addr, "gossip").await?;
    let api = bind(settings.api_addr, "the local API").await?;
    let metrics = bind(settings.metrics_addr, "metrics").await?;
    Ok(Bound {
        gossip_addr: gossip.local_addr()?,
        api_addr: api.local_addr()?,
        metrics_addr: metrics.local_addr()?,
        gossip,
        api,
        metrics,
    })
}

/// Who this node is to its peers: in Kubernetes its pod (by UID) at the
/// pod IP; with static peers, the address they list it under.
pub(super) struct Identity {
    pub(super) me: PeerId,
    pub(super) me_addr: SocketAddr,
    pub(super) origin: Origin,
    pub(super) kube: Option<KubeDiscovery>,
}

impl Identity {
    /// A copy for the announcement: discovery itself moves into its task.
    pub(super) fn without_discovery(&self) -> Identity {
        Identity {
            me: self.me,
            me_addr: self.me_addr,
            origin: self.origin,
            kube: None,
        }
    }
}

pub(super) async fn identify(
    settings: &Settings,
    gossip_addr: SocketAddr,
) -> anyhow::Result<Identity> {
    let advertise = settings.advertise_addr.map(|mut a| {
        if a.port() == 0 {
            a.set_port(gossip_addr.port());
        }
        a
    });
    let (me, me_addr, kube) = match (&settings.discovery, &settings.k8s) {
        (DiscoveryMode::Kubernetes, Some(k)) => {
            let d = KubeDiscovery::connect(k, gossip_addr.port())
                .await
                .context("starting Kubernetes discovery")?;
            let addr =
                advertise.context("Kubernetes discovery needs POD_IP or --advertise-addr")?;
            (d.me(), addr, Some(d))
        }
        _ => {
            let addr = static_peers::find_self(&settings.peers, gossip_addr, advertise).await?;
            (PeerId::from_name(&addr.to_string()), addr, None)
        }
    };
    // A zero origin would print like "no origin"; any other value will do.
    let origin = Origin(rand::random::<u64>().max(1));
    Ok(Identity {
        me,
        me_addr,
        origin,
        kube,
    })
}

pub(super) fn load_keys(settings: &Settings) -> anyhow::Result<SharedKeyring> {
    let keys = SharedKeyring::new(Keyring::load(&settings.keys).context("loading the gossip key")?);
    if keys.current().is_insecure() {
        tracing::warn!(
            "running without a gossip key (--insecure): anyone who reaches the gossip port can inject events"
        );
    }
    Ok(keys)
}

pub(super) fn faults(settings: &Settings) -> Option<Arc<Faults>> {
    if settings.fault_drop_frames <= 0.0 {
        return None;
    }
    tracing::warn!(
        drop = settings.fault_drop_frames,
        "fault injection is on: outbound frames will be dropped on purpose"
    );
    Some(Arc::new(Faults::new(settings.fault_drop_frames)))
}

/// The webhook's queue, flushed once at start if asked: the app may have
/// missed events while this sidecar was down (a sidecar restart keeps the
/// app and its cache). For an app that is starting too, its cache is
/// empty and this costs nothing. (A stream opens with a flush of its own.)
pub(super) fn app_queue(settings: &Settings, clock: &Clock, metrics: &Metrics) -> AppQueue {
    let mut queue = AppQueue::new(settings.app_queue.clone(), clock.now());
    if settings.flush_on_start {
        queue.push_flush(None, FlushReason::SidecarStart);
    }
    metrics
        .delivery
        .delivery_queue_capacity
        .set(i64::try_from(settings.app_queue.max_pending).unwrap_or(i64::MAX));
    queue
}

/// The ways out to the app `--delivery` asks for: the webhook first.
pub(super) fn outlets(settings: &Settings, clock: &Clock, metrics: &Metrics) -> Vec<Outlet> {
    let mut outlets = Vec::new();
    if settings.delivery.webhook() {
        let queue = app_queue(settings, clock, metrics);
        outlets.push(Outlet::new(OutletKind::Webhook, queue));
    }
    if settings.delivery.streams() {
        // The streams are local memory: no request rate to respect.
        let cfg = AppQueueConfig {
            requests: None,
            ..settings.app_queue.clone()
        };
        let queue = AppQueue::new(cfg, clock.now());
        outlets.push(Outlet::new(OutletKind::Streams, queue));
    }
    outlets
}

/// The protocol core, the app's outlets and the outbound transport, in
/// the one task that owns them.
pub(super) fn build_owner(settings: &Settings, id: &Identity, clock: Clock, w: &Wiring) -> Owner {
    let transport = Transport::new(Arc::new(WriterCtx {
        me: id.me,
        origin: id.origin,
        keys: w.keys.clone(),
        frame_seq: AtomicU64::new(0),
        max_frame: settings.max_frame_bytes,
        bind_ip: Some(id.me_addr.ip()).filter(|ip| !ip.is_unspecified()),
        faults: faults(settings),
        metrics: w.metrics.clone(),
        auth: w.auth.clone(),
        peer_timeout: settings.peer_timeout,
    }));
    let node = Node::new(
        Arc::new(settings.node.clone()),
        id.me,
        id.origin,
        clock.now(),
        rand::random(),
    );
    let outlets = outlets(settings, &clock, &w.metrics);
    Owner::new(
        node,
        outlets,
        transport,
        clock,
        w.metrics.clone(),
        settings.node_name.clone(),
        settings.max_confirm_waits,
    )
}

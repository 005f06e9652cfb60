//! `hearsay run`: builds the sidecar from its settings, runs it, and drains
//! it on SIGTERM (Kubernetes sends this) or SIGINT.
//!
//! The tasks: the owner ([`owner`]) holds all protocol state; the gossip
//! listener feeds it frames; discovery feeds it peer sets; the local API and
//! the webhook worker send it commands; the metrics listener reads shared
//! metrics. Everything between them is a bounded channel.

pub mod clock;
pub mod commands;
pub mod owner;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::api::{self, ApiCtx};
use crate::delivery::queue::AppQueue;
use crate::delivery::webhook::{self, WebhookConfig};
use crate::discovery::kubernetes::{self, KubeDiscovery};
use crate::discovery::static_peers::{self, StaticDiscovery};
use crate::gossip::{FlushReason, Node, Origin, PeerId, PeerSet};
use crate::http::{self, ServerLimits};
use crate::metrics::Metrics;
use crate::metrics::server::{self as metrics_server, Readiness};
use crate::settings::{DiscoveryMode, Settings};
use crate::transport::Transport;
use crate::transport::faults::Faults;
use crate::transport::frame::ReadLimits;
use crate::transport::keyring::{Keyring, SharedKeyring};
use crate::transport::listener::{self, InboundFrame, ListenerCtx};
use crate::transport::reload;
use crate::transport::replay::ReplayGuard;
use crate::transport::writer::WriterCtx;

/// A gossip connection that carries nothing this long is closed (peers send
/// an anti-entropy digest every second; writers close idle connections
/// after two minutes).
const GOSSIP_IDLE: std::time::Duration = std::time::Duration::from_secs(300);
/// Once a frame has started, the rest of it must arrive within this.
const GOSSIP_FRAME_TIME: std::time::Duration = std::time::Duration::from_secs(10);
use clock::Clock;
use owner::Owner;

/// What `--ready-file` receives once every listener is up.
#[derive(Serialize)]
struct ReadyFile<'a> {
    node: &'a str,
    pid: u32,
    peer_id: String,
    origin: String,
    gossip: SocketAddr,
    advertise: SocketAddr,
    api: SocketAddr,
    metrics: SocketAddr,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Runs the sidecar: bind and build, spawn every task, wait for a signal,
/// then drain within the grace period.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let bound = bind_all(&settings).await?;
    let id = identify(&settings, bound.gossip_addr).await?;
    let keys = load_keys(&settings)?;
    let addrs = (bound.gossip_addr, bound.api_addr, bound.metrics_addr);
    let who = id.without_discovery();
    let running = spawn(&settings, bound, id, keys);
    // Listening before anyone can learn we are up (the ready file, the log
    // line): a SIGTERM sent the moment after is then a graceful stop.
    let mut signals = crate::shutdown::Signals::listen();
    announce(&settings, &who, addrs)?;
    let signal = signals.recv().await;
    tracing::info!(signal, grace = ?settings.shutdown_grace, "stopping: no new publishes; sending and delivering what is queued");
    running.drain(settings.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// The listeners, bound, and the addresses they got.
struct Bound {
    gossip: TcpListener,
    api: TcpListener,
    metrics: TcpListener,
    gossip_addr: SocketAddr,
    api_addr: SocketAddr,
    metrics_addr: SocketAddr,
}

async fn bind_all(settings: &Settings) -> anyhow::Result<Bound> {
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
struct Identity {
    me: PeerId,
    me_addr: SocketAddr,
    origin: Origin,
    kube: Option<KubeDiscovery>,
}

impl Identity {
    /// A copy for the announcement: discovery itself moves into its task.
    fn without_discovery(&self) -> Identity {
        Identity {
            me: self.me,
            me_addr: self.me_addr,
            origin: self.origin,
            kube: None,
        }
    }
}

async fn identify(settings: &Settings, gossip_addr: SocketAddr) -> anyhow::Result<Identity> {
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

fn load_keys(settings: &Settings) -> anyhow::Result<SharedKeyring> {
    let keys = SharedKeyring::new(Keyring::load(&settings.keys).context("loading the gossip key")?);
    if keys.current().is_insecure() {
        tracing::warn!(
            "running without a gossip key (--insecure): anyone who reaches the gossip port can inject events"
        );
    }
    Ok(keys)
}

fn faults(settings: &Settings, shutdown: &watch::Receiver<bool>) -> Option<Arc<Faults>> {
    if settings.fault_drop_frames <= 0.0 && settings.fault_block_file.is_none() {
        return None;
    }
    tracing::warn!(
        drop = settings.fault_drop_frames,
        block_file = ?settings.fault_block_file,
        "fault injection is on: outbound frames will be dropped on purpose"
    );
    let f = Arc::new(Faults::new(
        settings.fault_drop_frames,
        settings.fault_block_file.clone(),
    ));
    let (follow, stop) = (f.clone(), shutdown.clone());
    tokio::spawn(async move { follow.follow_block_file(stop).await });
    Some(f)
}

/// The app's queue, flushed once at start if asked: the app may have
/// missed events while this sidecar was down (a sidecar restart keeps the
/// app and its cache). For an app that is starting too, its cache is
/// empty and this costs nothing.
fn app_queue(settings: &Settings, clock: &Clock, metrics: &Metrics) -> AppQueue {
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

/// The tasks that run until shutdown, and what stops them.
struct Running {
    owner: tokio::task::JoinHandle<()>,
    api: tokio::task::JoinHandle<()>,
    metrics_server: tokio::task::JoinHandle<()>,
    webhook: tokio::task::JoinHandle<()>,
    readiness: Arc<Readiness>,
    shutting_down: Arc<AtomicBool>,
    shutdown_tx: watch::Sender<bool>,
    servers_stop_tx: watch::Sender<bool>,
}

/// The channels between the tasks.
struct Wiring {
    members_tx: watch::Sender<Arc<PeerSet>>,
    members_rx: watch::Receiver<Arc<PeerSet>>,
    cmd_tx: mpsc::Sender<commands::Command>,
    notify: Arc<Notify>,
    shutdown_rx: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    keys: SharedKeyring,
    /// Authentication failures by peer address, seen by the listener and
    /// reported by the writer's peers list.
    auth: Arc<crate::transport::auth_watch::AuthWatch>,
}

/// Builds the core, the transport and the delivery, and spawns every task.
fn spawn(settings: &Settings, bound: Bound, id: Identity, keys: SharedKeyring) -> Running {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (servers_stop_tx, servers_stop_rx) = watch::channel(false);
    let (members_tx, members_rx) = watch::channel(Arc::new(PeerSet::default()));
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (frames_tx, frames_rx) = mpsc::channel(1024);
    let w = Wiring {
        members_tx,
        members_rx,
        cmd_tx,
        notify: Arc::new(Notify::new()),
        shutdown_rx,
        metrics: Arc::new(Metrics::new()),
        readiness: Arc::new(Readiness::default()),
        keys,
        auth: Arc::new(crate::transport::auth_watch::AuthWatch::default()),
    };
    // Unbound frames (from senders older than the hello) sent before this
    // moment were sealed for an earlier incarnation: see `transport::replay`.
    let started_ms = crate::transport::frame::now_ms();
    let clock = Clock::new();
    tokio::spawn(reload::run(
        settings.keys.clone(),
        w.keys.clone(),
        w.metrics.clone(),
        w.shutdown_rx.clone(),
    ));
    let owner = build_owner(settings, &id, clock, &w);
    let health = owner.webhook.clone();
    let owner_task = tokio::spawn(owner::run(
        owner,
        cmd_rx,
        frames_rx,
        w.members_rx.clone(),
        w.shutdown_rx.clone(),
        settings.shutdown_grace,
    ));
    spawn_listener(settings, bound.gossip, &id, frames_tx, started_ms, &w);
    let origin = id.origin;
    spawn_discovery(settings, id, &w);
    let shutting_down = Arc::new(AtomicBool::new(false));
    let (api, metrics_server) = spawn_servers(
        settings,
        bound.api,
        bound.metrics,
        &w,
        &shutting_down,
        servers_stop_rx,
    );
    let webhook_task = tokio::spawn(webhook::run(
        WebhookConfig {
            url: settings.webhook_url.clone(),
            probe_path: settings.webhook_probe_path.clone(),
            timeout: settings.webhook_timeout,
            retry_budget: settings.webhook_retry_budget,
        },
        origin,
        w.cmd_tx,
        w.notify,
        w.metrics,
        clock,
        health,
    ));
    w.readiness.listeners_up.store(true, Ordering::Relaxed);
    Running {
        owner: owner_task,
        api,
        metrics_server,
        webhook: webhook_task,
        readiness: w.readiness,
        shutting_down,
        shutdown_tx,
        servers_stop_tx,
    }
}

/// The protocol core, the app's queue and the outbound transport, in the
/// one task that owns them.
fn build_owner(settings: &Settings, id: &Identity, clock: Clock, w: &Wiring) -> Owner {
    let transport = Transport::new(Arc::new(WriterCtx {
        me: id.me,
        origin: id.origin,
        keys: w.keys.clone(),
        frame_seq: AtomicU64::new(0),
        max_frame: settings.max_frame_bytes,
        bind_ip: Some(id.me_addr.ip()).filter(|ip| !ip.is_unspecified()),
        faults: faults(settings, &w.shutdown_rx),
        metrics: w.metrics.clone(),
        auth: w.auth.clone(),
    }));
    let node = Node::new(
        Arc::new(settings.node.clone()),
        id.me,
        id.origin,
        clock.now(),
        rand::random(),
    );
    let queue = app_queue(settings, &clock, &w.metrics);
    Owner::new(
        node,
        queue,
        transport,
        clock,
        w.metrics.clone(),
        w.notify.clone(),
        settings.node_name.clone(),
    )
}

/// The gossip listener: authenticates inbound frames and hands them to
/// the owner.
fn spawn_listener(
    settings: &Settings,
    gossip: TcpListener,
    id: &Identity,
    frames_tx: mpsc::Sender<InboundFrame>,
    started_ms: u64,
    w: &Wiring,
) {
    tokio::spawn(listener::run(
        gossip,
        Arc::new(ListenerCtx {
            me: id.me,
            origin: id.origin,
            keys: w.keys.clone(),
            limits: ReadLimits {
                max_body: settings.max_frame_bytes,
                idle: GOSSIP_IDLE,
                frame: GOSSIP_FRAME_TIME,
            },
            members: w.members_rx.clone(),
            allow_unknown_peers: settings.allow_unknown_peers,
            replay: ReplayGuard::new(settings.replay_window, 65_536, started_ms),
            max_connections: settings.max_gossip_connections,
            metrics: w.metrics.clone(),
            auth: w.auth.clone(),
        }),
        frames_tx,
        w.shutdown_rx.clone(),
    ));
}

fn spawn_discovery(settings: &Settings, id: Identity, w: &Wiring) {
    let (members, ready, metrics, stop) = (
        w.members_tx.clone(),
        w.readiness.clone(),
        w.metrics.clone(),
        w.shutdown_rx.clone(),
    );
    match id.kube {
        Some(d) => tokio::spawn(kubernetes::run(d, members, ready, metrics, stop)),
        None => tokio::spawn(static_peers::run(
            StaticDiscovery {
                entries: settings.peers.clone(),
                file: settings.peers_file.clone(),
                me: id.me_addr,
            },
            members,
            ready,
            metrics,
            stop,
        )),
    };
}

/// The local API and the metrics server. Both stay up through the drain,
/// so a publish then gets 503 and the status says shutting_down, rather
/// than a refused connection.
fn spawn_servers(
    settings: &Settings,
    api_listener: TcpListener,
    metrics_listener: TcpListener,
    w: &Wiring,
    shutting_down: &Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let api_ctx = Arc::new(ApiCtx {
        cmd_tx: w.cmd_tx.clone(),
        token: settings.api_token.clone(),
        shutting_down: shutting_down.clone(),
        refused_shutting_down: w
            .metrics
            .events
            .publish_refused
            .with_label_values(&["shutting_down"]),
    });
    let api = tokio::spawn(http::serve(
        api_listener,
        move |req| api::handle(req, api_ctx.clone()),
        ServerLimits::default(),
        stop.clone(),
        settings.shutdown_grace,
    ));
    let (m, r) = (w.metrics.clone(), w.readiness.clone());
    let metrics = tokio::spawn(http::serve(
        metrics_listener,
        move |req| metrics_server::handle(req, m.clone(), r.clone()),
        ServerLimits {
            max_connections: 64,
            ..ServerLimits::default()
        },
        stop,
        std::time::Duration::from_secs(1),
    ));
    (api, metrics)
}

/// Writes the ready file and logs that the sidecar runs.
fn announce(
    settings: &Settings,
    id: &Identity,
    (gossip, api, metrics): (SocketAddr, SocketAddr, SocketAddr),
) -> anyhow::Result<()> {
    if let Some(path) = &settings.ready_file {
        let ready = ReadyFile {
            node: &settings.node_name,
            pid: std::process::id(),
            peer_id: id.me.to_string(),
            origin: id.origin.to_string(),
            gossip,
            advertise: id.me_addr,
            api,
            metrics,
        };
        write_atomically(path, &serde_json::to_vec(&ready)?)
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    tracing::info!(
        node = %settings.node_name,
        peer_id = %id.me,
        origin = %id.origin,
        %gossip,
        advertise = %id.me_addr,
        %api,
        %metrics,
        webhook = %settings.webhook_url,
        "hearsay is running"
    );
    Ok(())
}

impl Running {
    /// Stops taking publishes, lets the owner send and deliver what is
    /// queued within `grace`, then stops the servers.
    async fn drain(self, grace: std::time::Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.readiness.listeners_up.store(false, Ordering::Relaxed);
        let _ = self.shutdown_tx.send(true);
        let limit = grace + std::time::Duration::from_secs(2);
        if tokio::time::timeout(limit, self.owner).await.is_err() {
            tracing::warn!("the owner task did not finish within the grace period");
        }
        self.webhook.abort();
        let _ = self.servers_stop_tx.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.api).await;
        let _ = self.metrics_server.await;
    }
}

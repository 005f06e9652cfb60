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
use crate::transport::listener::{self, ListenerCtx};
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

/// Runs the sidecar until a signal, then drains and returns.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (metrics_stop_tx, metrics_stop_rx) = watch::channel(false);

    let gossip_listener = bind(settings.gossip_addr, "gossip").await?;
    let api_listener = bind(settings.api_addr, "the local API").await?;
    let metrics_listener = bind(settings.metrics_addr, "metrics").await?;
    let gossip_addr = gossip_listener.local_addr()?;
    let api_addr = api_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;

    // Who this node is to its peers: in Kubernetes its pod (by UID) at the
    // pod IP; with static peers, the address they list it under.
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
    let keys = SharedKeyring::new(Keyring::load(&settings.keys).context("loading the gossip key")?);
    if keys.current().is_insecure() {
        tracing::warn!(
            "running without a gossip key (--insecure): anyone who reaches the gossip port can inject events"
        );
    }
    // A zero origin would print like "no origin"; any other value will do.
    let origin = Origin(rand::random::<u64>().max(1));
    // Unbound frames (from senders older than the hello) sent before this
    // moment were sealed for an earlier incarnation: see `transport::replay`.
    let started_ms = crate::transport::frame::now_ms();
    let clock = Clock::new();
    let node = Node::new(
        Arc::new(settings.node.clone()),
        me,
        origin,
        clock.now(),
        rand::random(),
    );
    let mut queue = AppQueue::new(settings.app_queue.clone(), clock.now());
    if settings.flush_on_start {
        // The app may have missed events while this sidecar was down (a
        // sidecar restart keeps the app and its cache): start it clean. For
        // an app that is starting too, its cache is empty and this costs
        // nothing.
        queue.push_flush(None, FlushReason::SidecarStart);
    }
    metrics
        .delivery
        .delivery_queue_capacity
        .set(i64::try_from(settings.app_queue.max_pending).unwrap_or(i64::MAX));
    let faults =
        (settings.fault_drop_frames > 0.0 || settings.fault_block_file.is_some()).then(|| {
            tracing::warn!(
                drop = settings.fault_drop_frames,
                block_file = ?settings.fault_block_file,
                "fault injection is on: outbound frames will be dropped on purpose"
            );
            Arc::new(Faults::new(
                settings.fault_drop_frames,
                settings.fault_block_file.clone(),
            ))
        });
    if let Some(f) = &faults {
        let (f, stop) = (f.clone(), shutdown_rx.clone());
        tokio::spawn(async move { f.follow_block_file(stop).await });
    }
    tokio::spawn(reload::run(
        settings.keys.clone(),
        keys.clone(),
        metrics.clone(),
        shutdown_rx.clone(),
    ));
    let auth_watch = Arc::new(crate::transport::auth_watch::AuthWatch::default());
    let transport = Transport::new(Arc::new(WriterCtx {
        me,
        origin,
        keys: keys.clone(),
        frame_seq: AtomicU64::new(0),
        max_frame: settings.max_frame_bytes,
        bind_ip: Some(me_addr.ip()).filter(|ip| !ip.is_unspecified()),
        faults: faults.clone(),
        metrics: metrics.clone(),
        auth: auth_watch.clone(),
    }));
    let (members_tx, members_rx) = watch::channel(Arc::new(PeerSet::default()));
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (frames_tx, frames_rx) = mpsc::channel(1024);
    let notify = Arc::new(Notify::new());
    let shutting_down = Arc::new(AtomicBool::new(false));

    let owner = Owner::new(
        node,
        queue,
        transport,
        clock,
        metrics.clone(),
        notify.clone(),
        settings.node_name.clone(),
    );
    let health = owner.webhook.clone();
    let owner_task = tokio::spawn(owner::run(
        owner,
        cmd_rx,
        frames_rx,
        members_rx.clone(),
        shutdown_rx.clone(),
        settings.shutdown_grace,
    ));
    tokio::spawn(listener::run(
        gossip_listener,
        Arc::new(ListenerCtx {
            me,
            origin,
            keys: keys.clone(),
            limits: ReadLimits {
                max_body: settings.max_frame_bytes,
                idle: GOSSIP_IDLE,
                frame: GOSSIP_FRAME_TIME,
            },
            members: members_rx.clone(),
            allow_unknown_peers: settings.allow_unknown_peers,
            replay: ReplayGuard::new(settings.replay_window, 65_536, started_ms),
            max_connections: settings.max_gossip_connections,
            metrics: metrics.clone(),
            auth: auth_watch,
        }),
        frames_tx,
        shutdown_rx.clone(),
    ));
    match kube {
        Some(d) => {
            tokio::spawn(kubernetes::run(
                d,
                members_tx,
                readiness.clone(),
                metrics.clone(),
                shutdown_rx.clone(),
            ));
        }
        None => {
            tokio::spawn(static_peers::run(
                StaticDiscovery {
                    entries: settings.peers.clone(),
                    file: settings.peers_file.clone(),
                    me: me_addr,
                },
                members_tx,
                readiness.clone(),
                metrics.clone(),
                shutdown_rx.clone(),
            ));
        }
    }
    let api_ctx = Arc::new(ApiCtx {
        cmd_tx: cmd_tx.clone(),
        token: settings.api_token.clone(),
        shutting_down: shutting_down.clone(),
        refused_shutting_down: metrics
            .events
            .publish_refused
            .with_label_values(&["shutting_down"]),
    });
    let api_task = tokio::spawn(http::serve(
        api_listener,
        move |req| api::handle(req, api_ctx.clone()),
        ServerLimits::default(),
        // Up through the drain, so a publish then gets 503 and the status
        // says shutting_down, rather than a refused connection.
        metrics_stop_rx.clone(),
        settings.shutdown_grace,
    ));
    let (m, r) = (metrics.clone(), readiness.clone());
    let metrics_task = tokio::spawn(http::serve(
        metrics_listener,
        move |req| metrics_server::handle(req, m.clone(), r.clone()),
        ServerLimits {
            max_connections: 64,
            ..ServerLimits::default()
        },
        metrics_stop_rx,
        std::time::Duration::from_secs(1),
    ));
    let webhook_task = tokio::spawn(webhook::run(
        WebhookConfig {
            url: settings.webhook_url.clone(),
            probe_path: settings.webhook_probe_path.clone(),
            timeout: settings.webhook_timeout,
            retry_budget: settings.webhook_retry_budget,
        },
        origin,
        cmd_tx,
        notify,
        metrics.clone(),
        clock,
        health,
    ));

    readiness.listeners_up.store(true, Ordering::Relaxed);
    // Listening before anyone can learn we are up (the ready file, the log
    // line): a SIGTERM sent the moment after is then a graceful stop.
    let mut signals = crate::shutdown::Signals::listen();
    if let Some(path) = &settings.ready_file {
        let ready = ReadyFile {
            node: &settings.node_name,
            pid: std::process::id(),
            peer_id: me.to_string(),
            origin: origin.to_string(),
            gossip: gossip_addr,
            advertise: me_addr,
            api: api_addr,
            metrics: metrics_addr,
        };
        write_atomically(path, &serde_json::to_vec(&ready)?)
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    tracing::info!(
        node = %settings.node_name,
        peer_id = %me,
        %origin,
        gossip = %gossip_addr,
        advertise = %me_addr,
        api = %api_addr,
        metrics = %metrics_addr,
        webhook = %settings.webhook_url,
        "hearsay is running"
    );

    let signal = signals.recv().await;
    tracing::info!(signal, grace = ?settings.shutdown_grace, "stopping: no new publishes; sending and delivering what is queued");
    shutting_down.store(true, Ordering::Relaxed);
    readiness.listeners_up.store(false, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let limit = settings.shutdown_grace + std::time::Duration::from_secs(2);
    if tokio::time::timeout(limit, owner_task).await.is_err() {
        tracing::warn!("the owner task did not finish within the grace period");
    }
    webhook_task.abort();
    let _ = metrics_stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), api_task).await;
    let _ = metrics_task.await;
    tracing::info!("stopped");
    Ok(())
}

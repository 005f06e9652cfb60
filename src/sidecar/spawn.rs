//! Spawning a sidecar's tasks, and draining them at shutdown.

use crate::api::{self, ApiCtx};
use crate::delivery::cloudevents::Encoder;
use crate::delivery::stream::Hub;
use crate::delivery::stream::worker::StreamWorker;
use crate::delivery::webhook::{self, WebhookConfig};
use crate::discovery::static_peers::{self, StaticDiscovery};
use crate::discovery::{Publisher, kubernetes};
use crate::gossip::PeerSet;
use crate::http::{self, ServerLimits};
use crate::metrics::Metrics;
use crate::metrics::server::{self as metrics_server, Readiness};
use crate::settings::Settings;
use crate::transport::frame::ReadLimits;
use crate::transport::keyring::SharedKeyring;
use crate::transport::listener::{self, InboundFrame, ListenerCtx};
use crate::transport::reload;
use crate::transport::replay::ReplayGuard;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use super::build::{Bound, Identity, build_owner};
use super::owner::{self, OutletKind};
use crate::clock::Clock;

/// A gossip connection that carries nothing this long is closed (peers send
/// an anti-entropy digest every second; writers close idle connections
/// after two minutes).
pub(super) const GOSSIP_IDLE: std::time::Duration = std::time::Duration::from_secs(300);
/// Once a frame has started, the rest of it must arrive within this.
pub(super) const GOSSIP_FRAME_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The tasks that run until shutdown, and what stops them.
pub(super) struct Running {
    pub(super) owner: tokio::task::JoinHandle<()>,
    pub(super) api: tokio::task::JoinHandle<()>,
    pub(super) metrics_server: tokio::task::JoinHandle<()>,
    /// The delivery workers: the webhook's, the streams'.
    pub(super) workers: Vec<tokio::task::JoinHandle<()>>,
    pub(super) hub: Option<Arc<Hub>>,
    pub(super) readiness: Arc<Readiness>,
    pub(super) shutting_down: Arc<AtomicBool>,
    pub(super) shutdown_tx: watch::Sender<bool>,
    pub(super) servers_stop_tx: watch::Sender<bool>,
}

/// The channels between the tasks.
pub(super) struct Wiring {
    pub(super) members_tx: watch::Sender<Arc<PeerSet>>,
    pub(super) members_rx: watch::Receiver<Arc<PeerSet>>,
    pub(super) cmd_tx: mpsc::Sender<crate::commands::Command>,
    pub(super) shutdown_rx: watch::Receiver<bool>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) keys: SharedKeyring,
    /// Authentication failures by peer address, seen by the listener and
    /// reported by the writer's peers list.
    pub(super) auth: Arc<crate::transport::auth_watch::AuthWatch>,
}

/// Builds the core, the transport and the delivery, and spawns every task.
pub(super) fn spawn(
    settings: &Settings,
    bound: Bound,
    id: Identity,
    keys: SharedKeyring,
) -> Running {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (servers_stop_tx, servers_stop_rx) = watch::channel(false);
    let (members_tx, members_rx) = watch::channel(Arc::new(PeerSet::default()));
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (frames_tx, frames_rx) = mpsc::channel(1024);
    let w = Wiring {
        members_tx,
        members_rx,
        cmd_tx,
        shutdown_rx,
        metrics: Arc::new(Metrics::new()),
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
    let outlets: Vec<(OutletKind, Arc<Notify>)> = owner
        .outlets
        .iter()
        .map(|o| (o.kind, o.notify.clone()))
        .collect();
    let hub = settings.delivery.streams().then(|| {
        Arc::new(Hub::new(
            settings.streams.clone(),
            Encoder::new(id.origin),
            w.metrics.clone(),
        ))
    });
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
    let readiness = Arc::new(Readiness::new(spawn_discovery(settings, id, &w)));
    let shutting_down = Arc::new(AtomicBool::new(false));
    let (api, metrics_server) = spawn_servers(
        settings,
        bound.api,
        bound.metrics,
        &w,
        (&shutting_down, &readiness),
        (hub.clone(), clock),
        servers_stop_rx,
    );
    let mut workers = Vec::new();
    for (outlet, (kind, notify)) in outlets.into_iter().enumerate() {
        let task = match (kind, &hub) {
            (OutletKind::Webhook, _) => tokio::spawn(webhook::run(
                WebhookConfig {
                    url: settings.webhook_url.clone(),
                    probe_path: settings.webhook_probe_path.clone(),
                    timeout: settings.webhook_timeout,
                    retry_budget: settings.webhook_retry_budget,
                    outlet,
                },
                origin,
                w.cmd_tx.clone(),
                notify,
                w.metrics.clone(),
                clock,
                health.clone(),
            )),
            (OutletKind::Streams, Some(hub)) => tokio::spawn(
                StreamWorker {
                    hub: hub.clone(),
                    outlet,
                    cmd_tx: w.cmd_tx.clone(),
                    notify,
                    clock,
                    wait_budget: settings.stream_wait,
                }
                .run(),
            ),
            (OutletKind::Streams, None) => continue,
        };
        workers.push(task);
    }
    readiness.listeners_up.store(true, Ordering::Relaxed);
    Running {
        owner: owner_task,
        api,
        metrics_server,
        workers,
        hub,
        readiness,
        shutting_down,
        shutdown_tx,
        servers_stop_tx,
    }
}

/// The gossip listener: authenticates inbound frames and hands them to
/// the owner.
pub(super) fn spawn_listener(
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
            peer_timeout: settings.peer_timeout,
            metrics: w.metrics.clone(),
            auth: w.auth.clone(),
        }),
        frames_tx,
        w.shutdown_rx.clone(),
    ));
}

/// Discovery, publishing peer sets to the owner and the transport; the
/// receiver says when it has listed its peers once.
pub(super) fn spawn_discovery(
    settings: &Settings,
    id: Identity,
    w: &Wiring,
) -> watch::Receiver<bool> {
    let (out, listed) = Publisher::new(w.members_tx.clone());
    let (metrics, stop) = (w.metrics.clone(), w.shutdown_rx.clone());
    match id.kube {
        Some(d) => tokio::spawn(kubernetes::run(d, out, metrics, stop)),
        None => tokio::spawn(static_peers::run(
            StaticDiscovery {
                entries: settings.peers.clone(),
                file: settings.peers_file.clone(),
                me: id.me_addr,
            },
            out,
            metrics,
            stop,
        )),
    };
    listed
}

/// The local API and the metrics server. Both stay up through the drain,
/// so a publish then gets 503 and the status says shutting_down, rather
/// than a refused connection.
pub(super) fn spawn_servers(
    settings: &Settings,
    api_listener: TcpListener,
    metrics_listener: TcpListener,
    w: &Wiring,
    (shutting_down, readiness): (&Arc<AtomicBool>, &Arc<Readiness>),
    (streams, clock): (Option<Arc<Hub>>, Clock),
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
        streams,
        clock,
        waits: w.metrics.confirm.waits.clone(),
    });
    let api = tokio::spawn(http::serve(
        api_listener,
        move |req| api::handle(req, api_ctx.clone()),
        ServerLimits::default(),
        stop.clone(),
        settings.shutdown_grace,
    ));
    let (m, r, sync) = (w.metrics.clone(), readiness.clone(), w.cmd_tx.clone());
    let metrics = tokio::spawn(http::serve(
        metrics_listener,
        move |req| metrics_server::handle(req, m.clone(), r.clone(), sync.clone()),
        ServerLimits {
            max_connections: 64,
            ..ServerLimits::default()
        },
        stop,
        std::time::Duration::from_secs(1),
    ));
    (api, metrics)
}

impl Running {
    /// Stops taking publishes, lets the owner send and deliver what is
    /// queued within `grace`, then stops the servers.
    pub(super) async fn drain(self, grace: std::time::Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.readiness.listeners_up.store(false, Ordering::Relaxed);
        let _ = self.shutdown_tx.send(true);
        let limit = grace + std::time::Duration::from_secs(2);
        if tokio::time::timeout(limit, self.owner).await.is_err() {
            tracing::warn!("the owner task did not finish within the grace period");
        }
        // The streams end once they have written what they hold.
        if let Some(hub) = &self.hub {
            hub.close();
        }
        for w in &self.workers {
            w.abort();
        }
        let _ = self.servers_stop_tx.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.api).await;
        let _ = self.metrics_server.await;
    }
}

//! The gossip listener: admits connections, then reads, authenticates,
//! checks and forwards frames to the owner task.
//!
//! Admission, unless `--allow-unknown-peers`: a connection must come from
//! the IP of a discovered peer (else it is refused at once and counted),
//! and each frame's claimed sender must be a member at that IP. Frames must
//! be fresh and never seen before (`replay`). Authentication, decoding,
//! replay and slow-sender failures close the connection; every rejection is
//! counted by reason and logged. The number of open connections is bounded.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::frame::{FrameError, ReadLimits, now_ms, read_frame};
use super::keyring::SharedKeyring;
use super::replay::ReplayGuard;
use crate::gossip::{Item, Origin, PeerId, PeerSet};
use crate::metrics::Metrics;

/// How long a frame from a peer this node has not discovered yet waits for
/// discovery to catch up (both sides start at about the same time).
const DISCOVERY_LAG: Duration = Duration::from_secs(2);

/// An admitted frame for the owner task.
#[derive(Debug)]
pub struct InboundFrame {
    pub from: PeerId,
    pub origin: Origin,
    pub len: usize,
    pub items: Vec<Item>,
}

pub struct ListenerCtx {
    pub me: PeerId,
    pub keys: SharedKeyring,
    pub limits: ReadLimits,
    pub members: watch::Receiver<Arc<PeerSet>>,
    pub allow_unknown_peers: bool,
    pub replay: ReplayGuard,
    pub max_connections: usize,
    pub metrics: Arc<Metrics>,
}

pub async fn run(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    frames_tx: mpsc::Sender<InboundFrame>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(ctx.max_connections));
    loop {
        let (stream, remote) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "gossip accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::shutdown::requested(&mut shutdown) => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            ctx.metrics
                .connections
                .with_label_values(&["in", "refused"])
                .inc();
            tracing::warn!(peer = %remote, max = ctx.max_connections, "gossip connection refused: too many open");
            continue;
        };
        tokio::spawn(admit(stream, remote, slot, ctx.clone(), frames_tx.clone()));
    }
}

fn is_member_ip(members: &PeerSet, ip: IpAddr) -> bool {
    members
        .peers()
        .any(|p| p.addr.is_some_and(|a| a.ip() == ip))
}

/// Refuses connections from outside the membership, then reads.
async fn admit(
    stream: TcpStream,
    remote: SocketAddr,
    slot: OwnedSemaphorePermit,
    ctx: Arc<ListenerCtx>,
    frames_tx: mpsc::Sender<InboundFrame>,
) {
    if !ctx.allow_unknown_peers {
        let mut members = ctx.members.clone();
        let known = tokio::time::timeout(DISCOVERY_LAG, async {
            members
                .wait_for(|m| is_member_ip(m, remote.ip()))
                .await
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if !known {
            ctx.metrics
                .connections
                .with_label_values(&["in", "refused"])
                .inc();
            tracing::warn!(peer = %remote, "gossip connection refused: not from a discovered peer");
            return;
        }
    }
    let _ = stream.set_nodelay(true);
    ctx.metrics
        .connections
        .with_label_values(&["in", "opened"])
        .inc();
    read_connection(stream, remote, ctx, frames_tx).await;
    drop(slot);
}

/// The claimed sender's discovered address, waiting a little for discovery
/// if the sender is not known yet. `None`: not a member.
async fn member_addr(ctx: &ListenerCtx, sender: PeerId) -> Option<Option<SocketAddr>> {
    if let Some(p) = ctx.members.borrow().get(sender) {
        return Some(p.addr);
    }
    let mut members = ctx.members.clone();
    let wait = tokio::time::timeout(DISCOVERY_LAG, async {
        let found = members.wait_for(|m| m.contains(sender)).await;
        found.ok().and_then(|m| m.get(sender).map(|p| p.addr))
    });
    wait.await.ok().flatten()
}

fn reject(
    ctx: &ListenerCtx,
    remote: SocketAddr,
    reason: &'static str,
    detail: &dyn std::fmt::Display,
) {
    ctx.metrics
        .frames_rejected
        .with_label_values(&[reason])
        .inc();
    if matches!(reason, "missing_tag" | "bad_tag") {
        ctx.metrics.auth_failures.inc();
    }
    tracing::warn!(peer = %remote, reason, error = %detail, "frame rejected");
}

async fn read_connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    ctx: Arc<ListenerCtx>,
    frames_tx: mpsc::Sender<InboundFrame>,
) {
    let mut pinned: Option<PeerId> = None;
    loop {
        let keys = ctx.keys.current();
        let frame = match read_frame(&mut stream, ctx.limits, &keys, ctx.me).await {
            Ok(Some(f)) => f,
            Ok(None) | Err(FrameError::Closed) | Err(FrameError::Idle(_)) => return,
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                reject(
                    &ctx,
                    remote,
                    "io",
                    &"connection closed in the middle of a frame",
                );
                return;
            }
            Err(e) => {
                reject(&ctx, remote, e.reason(), &e);
                return;
            }
        };
        let h = frame.header;
        let sender = h.sender;
        if sender == ctx.me {
            reject(
                &ctx,
                remote,
                "unknown_peer",
                &"frame claims to come from this node",
            );
            return;
        }
        if let Some(p) = pinned
            && p != sender
        {
            reject(
                &ctx,
                remote,
                "unknown_peer",
                &"sender changed on one connection",
            );
            return;
        }
        pinned = Some(sender);
        if !ctx.allow_unknown_peers {
            match member_addr(&ctx, sender).await {
                None => {
                    // Drop this frame (anti-entropy repairs what a real
                    // peer lost) but keep listening: discovery may still
                    // catch up.
                    reject(
                        &ctx,
                        remote,
                        "unknown_peer",
                        &format_args!("peer {sender} is not a member"),
                    );
                    continue;
                }
                Some(Some(addr)) if addr.ip() != remote.ip() => {
                    reject(
                        &ctx,
                        remote,
                        "address_mismatch",
                        &format_args!("peer {sender} is at {addr}, not {remote}"),
                    );
                    return;
                }
                Some(_) => {}
            }
        }
        if let Err(r) =
            ctx.replay
                .check(sender, h.sender_origin, h.frame_seq, h.sent_at_ms, now_ms())
        {
            reject(
                &ctx,
                remote,
                r.reason(),
                &format_args!(
                    "frame {} from {sender} sent at {} ms",
                    h.frame_seq, h.sent_at_ms
                ),
            );
            return;
        }
        ctx.metrics.frames.with_label_values(&["in"]).inc();
        ctx.metrics
            .bytes
            .with_label_values(&["in"])
            .inc_by(frame.len as u64);
        let inbound = InboundFrame {
            from: sender,
            origin: h.sender_origin,
            len: frame.len,
            items: frame.items,
        };
        if frames_tx.send(inbound).await.is_err() {
            return;
        }
    }
}

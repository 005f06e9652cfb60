//! The gossip listener: one reader task per inbound connection. A frame is
//! read (bounded), authenticated, decoded and admitted, then handed to the
//! owner task. Admission: the claimed sender must be a discovered peer, and
//! the connection must come from that peer's IP, unless configured
//! otherwise. Authentication and decoding failures close the connection;
//! every rejection is counted by reason and logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::frame::{FrameError, read_frame};
use super::keyring::SharedKeyring;
use crate::gossip::{Item, Origin, PeerId, PeerSet};
use crate::metrics::Metrics;

/// How long a frame from a peer this node has not discovered yet waits for
/// discovery to catch up (both sides start at about the same time).
const DISCOVERY_LAG: Duration = Duration::from_secs(2);

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
    pub max_frame: usize,
    pub members: watch::Receiver<Arc<PeerSet>>,
    pub allow_unknown_peers: bool,
    pub metrics: Arc<Metrics>,
}

pub async fn run(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    frames_tx: mpsc::Sender<InboundFrame>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, remote) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "gossip accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::shutdown::requested(&mut shutdown) => return,
        };
        let _ = stream.set_nodelay(true);
        ctx.metrics
            .connections
            .with_label_values(&["in", "opened"])
            .inc();
        tokio::spawn(read_connection(
            stream,
            remote,
            ctx.clone(),
            frames_tx.clone(),
        ));
    }
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
        let frame = match read_frame(&mut stream, ctx.max_frame, &keys).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(FrameError::Closed) => return,
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
        let sender = frame.header.sender;
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
        ctx.metrics.frames.with_label_values(&["in"]).inc();
        ctx.metrics
            .bytes
            .with_label_values(&["in"])
            .inc_by(frame.len as u64);
        let inbound = InboundFrame {
            from: sender,
            origin: frame.header.sender_origin,
            len: frame.len,
            items: frame.items,
        };
        if frames_tx.send(inbound).await.is_err() {
            return;
        }
    }
}

//! The gossip listener: admits connections, then reads, authenticates,
//! checks and forwards frames to the owner task.
//!
//! Admission, unless `--allow-unknown-peers`: a connection must come from
//! the IP of a discovered peer (else it is refused at once and counted),
//! and each frame's claimed sender must be a member at that IP. Frames must
//! be fresh and never seen before (`replay`). Authentication, decoding,
//! replay and slow-sender failures close the connection; every rejection is
//! counted by reason and logged.
//!
//! An admitted connection first gets this node's hello (`hello`), then has
//! [`HANDSHAKE_DEADLINE`] to send an authentic frame, or it is closed and
//! counted (`connections_total{direction="in",outcome="handshake_timeout"}`).
//! Until then it holds a pending slot, after that an authenticated one
//! (`slots`), so idle connections cannot keep a peer out.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::frame::{FrameError, Me, ReadLimits, ReceivedFrame, now_ms, read_frame};
use super::hello::{self, Hello};
use super::keyring::SharedKeyring;
use super::replay::{FrameStamp, ReplayGuard};
use super::slots::{Closed, Slots, Ticket};
use crate::gossip::{Item, Origin, PeerId, PeerSet};
use crate::metrics::{ConnOutcome, Direction, Metrics};

/// How long a frame from a peer this node has not discovered yet waits for
/// discovery to catch up (both sides start at about the same time).
const DISCOVERY_LAG: Duration = Duration::from_secs(2);
/// Bytes read from a gossip connection at once: a few frames of one event.
const READ_BUFFER: usize = 8 * 1024;

/// How long an admitted connection may take to send its first authentic
/// frame. A sender writes as soon as it connects, so an honest peer needs
/// a round trip (plus discovery lag on a fresh start).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

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
    /// This incarnation, announced in the hello; bound frames must name it.
    pub origin: Origin,
    pub keys: SharedKeyring,
    pub limits: ReadLimits,
    pub members: watch::Receiver<Arc<PeerSet>>,
    pub allow_unknown_peers: bool,
    pub replay: ReplayGuard,
    pub max_connections: usize,
    /// See `liveness`: set on every admitted connection.
    pub peer_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// Shared with the writers: peers whose authentication fails.
    pub auth: Arc<super::auth_watch::AuthWatch>,
}

pub async fn run(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    frames_tx: mpsc::Sender<InboundFrame>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Slots::new(ctx.max_connections);
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
        let ticket = match slots.admit(remote.ip()) {
            Ok((ticket, evicted)) => {
                if evicted {
                    ctx.metrics
                        .transport
                        .connection(Direction::In, ConnOutcome::Evicted);
                    tracing::warn!(peer = %remote, "unauthenticated gossip connection closed: a newer one from its IP came in");
                }
                ticket
            }
            Err(_) => {
                ctx.metrics
                    .transport
                    .connection(Direction::In, ConnOutcome::Refused);
                tracing::warn!(peer = %remote, max = ctx.max_connections, "gossip connection refused: too many waiting to authenticate");
                continue;
            }
        };
        tokio::spawn(admit(
            stream,
            remote,
            ticket,
            ctx.clone(),
            frames_tx.clone(),
        ));
    }
}

fn is_member_ip(members: &PeerSet, ip: IpAddr) -> bool {
    members
        .peers()
        .any(|p| p.addr.is_some_and(|a| a.ip() == ip))
}

/// Refuses connections from outside the membership, then reads.
async fn admit(
    mut stream: TcpStream,
    remote: SocketAddr,
    mut ticket: Ticket,
    ctx: Arc<ListenerCtx>,
    frames_tx: mpsc::Sender<InboundFrame>,
) {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_DEADLINE;
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
                .transport
                .connection(Direction::In, ConnOutcome::Refused);
            tracing::warn!(peer = %remote, "gossip connection refused: not from a discovered peer");
            return;
        }
    }
    let _ = stream.set_nodelay(true);
    super::liveness::watch(&stream, ctx.peer_timeout);
    ctx.metrics
        .transport
        .connection(Direction::In, ConnOutcome::Opened);
    let me = Hello {
        peer: ctx.me,
        origin: ctx.origin,
        capabilities: hello::CAPABILITIES,
    };
    // A few dozen bytes into an empty socket buffer: this does not wait
    // on the sender (which may be an old version that never reads).
    if stream
        .write_all(&hello::encode(me, &ctx.keys.current()))
        .await
        .is_err()
    {
        return;
    }
    let signal = ticket.signal();
    let outcome = tokio::select! {
        biased;
        why = signal.closed() => Some(why),
        () = read_connection(&mut stream, remote, &ctx, &frames_tx, &mut ticket, deadline) => None,
    };
    match outcome {
        Some(Closed::Evicted) => {}
        Some(Closed::Replaced) => {
            ctx.metrics
                .transport
                .connection(Direction::In, ConnOutcome::Replaced);
            tracing::debug!(peer = %remote, "gossip connection replaced by the same peer's newer one");
        }
        None => {}
    }
    drop(ticket);
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
    ctx.metrics.transport.rejected(reason);
    tracing::warn!(peer = %remote, reason, error = %detail, "frame rejected");
}

async fn read_connection(
    stream: &mut TcpStream,
    remote: SocketAddr,
    ctx: &ListenerCtx,
    frames_tx: &mpsc::Sender<InboundFrame>,
    ticket: &mut Ticket,
    deadline: tokio::time::Instant,
) {
    let mut pinned: Option<PeerId> = None;
    // Buffered: a frame's header, body and tag come in one read, not three.
    let mut stream = tokio::io::BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let Some(frame) = next_frame(&mut stream, remote, ctx, ticket, deadline).await else {
            return;
        };
        let h = frame.header;
        let sender = h.sender;
        match check_sender(ctx, remote, sender, &mut pinned).await {
            Verdict::Admit => {}
            Verdict::Skip => continue,
            Verdict::Close => return,
        }
        let stamp = FrameStamp {
            sender,
            origin: h.sender_origin,
            seq: h.frame_seq,
            sent_at_ms: h.sent_at_ms,
            bound: h.is_bound(),
        };
        if let Err(r) = ctx.replay.check(stamp, now_ms()) {
            let detail = format_args!(
                "frame {} from {sender} sent at {} ms",
                h.frame_seq, h.sent_at_ms
            );
            reject(ctx, remote, r.reason(), &detail);
            return;
        }
        if !ticket.is_authenticated() && ticket.authenticate(sender).is_err() {
            ctx.metrics
                .transport
                .connection(Direction::In, ConnOutcome::Refused);
            tracing::warn!(peer = %remote, max = ctx.max_connections, "gossip connection refused: every slot is held by another peer");
            return;
        }
        ctx.metrics.transport.frame(Direction::In, frame.len);
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

/// The next authentic frame, or `None` when the connection is done: closed,
/// idle, past its handshake deadline, or sending something that fails to
/// decode or authenticate (rejected and counted).
async fn next_frame<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    remote: SocketAddr,
    ctx: &ListenerCtx,
    ticket: &Ticket,
    deadline: tokio::time::Instant,
) -> Option<ReceivedFrame> {
    let me = Me {
        peer: ctx.me,
        origin: ctx.origin,
    };
    let keys = ctx.keys.current();
    let read = read_frame(stream, ctx.limits, &keys, me);
    let read = if ticket.is_authenticated() {
        read.await
    } else if let Ok(r) = tokio::time::timeout_at(deadline, read).await {
        r
    } else {
        ctx.metrics
            .transport
            .connection(Direction::In, ConnOutcome::HandshakeTimeout);
        tracing::warn!(
            peer = %remote,
            within = ?HANDSHAKE_DEADLINE,
            "gossip connection closed: no authentic frame in time"
        );
        return None;
    };
    match read {
        Ok(Some(f)) => Some(f),
        Ok(None) | Err(FrameError::Closed) | Err(FrameError::Idle(_)) => None,
        Err(FrameError::Lost(e)) => {
            ctx.metrics
                .transport
                .connection(Direction::In, ConnOutcome::Lost);
            tracing::debug!(peer = %remote, error = %e, "gossip connection lost");
            None
        }
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            let detail = "connection closed in the middle of a frame";
            reject(ctx, remote, "io", &detail);
            None
        }
        Err(e) => {
            // A frame that claims a member at this address and fails its
            // tag: that peer's key differs (or someone on its IP forges),
            // either way worth showing.
            if let Some(claimed) = e.claimed_sender()
                && ctx
                    .members
                    .borrow()
                    .get(claimed)
                    .and_then(|p| p.addr)
                    .is_some_and(|a| a.ip() == remote.ip())
            {
                ctx.auth.failed(claimed);
            }
            reject(ctx, remote, e.reason(), &e);
            None
        }
    }
}

/// What to do with an authentic frame, by who claims to have sent it.
enum Verdict {
    Admit,
    /// Drop this frame but keep the connection.
    Skip,
    Close,
}

/// A frame's sender must not be this node, must stay the same on one
/// connection, and (unless unknown peers are allowed) must be a member at
/// the connection's IP.
async fn check_sender(
    ctx: &ListenerCtx,
    remote: SocketAddr,
    sender: PeerId,
    pinned: &mut Option<PeerId>,
) -> Verdict {
    if sender == ctx.me {
        reject(
            ctx,
            remote,
            "unknown_peer",
            &"frame claims to come from this node",
        );
        return Verdict::Close;
    }
    if pinned.is_some_and(|p| p != sender) {
        reject(
            ctx,
            remote,
            "unknown_peer",
            &"sender changed on one connection",
        );
        return Verdict::Close;
    }
    *pinned = Some(sender);
    if ctx.allow_unknown_peers {
        return Verdict::Admit;
    }
    match member_addr(ctx, sender).await {
        None => {
            // Drop this frame (anti-entropy repairs what a real peer lost)
            // but keep listening: discovery may still catch up.
            let detail = format_args!("peer {sender} is not a member");
            reject(ctx, remote, "unknown_peer", &detail);
            Verdict::Skip
        }
        Some(Some(addr)) if addr.ip() != remote.ip() => {
            let detail = format_args!("peer {sender} is at {addr}, not {remote}");
            reject(ctx, remote, "address_mismatch", &detail);
            Verdict::Close
        }
        Some(_) => Verdict::Admit,
    }
}

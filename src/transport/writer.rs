//! One writer task per peer: a persistent outbound connection, fed by a
//! bounded queue. When it wakes it takes everything queued and sends it as
//! one frame (split only at the frame size bound). A dead peer only ever
//! fills its own queue; it never blocks the others.
//!
//! Right after connecting it reads the receiver's hello (`hello`) and binds
//! every frame on that connection to the incarnation it names. A receiver
//! that says nothing within [`HELLO_WAIT`] is a version from before the
//! hello: frames to it are sealed unbound, as that version expects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::faults::Faults;
use super::frame::{Seal, now_ms, seal_frame};
use super::hello::{self, HelloError};
use super::keyring::SharedKeyring;
use super::liveness;
use crate::gossip::codec::{self, HEADER_LEN, TAG_LEN};
use crate::gossip::{Item, Origin, PeerId};
use crate::metrics::{ConnOutcome, Direction, DropReason, Metrics};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection with nothing to send for this long is closed (its task
/// ends; the next send opens a new one).
const IDLE_CLOSE: Duration = Duration::from_secs(120);
/// How long a new connection waits for the receiver's hello.
pub const HELLO_WAIT: Duration = Duration::from_millis(500);

/// What every writer shares.
pub struct WriterCtx {
    pub me: PeerId,
    pub origin: Origin,
    pub keys: SharedKeyring,
    pub frame_seq: AtomicU64,
    pub max_frame: usize,
    pub metrics: Arc<Metrics>,
    /// Connect from this address (the pod IP peers admit us by), not
    /// whatever source the kernel would pick.
    pub bind_ip: Option<std::net::IpAddr>,
    /// Injected faults (tests and experiments only).
    pub faults: Option<Arc<Faults>>,
    /// Shared with the listener: peers whose authentication fails.
    pub auth: Arc<super::auth_watch::AuthWatch>,
    /// A connection whose peer stops acknowledging this long is given up
    /// (`liveness`).
    pub peer_timeout: Duration,
}

/// Where a writer's connection stands, for `/v1/peers`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    Connecting = 0,
    Up = 1,
    Down = 2,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Up => "up",
            ConnState::Down => "down",
        }
    }
}

/// A [`ConnState`] shared between a writer task and its handle.
#[derive(Clone, Default)]
struct SharedState(Arc<AtomicU8>);

impl SharedState {
    fn set(&self, state: ConnState) {
        self.0.store(state as u8, Ordering::Relaxed);
    }

    fn get(&self) -> ConnState {
        match self.0.load(Ordering::Relaxed) {
            1 => ConnState::Up,
            2 => ConnState::Down,
            _ => ConnState::Connecting,
        }
    }
}

pub struct PeerWriter {
    tx: mpsc::Sender<Vec<Item>>,
    state: SharedState,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

/// Why a send did not go into a writer's queue.
#[derive(Debug, PartialEq, Eq)]
pub enum SendRefused {
    QueueFull,
    Closed,
}

impl PeerWriter {
    pub fn spawn(ctx: Arc<WriterCtx>, to: PeerId, addr: SocketAddr, capacity: usize) -> PeerWriter {
        let (tx, rx) = mpsc::channel(capacity);
        let state = SharedState::default();
        let task = tokio::spawn(run(ctx, to, addr, rx, state.clone()));
        PeerWriter {
            tx,
            state,
            addr,
            task,
        }
    }

    pub fn try_send(&self, items: Vec<Item>) -> Result<(), SendRefused> {
        self.tx.try_send(items).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendRefused::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SendRefused::Closed,
        })
    }

    pub fn state(&self) -> ConnState {
        self.state.get()
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops taking sends; the task sends what is queued, then ends.
    pub fn close(self) -> JoinHandle<()> {
        drop(self.tx);
        self.task
    }
}

async fn run(
    ctx: Arc<WriterCtx>,
    to: PeerId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Vec<Item>>,
    state: SharedState,
) {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let mut delays = backoff.build();
    let mut pending: Vec<Item> = Vec::new();
    loop {
        if pending.is_empty() {
            match tokio::time::timeout(IDLE_CLOSE, rx.recv()).await {
                Ok(Some(items)) => pending = items,
                Ok(None) | Err(_) => return,
            }
        }
        state.set(ConnState::Connecting);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect(addr, ctx.bind_ip)).await {
            Ok(Ok(s)) => s,
            result => {
                let error = match result {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                ctx.metrics
                    .transport
                    .connection(Direction::Out, ConnOutcome::Failed);
                state.set(ConnState::Down);
                tracing::debug!(peer = %addr, %error, "connect failed");
                if rx.is_closed() {
                    // The peer left the membership: give up what is held.
                    ctx.metrics.transport.send_dropped(DropReason::WriteFailed);
                    return;
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        delays = backoff.build();
        let conn = Connection {
            ctx: &ctx,
            to,
            addr,
            state: &state,
        };
        if conn.serve(stream, &mut rx, &mut pending).await == Served::Done {
            return;
        }
    }
}

/// How a connection ended.
#[derive(PartialEq, Eq)]
enum Served {
    /// The queue closed or stayed idle: the writer ends.
    Done,
    /// A write failed: reconnect and send what is pending.
    Broken,
}

/// One open connection of a writer.
struct Connection<'a> {
    ctx: &'a WriterCtx,
    to: PeerId,
    addr: SocketAddr,
    state: &'a SharedState,
}

impl Connection<'_> {
    /// Reads the receiver's hello, then sends everything queued as it
    /// comes, until the queue ends or a write fails (`pending` then holds
    /// what did not go out).
    async fn serve(
        &self,
        mut stream: TcpStream,
        rx: &mut mpsc::Receiver<Vec<Item>>,
        pending: &mut Vec<Item>,
    ) -> Served {
        let ctx = self.ctx;
        let _ = stream.set_nodelay(true);
        liveness::watch(&stream, ctx.peer_timeout);
        ctx.metrics
            .transport
            .connection(Direction::Out, ConnOutcome::Opened);
        let (hello, mut late) = match read_hello(ctx, self.to, self.addr, &mut stream).await {
            Heard::Hello(h) => (Some(h), None),
            // It may still come (the receiver waits until discovery lists
            // this node): frames go out unbound meanwhile.
            Heard::Nothing => (None, Some(Vec::new())),
            Heard::Untrusted => (None, None),
        };
        let mut dest = Dest {
            peer: self.to,
            origin: hello.filter(|h| h.binds()).map(|h| h.origin),
            confirms: hello.is_some_and(|h| h.confirms()),
        };
        self.state.set(ConnState::Up);
        let mut buf = Vec::new();
        let hello_len = hello::wire_len(&ctx.keys.current());
        loop {
            if pending.is_empty() {
                let next = tokio::select! {
                    next = tokio::time::timeout(IDLE_CLOSE, rx.recv()) => next,
                    seen = watch(&mut stream, &mut late, hello_len) => match seen {
                        Watched::Closed(e) => return self.lost(&e),
                        Watched::Hello(bytes) => {
                            self.late_hello(&bytes, &mut dest);
                            continue;
                        }
                    },
                };
                match next {
                    Ok(Some(items)) => *pending = items,
                    Ok(None) | Err(_) => {
                        let _ = stream.shutdown().await;
                        return Served::Done;
                    }
                }
            }
            // Whatever accumulated while the last write was going out.
            while let Ok(more) = rx.try_recv() {
                pending.extend(more);
            }
            match write_all_frames(ctx, dest, &mut stream, pending, &mut buf).await {
                Ok(()) => pending.clear(),
                Err(e) => return self.lost(&e),
            }
        }
    }

    /// A hello that came after the wait: from now on frames are bound and
    /// carry confirmations as it says.
    fn late_hello(&self, bytes: &[u8], dest: &mut Dest) {
        match hello::decode(bytes, &self.ctx.keys.current()) {
            Ok(h) if h.peer == self.to => {
                tracing::debug!(peer = %self.addr, "the peer's hello came late");
                dest.origin = h.binds().then_some(h.origin);
                dest.confirms = h.confirms();
            }
            _ => {}
        }
    }

    /// The connection broke (a write failed, or the peer or the kernel
    /// closed it): what is pending goes out on the next one.
    fn lost(&self, e: &std::io::Error) -> Served {
        tracing::debug!(peer = %self.addr, error = %e, "gossip connection lost; reconnecting");
        self.ctx
            .metrics
            .transport
            .connection(Direction::Out, ConnOutcome::Lost);
        self.state.set(ConnState::Down);
        Served::Broken
    }
}

async fn connect(
    addr: SocketAddr,
    bind_ip: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(ip) = bind_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

/// What the receiver said first.
enum Heard {
    Hello(hello::Hello),
    /// Nothing within the wait: a receiver from before the hello, or one
    /// that has not admitted this connection yet.
    Nothing,
    /// A hello that cannot be trusted: its frames would fail there anyway
    /// (logged and counted).
    Untrusted,
}

async fn read_hello(
    ctx: &WriterCtx,
    to: PeerId,
    addr: SocketAddr,
    stream: &mut TcpStream,
) -> Heard {
    let keys = ctx.keys.current();
    match hello::read(stream, &keys, HELLO_WAIT).await {
        Ok(h) if h.peer == to => Heard::Hello(h),
        Ok(h) => {
            ctx.metrics
                .transport
                .connection(Direction::Out, ConnOutcome::BadHello);
            tracing::warn!(peer = %addr, expected = %to, got = %h.peer, "the peer at this address says it is another node; frames to it will be refused there");
            Heard::Untrusted
        }
        Err(HelloError::Timeout(_)) => Heard::Nothing,
        Err(e) => {
            if matches!(e, HelloError::Auth(_)) {
                ctx.auth.failed(to);
            }
            ctx.metrics
                .transport
                .connection(Direction::Out, ConnOutcome::BadHello);
            tracing::warn!(peer = %addr, error = %e, "the peer's hello failed; check that both use the same gossip key");
            Heard::Untrusted
        }
    }
}

/// What the receiving side sent on a connection this node writes to.
enum Watched {
    /// It closed, or the kernel gave it up.
    Closed(std::io::Error),
    /// The bytes of a hello that came after the wait.
    Hello(Vec<u8>),
}

/// Reads what the receiver sends while frames go out: a late hello (while
/// `late` collects one), else nothing it sends matters but the end of the
/// connection. Cancel-safe: what was read stays in `late`.
async fn watch(stream: &mut TcpStream, late: &mut Option<Vec<u8>>, hello_len: usize) -> Watched {
    if late.is_none() {
        return Watched::Closed(liveness::closed(stream).await);
    }
    let mut sink = [0u8; 256];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) => return Watched::Closed(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                if let Some(buf) = late.as_mut() {
                    buf.extend_from_slice(&sink[..n]);
                    if buf.len() >= hello_len {
                        let mut bytes = late.take().unwrap_or_default();
                        bytes.truncate(hello_len);
                        return Watched::Hello(bytes);
                    }
                }
            }
            Err(e) => return Watched::Closed(e),
        }
    }
}

/// Where a frame goes: the peer, its incarnation (bound frames), and
/// whether it decodes confirmation items.
#[derive(Copy, Clone)]
struct Dest {
    peer: PeerId,
    origin: Option<Origin>,
    confirms: bool,
}

/// Writes `items` as few frames as the frame bound allows.
async fn write_all_frames(
    ctx: &WriterCtx,
    dest: Dest,
    stream: &mut TcpStream,
    items: &[Item],
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let keys = ctx.keys.current();
    let budget = ctx.max_frame.saturating_sub(HEADER_LEN + TAG_LEN);
    // A peer from before confirmations would refuse the whole frame.
    let kept: Vec<Item>;
    let items = if !dest.confirms && items.iter().any(Item::is_confirmation) {
        kept = items
            .iter()
            .filter(|i| {
                let drop = i.is_confirmation();
                if drop {
                    ctx.metrics.transport.send_dropped(DropReason::Unsupported);
                }
                !drop
            })
            .cloned()
            .collect();
        &kept[..]
    } else {
        items
    };
    let mut start = 0;
    while start < items.len() {
        let mut size = 0;
        let mut end = start;
        while end < items.len() {
            let len = codec::item_len(&items[end]);
            if size + len > budget && end > start {
                break;
            }
            size += len;
            end += 1;
        }
        if size > budget {
            // One item alone exceeds the bound: it cannot go out at all.
            ctx.metrics.transport.send_dropped(DropReason::TooLarge);
            tracing::warn!(
                bytes = size,
                max = budget,
                "item exceeds the frame bound; dropped"
            );
            start = end;
            continue;
        }
        let seal = Seal {
            receiver: dest.peer,
            receiver_origin: dest.origin,
            sender: ctx.me,
            origin: ctx.origin,
            frame_seq: ctx.frame_seq.fetch_add(1, Ordering::Relaxed),
            sent_at_ms: now_ms(),
        };
        seal_frame(seal, &items[start..end], &keys, buf);
        if ctx.faults.as_ref().is_some_and(|f| f.should_drop()) {
            ctx.metrics.transport.send_dropped(DropReason::Fault);
            start = end;
            continue;
        }
        stream.write_all(buf).await?;
        ctx.metrics.transport.frame(Direction::Out, buf.len());
        start = end;
    }
    Ok(())
}

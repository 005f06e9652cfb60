//! Noticing a peer that is gone without a word. When a peer's network
//! vanishes (a black hole: no reset, no ICMP) TCP keeps retransmitting for
//! about 15 minutes (`tcp_retries2`) while a writer goes on "sending" into
//! its socket buffer, and an idle connection never learns anything at all.
//! So every gossip connection, both ends, gets `TCP_USER_TIMEOUT` (data
//! left unacknowledged this long aborts the connection) and keepalive
//! probes (an idle connection whose peer stops answering is aborted the
//! same way), both from `--peer-timeout`. A writer also watches its socket
//! while it has nothing to send ([`closed`]), so a connection aborted or
//! closed under it is noticed at once, not at its next send.
//!
//! A peer frozen (SIGSTOP, a stalled VM) is not gone: its kernel still
//! acknowledges, so its connections stay up and what it missed is
//! repaired by anti-entropy once it runs again.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Sets the peer timeout and keepalive on `stream` (logged if the kernel
/// refuses: the connection still works, it is only noticed later).
pub fn watch(stream: &TcpStream, timeout: Duration) {
    let sock = SockRef::from(stream);
    // Keepalive counts in whole seconds: the first probe after half the
    // timeout of silence, then a few more before it runs out.
    let secs = timeout.as_secs().max(2);
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(secs / 2))
        .with_interval(Duration::from_secs((secs / 5).max(1)))
        .with_retries(5);
    let result = sock
        .set_tcp_keepalive(&keepalive)
        .and_then(|()| sock.set_tcp_user_timeout(Some(timeout)));
    if let Err(e) = result {
        tracing::debug!(error = %e, "cannot set the peer timeout on a gossip connection");
    }
}

/// Resolves when the connection is closed by the peer or given up by the
/// kernel: the receiving end of a gossip connection sends nothing after
/// its hello, so anything read is discarded.
pub async fn closed(stream: &mut TcpStream) -> std::io::Error {
    let mut sink = [0u8; 256];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) => return std::io::ErrorKind::UnexpectedEof.into(),
            Ok(_) => continue,
            Err(e) => return e,
        }
    }
}

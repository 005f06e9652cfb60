//! What a connection must do before it counts: send an authentic frame
//! within the handshake deadline (idle connections cannot keep peers out),
//! and seal its frames for the receiver's current incarnation (a frame
//! captured before the receiver restarted is refused after).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hearsay::demo::cluster::{LocalCluster, NodeSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

async fn connections(c: &LocalCluster, i: usize, outcome: &str) -> f64 {
    c.metric(
        i,
        &format!("hearsay_connections_total{{direction=\"in\",outcome=\"{outcome}\"}}"),
    )
    .await
    .unwrap()
}

/// Reads until the other end closes (`true`) or `within` passes.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(within, s.read_to_end(&mut sink)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_keep_a_restarted_peer_out() {
    let settings = test_dir("handshake-slots-settings").join("hearsay.toml");
    std::fs::write(&settings, "max_gossip_connections = 16\n").unwrap();
    let settings = settings.display().to_string();
    let (mut c, recv) = cluster("handshake-slots", 2, &["--config", &settings]).await;
    let target = c.node(1).unwrap().ready.gossip;
    // More idle connections from a member IP than node 1 has slots (16):
    // before the handshake deadline they held every slot for 300 s.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(target).await.unwrap());
    }
    // Node 0 comes back as a new incarnation and must connect afresh.
    c.terminate(0, WAIT).await.unwrap();
    c.restart(0).await.unwrap();
    c.wait_all_see_all(WAIT).await.unwrap();
    let id = publish(&c, 0, "after-restart").await;
    eventually(WAIT, "the restarted peer's event arrives", || async {
        count(&recv[1], &id) == 1
    })
    .await;
    assert_eq!(
        connections(&c, 1, "refused").await,
        0.0,
        "no peer was refused a slot"
    );
    // At most 8 idle ones wait per IP; the rest were pushed out at once,
    // and the last are closed by the deadline.
    assert!(connections(&c, 1, "evicted").await >= 32.0);
    let mut still_open = 0;
    for s in &mut idle {
        if !closed_within(s, Duration::from_secs(8)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "every idle connection was closed");
    assert!(connections(&c, 1, "handshake_timeout").await >= 1.0);
    // And the restarted peer's connection was not among them.
    let id = publish(&c, 0, "later").await;
    eventually(WAIT, "and later ones", || async {
        count(&recv[1], &id) == 1
    })
    .await;
    finish(c).await;
}

/// A TCP proxy in front of a node that keeps what its clients sent.
struct Capture {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Capture {
    async fn start() -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(addr));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (t, s) = (target.clone(), sent.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let to = *t.lock().unwrap();
                let sent = s.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    let slot = {
                        let mut all = sent.lock().unwrap();
                        all.push(Vec::new());
                        all.len() - 1
                    };
                    let up = async {
                        let mut buf = [0u8; 8192];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            sent.lock().unwrap()[slot].extend_from_slice(&buf[..n]);
                        }
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut ur, &mut cw).await;
                    };
                    // Either side ending ends both, as a dead node would.
                    tokio::select! {
                        () = up => {}
                        () = down => {}
                    }
                });
            }
        });
        Capture {
            addr,
            target,
            sent,
            task,
        }
    }

    fn point_at(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = to;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_captured_before_the_receiver_restarted_is_refused_after() {
    let recv = receivers(2).await;
    let capture = Capture::start().await;
    let mut c = LocalCluster::new(options("handshake-replay", &[])).unwrap();
    c.add(NodeSpec {
        webhook_url: recv[0].url(),
        ..NodeSpec::default()
    })
    .await
    .unwrap();
    // Node 1 is known by the proxy's address; everything node 0 sends it
    // goes through the proxy, which keeps a copy.
    c.add(NodeSpec {
        webhook_url: recv[1].url(),
        advertise: Some(capture.addr),
        ..NodeSpec::default()
    })
    .await
    .unwrap();
    capture.point_at(c.node(1).unwrap().ready.gossip);
    c.wait_all_see_all(WAIT).await.unwrap();
    let id = publish(&c, 0, "captured").await;
    eventually(WAIT, "delivered through the proxy", || async {
        count(&recv[1], &id) == 1
    })
    .await;
    let captured: Vec<Vec<u8>> = capture.sent.lock().unwrap().clone();
    assert!(
        captured.iter().any(|b| !b.is_empty()),
        "frames were captured"
    );

    // Node 1 restarts under the same identity (same advertised address).
    c.terminate(1, WAIT).await.unwrap();
    c.restart(1).await.unwrap();
    let node1 = c.node(1).unwrap().ready.gossip;
    capture.point_at(node1);
    c.wait_all_see_all(WAIT).await.unwrap();
    let received = c.metric(1, "hearsay_events_received_total").await.unwrap();
    let bad_tag = c
        .metric(1, "hearsay_frames_rejected_total{reason=\"bad_tag\"}")
        .await
        .unwrap();
    // The attacker replays every captured stream to the new incarnation,
    // from the member's IP.
    for bytes in captured.iter().filter(|b| !b.is_empty()) {
        let mut s = TcpStream::connect(node1).await.unwrap();
        let _ = s.write_all(bytes).await;
        let _ = s.shutdown().await;
        assert!(
            closed_within(&mut s, WAIT).await,
            "the node closes a replayed stream"
        );
    }
    eventually(
        WAIT,
        "the replay is refused as sealed for another incarnation",
        || async {
            c.metric(1, "hearsay_frames_rejected_total{reason=\"bad_tag\"}")
                .await
                .unwrap()
                > bad_tag
        },
    )
    .await;
    assert_eq!(
        c.metric(1, "hearsay_events_received_total").await.unwrap(),
        received,
        "nothing of the replay was taken in"
    );
    // Node 0 binds its frames to the new incarnation: events still flow.
    let id = publish(&c, 0, "after").await;
    eventually(WAIT, "a new event after the restart", || async {
        count(&recv[1], &id) == 1
    })
    .await;
    finish(c).await;
    capture.task.abort();
}

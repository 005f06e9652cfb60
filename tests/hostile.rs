//! Hostile input against running sidecars: garbage, truncated and
//! oversized frames, wrong or missing tags, replays (same peer, another
//! peer, stale), connections from outside the membership, and slow or
//! greedy API clients. Each is refused with a counted reason, memory stays
//! bounded, nothing panics, and the other peers are not affected.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hearsay::demo::cluster::LocalCluster;
use hearsay::gossip::codec::HEADER_LEN;
use hearsay::gossip::{Item, Origin, PeerId};
use hearsay::transport::frame::{Seal, now_ms, seal_frame};
use hearsay::transport::keyring::Keyring;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn send_raw(to: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(to).await.unwrap();
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    // Wait for the node to close its end (it refuses bad frames by
    // closing), reading past its hello.
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
}

async fn rejected(c: &LocalCluster, i: usize, reason: &str) -> f64 {
    c.metric(
        i,
        &format!("hearsay_frames_rejected_total{{reason=\"{reason}\"}}"),
    )
    .await
    .unwrap()
}

/// A test-side peer that is a discovered member (it is in the peers file)
/// and knows the key: a compromised peer, or an attacker replaying what it
/// captured.
struct Rogue {
    id: PeerId,
    _listener: tokio::net::TcpListener,
}

async fn rogue_member(c: &mut LocalCluster) -> Rogue {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    c.list_extra(addr).unwrap();
    Rogue {
        id: PeerId::from_name(&addr.to_string()),
        _listener: listener,
    }
}

fn sealed(
    from: PeerId,
    to: SocketAddr,
    seq: u64,
    sent_at_ms: u64,
    items: &[Item],
    keys: &Keyring,
) -> Vec<u8> {
    let mut out = Vec::new();
    let seal = Seal {
        receiver: PeerId::from_name(&to.to_string()),
        receiver_origin: None,
        sender: from,
        origin: Origin(0xbad),
        frame_seq: seq,
        sent_at_ms,
    };
    seal_frame(seal, items, keys, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_oversized_and_unauthenticated_frames_are_refused_and_harmless() {
    let (c, recv) = cluster("hostile-frames", 2, &[]).await;
    let target = c.node(1).unwrap().ready.gossip;
    let pid = c.node(1).unwrap().ready.pid;
    let rss_before = rss_kib(pid);
    let key = Keyring::new(KEY, None);
    let valid = sealed(PeerId(1), target, 1, now_ms(), &[Item::Prune], &key);

    // Random bytes: a bad header.
    send_raw(target, &[0x5a; 1024]).await;
    // A valid frame cut short.
    send_raw(target, &valid[..valid.len() - 5]).await;
    send_raw(target, &valid[..HEADER_LEN / 2]).await;
    // Wrong tag, and no tag at all.
    let wrong = sealed(
        PeerId(1),
        target,
        2,
        now_ms(),
        &[Item::Prune],
        &Keyring::new(b"not-the-key-0123456789", None),
    );
    send_raw(target, &wrong).await;
    let bare = sealed(
        PeerId(1),
        target,
        3,
        now_ms(),
        &[Item::Prune],
        &Keyring::insecure(),
    );
    send_raw(target, &bare).await;
    // Authentic, but the body is not a valid item list.
    let mut garbage_body = hearsay::gossip::codec::FrameHeader {
        flags: hearsay::gossip::codec::FLAG_AUTH,
        body_len: 4,
        sender: PeerId(1),
        sender_origin: Origin(1),
        frame_seq: 4,
        sent_at_ms: now_ms(),
    }
    .encode()
    .to_vec();
    garbage_body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let tag = key
        .sign(&[
            &PeerId::from_name(&target.to_string()).0.to_be_bytes(),
            &garbage_body,
        ])
        .unwrap();
    garbage_body.extend_from_slice(tag.as_ref());
    send_raw(target, &garbage_body).await;
    // Oversized length prefixes, 200 at once: refused before any allocation.
    let mut huge = valid[..HEADER_LEN].to_vec();
    huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let floods: Vec<_> = (0..200)
        .map(|_| {
            let bytes = huge.clone();
            tokio::spawn(async move { send_raw(target, &bytes).await })
        })
        .collect();
    for f in floods {
        f.await.unwrap();
    }

    eventually(WAIT, "every kind of rejection counted", || async {
        rejected(&c, 1, "bad_header").await >= 1.0
            && rejected(&c, 1, "io").await >= 2.0
            && rejected(&c, 1, "bad_tag").await >= 1.0
            && rejected(&c, 1, "missing_tag").await >= 1.0
            && rejected(&c, 1, "malformed").await >= 1.0
            && rejected(&c, 1, "too_large").await >= 1.0
            // 200 at once from one IP: each is refused, or pushed out
            // unread by a newer one (8 may wait to authenticate per IP).
            && rejected(&c, 1, "too_large").await
                + c.metric(
                    1,
                    "hearsay_connections_total{direction=\"in\",outcome=\"evicted\"}",
                )
                .await
                .unwrap()
                >= 200.0
    })
    .await;
    assert!(c.metric(1, "hearsay_auth_failures_total").await.unwrap() >= 2.0);
    let rss_after = rss_kib(pid);
    eprintln!("memory under hostile frames: {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
    // The node and its peer are unaffected.
    let id = publish(&c, 0, "after-the-attack").await;
    eventually(WAIT, "a real event still arrives", || async {
        count(&recv[1], &id) == 1
    })
    .await;
    assert!(invalidations(&recv[1]).iter().all(|e| e.id == id));
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_stale_and_misdirected_frames_are_refused() {
    let (mut c, _recv) = cluster("hostile-replay", 2, &[]).await;
    let rogue = rogue_member(&mut c).await;
    let n0 = c.node(0).unwrap().ready.gossip;
    let n1 = c.node(1).unwrap().ready.gossip;
    let key = Keyring::new(KEY, None);
    eventually(WAIT, "the rogue is a member", || async {
        c.peers_of(1).await.unwrap().len() == 2
    })
    .await;
    let frames_in = || async {
        c.metric(1, "hearsay_frames_total{direction=\"in\"}")
            .await
            .unwrap()
    };
    let before = frames_in().await;
    // An authentic frame is accepted once...
    let frame = sealed(rogue.id, n1, 1, now_ms(), &[Item::Prune], &key);
    send_raw(n1, &frame).await;
    eventually(WAIT, "accepted once", || async {
        frames_in().await > before
    })
    .await;
    // ...and refused when replayed, on a new connection.
    send_raw(n1, &frame).await;
    eventually(WAIT, "replay refused", || async {
        rejected(&c, 1, "replayed").await >= 1.0
    })
    .await;
    // Sealed for node 0, replayed at node 1: the tag does not verify there.
    let for_n0 = sealed(rogue.id, n0, 2, now_ms(), &[Item::Prune], &key);
    send_raw(n1, &for_n0).await;
    eventually(WAIT, "misdirected refused", || async {
        rejected(&c, 1, "bad_tag").await >= 1.0
    })
    .await;
    // Captured ten minutes ago: stale, even with a seq never seen.
    let old = sealed(rogue.id, n1, 99, now_ms() - 600_000, &[Item::Prune], &key);
    send_raw(n1, &old).await;
    eventually(WAIT, "stale refused", || async {
        rejected(&c, 1, "stale").await >= 1.0
    })
    .await;
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_outside_the_membership_are_refused_and_counted() {
    let (c, _recv) = cluster("hostile-admission", 2, &[]).await;
    let target = c.node(1).unwrap().ready.gossip;
    // From 127.0.0.9: no discovered peer lives there.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.9:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(target).await.unwrap();
    let key = Keyring::new(KEY, None);
    let frame = sealed(PeerId(5), target, 1, now_ms(), &[Item::Neighbor], &key);
    let _ = s.write_all(&frame).await;
    let mut buf = [0u8; 8];
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the node closed the connection"
    );
    eventually(WAIT, "refusal counted", || async {
        c.metric(
            1,
            "hearsay_connections_total{direction=\"in\",outcome=\"refused\"}",
        )
        .await
        .unwrap()
            >= 1.0
    })
    .await;
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_greedy_api_clients_cannot_starve_the_api() {
    let (c, _recv) = cluster("hostile-api", 1, &[]).await;
    let api = c.node(0).unwrap().ready.api;
    // A client that connects and sends nothing is cut off by the header
    // timeout.
    let started = tokio::time::Instant::now();
    let mut idle = TcpStream::connect(api).await.unwrap();
    let mut buf = [0u8; 256];
    let r = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf)).await;
    assert!(r.is_ok(), "an idle client is disconnected");
    assert!(started.elapsed() < Duration::from_secs(9));
    // A body that stalls gets 408.
    let mut slow = TcpStream::connect(api).await.unwrap();
    slow.write_all(b"POST /v1/invalidate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"cache\"")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"));
    // 300 idle connections (over the 256 limit): a real request still gets
    // through once the header timeout frees their slots.
    let mut hogs = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(api).await {
            hogs.push(s);
        }
    }
    let client = c.api(0);
    let started = tokio::time::Instant::now();
    let v: serde_json::Value = tokio::time::timeout(
        Duration::from_secs(15),
        client.json(hyper::Method::GET, "/v1/status", None),
    )
    .await
    .expect("answered despite the hogs")
    .unwrap();
    assert_eq!(v["node"], "node-0");
    eprintln!(
        "API answered after {:?} with 300 idle connections open",
        started.elapsed()
    );
    drop(hogs);
    finish(c).await;
}

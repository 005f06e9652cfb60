//! Fault scenarios with real processes, each sidecar in a network
//! namespace of its own (`netns`; on 127.0.0.1 where there is no root,
//! outside CI): frame loss injected in the transport, SIGKILL, restarts, a
//! failing app, a flooding member, a key rotation. Each ends with the
//! per-(receiver, event) accounting of `accounting`. Faults made by the
//! kernel (partitions, a black-holed or frozen peer, packet loss) are in
//! `kernel_faults.rs`.
//!
//! The scenarios run one at a time so they do not compete for the CPU.

mod accounting;
mod common;
mod netns;

use std::net::SocketAddr;
use std::time::Duration;

use accounting::*;
use common::*;
use hearsay::demo::cluster::NodeSpec;
use hearsay::receiver::{Received, Receiver};
use netns::{Need, NetCluster};
use tokio::time::Instant;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_frames_dropped_on_every_link() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(n) = NetCluster::start(
        "chaos-loss",
        5,
        &["--fault-drop-frames", "0.1"],
        Need::Processes,
    )
    .await
    else {
        return;
    };
    let published = publisher(apis_of(&n.c), 40.0, Duration::from_secs(5))
        .await
        .unwrap();
    let t = settle_and_report("10% frame loss", &published, || n.events(), &[]).await;
    assert!(
        n.c.metric(0, "hearsay_sends_dropped_total{reason=\"fault\"}")
            .await
            .unwrap()
            > 0.0
    );
    assert!(t.delivered > 0);
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_third_of_the_nodes_then_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut n) = NetCluster::start("chaos-kill", 6, &[], Need::Processes).await else {
        return;
    };
    let apis = apis_of(&n.c);
    let load = publisher(apis.clone(), 40.0, Duration::from_secs(6));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut kills = Vec::new();
    for i in [3, 4] {
        apis.lock().unwrap()[i] = None;
        kills.push((i, Instant::now()));
        n.c.kill9(i).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in [3, 4] {
        n.c.restart(i).await.unwrap();
        apis.lock().unwrap()[i] = Some(n.c.api(i));
    }
    let published = load.await.unwrap();
    settle_and_report(
        "SIGKILL a third, restart",
        &published,
        || n.events(),
        &kills,
    )
    .await;
    // Each restarted sidecar told its (still running) app to flush, which
    // covers whatever the app missed while the sidecar was dead.
    for &(i, killed) in &kills {
        assert!(
            n.recv[i]
                .events()
                .iter()
                .any(|e| e.kind == "dev.hearsay.flush"
                    && e.data["reason"] == "sidecar_start"
                    && e.at > killed),
            "app {i} got a flush from its restarted sidecar"
        );
    }
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_behind_one_sidecar_down_for_ten_seconds_then_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut n) = NetCluster::start("chaos-app-down", 4, &[], Need::Processes).await else {
        return;
    };
    let load = publisher(apis_of(&n.c), 20.0, Duration::from_secs(14));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = n.recv.remove(2);
    let addr = down.addr;
    let before: Vec<Received> = down.events();
    down.stop().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let back = Receiver::start(addr, false).await.unwrap();
    n.recv.insert(2, back);
    let published = load.await.unwrap();
    let events = || {
        let mut all = n.events();
        all[2].splice(0..0, before.iter().cloned());
        all
    };
    let t = settle_and_report("app down 10 s", &published, events, &[]).await;
    assert_eq!(
        t.flushed, 0,
        "10 s is within the retry budget: everything is delivered"
    );
    assert!(
        n.c.metric(2, "hearsay_webhook_requests_total{outcome=\"retry\"}")
            .await
            .unwrap()
            > 0.0
    );
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_under_load() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut n) = NetCluster::start("chaos-rolling", 4, &[], Need::Processes).await else {
        return;
    };
    let apis = apis_of(&n.c);
    let load = publisher(apis.clone(), 20.0, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..4 {
        apis.lock().unwrap()[i] = None;
        let status = n.c.terminate(i, Duration::from_secs(15)).await.unwrap();
        assert!(status.success(), "node {i} drained and exited 0");
        n.c.restart(i).await.unwrap();
        apis.lock().unwrap()[i] = Some(n.c.api(i));
        n.c.wait_all_see_all(Duration::from_secs(20)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let published = load.await.unwrap();
    settle_and_report("rolling restart", &published, || n.events(), &[]).await;
    n.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_frames_is_rate_limited_and_the_others_are_unaffected() {
    use hearsay::gossip::{Item, Origin, PeerId};
    use hearsay::transport::frame::{Seal, now_ms, seal_frame};
    use hearsay::transport::keyring::Keyring;
    use tokio::io::AsyncWriteExt;
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut n) = NetCluster::start(
        "chaos-flood",
        3,
        &["--inbound-frames-per-second", "300"],
        Need::Processes,
    )
    .await
    else {
        return;
    };
    let rogue_listener = tokio::net::TcpListener::bind(SocketAddr::new(n.host_ip(), 0))
        .await
        .unwrap();
    let rogue = rogue_listener.local_addr().unwrap();
    n.c.list_extra(rogue).unwrap();
    let target = n.c.node(1).unwrap().ready.gossip;
    eventually(
        Duration::from_secs(10),
        "the flooder is a member",
        || async { n.c.peers_of(1).await.unwrap().len() == 3 },
    )
    .await;
    let load = publisher(apis_of(&n.c), 20.0, Duration::from_secs(6));
    // A member with the key, sending Prunes as fast as it can for 4 s.
    let flood = tokio::spawn(async move {
        let key = Keyring::new(KEY, None);
        let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
        let start = Instant::now();
        let mut seq = 0u64;
        let mut buf = Vec::new();
        while start.elapsed() < Duration::from_secs(4) {
            seq += 1;
            let seal = Seal {
                receiver: PeerId::from_name(&target.to_string()),
                receiver_origin: None,
                sender: PeerId::from_name(&rogue.to_string()),
                origin: Origin(0xf100d),
                frame_seq: seq,
                sent_at_ms: now_ms(),
            };
            seal_frame(seal, &[Item::Prune], &key, &mut buf);
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
        seq
    });
    let published = load.await.unwrap();
    let sent = flood.await.unwrap();
    let limited =
        n.c.metric(1, "hearsay_frames_rate_limited_total")
            .await
            .unwrap();
    eprintln!("flood: {sent} frames sent by the flooder, {limited} dropped by node 1's limit");
    assert!(limited > 1000.0, "the flood hit the limit");
    settle_and_report("flooding peer", &published, || n.events(), &[]).await;
    drop(rogue_listener);
    n.finish().await;
}

/// A key directory laid out as the kubelet mounts a Secret: the files are
/// symlinks into `..data`, which is swapped atomically on each update.
struct SecretVolume {
    dir: std::path::PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(dir: std::path::PathBuf) -> SecretVolume {
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["primary", "secondary"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        SecretVolume { dir, version: 0 }
    }

    fn write(&mut self, primary: &[u8], secondary: Option<&[u8]>) {
        self.version += 1;
        let data = self.dir.join(format!("..2026_11_22_{}", self.version));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("primary"), primary).unwrap();
        if let Some(s) = secondary {
            std::fs::write(data.join("secondary"), s).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_key_rotation_across_a_running_cluster_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    const OLD: &[u8] = b"old-key-0123456789abcdef0123456789";
    const NEW: &[u8] = b"new-key-0123456789abcdef0123456789";
    let mut opts = options("chaos-rotation", &[]);
    opts.key = None;
    let dir = opts.dir.clone();
    let Some(mut n) = NetCluster::new(opts, Need::Processes) else {
        return;
    };
    let mut volumes = Vec::new();
    for i in 0..3 {
        let mut v = SecretVolume::new(dir.join(format!("keys-{i}")));
        v.write(OLD, None);
        n.add(NodeSpec {
            args: vec![
                "--gossip-key-file".into(),
                v.dir.join("primary").display().to_string(),
                "--gossip-secondary-key-file".into(),
                v.dir.join("secondary").display().to_string(),
            ],
            ..NodeSpec::default()
        })
        .await;
        volumes.push(v);
    }
    n.c.wait_all_see_all(Duration::from_secs(20)).await.unwrap();
    let load = publisher(apis_of(&n.c), 20.0, Duration::from_secs(16));
    // Each step reaches the nodes one at a time, as kubelets sync pods at
    // different moments; the reload happens within a second.
    let steps: [(&[u8], Option<&[u8]>); 3] = [(OLD, Some(NEW)), (NEW, Some(OLD)), (NEW, None)];
    for (primary, secondary) in steps {
        for v in volumes.iter_mut() {
            tokio::time::sleep(Duration::from_millis(800)).await;
            v.write(primary, secondary);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let published = load.await.unwrap();
    let t = settle_and_report("key rotation", &published, || n.events(), &[]).await;
    assert_eq!(t.flushed, 0);
    for i in 0..3 {
        assert_eq!(
            n.c.metric(i, "hearsay_auth_failures_total").await.unwrap(),
            0.0,
            "node {i}"
        );
        assert!(
            n.c.metric(i, "hearsay_key_reloads_total{outcome=\"ok\"}")
                .await
                .unwrap()
                >= 3.0,
            "node {i}"
        );
    }
    // The old key is really gone: a frame sealed with it is refused.
    use hearsay::gossip::{Item, Origin, PeerId};
    use hearsay::transport::frame::{Seal, now_ms, seal_frame};
    use hearsay::transport::keyring::Keyring;
    use tokio::io::AsyncWriteExt;
    let target = n.c.node(1).unwrap().ready.gossip;
    let mut frame = Vec::new();
    let seal = Seal {
        receiver: PeerId::from_name(&target.to_string()),
        receiver_origin: None,
        sender: PeerId::from_name(&n.c.node(0).unwrap().ready.gossip.to_string()),
        origin: Origin(1),
        frame_seq: 1,
        sent_at_ms: now_ms(),
    };
    seal_frame(seal, &[Item::Prune], &Keyring::new(OLD, None), &mut frame);
    // From the test's own address, listed so the connection is admitted
    // and the frame's tag is checked.
    n.c.list_extra(SocketAddr::new(n.host_ip(), 9)).unwrap();
    let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
    s.write_all(&frame).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the old key is refused",
        || async { n.c.metric(1, "hearsay_auth_failures_total").await.unwrap() >= 1.0 },
    )
    .await;
    n.finish().await;
}

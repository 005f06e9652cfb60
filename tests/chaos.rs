//! Fault scenarios with real processes. Each publishes a steady
//! stream of invalidations at random live nodes while something breaks,
//! then checks every (receiver, event) pair: delivered, or covered by a
//! flush the receiver got after the event was published. It prints
//! published / pairs / delivered / flushed / duplicates.
//!
//! One documented limit is accounted for, not hidden: an event a sidecar
//! accepted and was SIGKILLed before it wrote it anywhere cannot reach
//! anyone (`lost with origin`, counted only for events accepted within
//! 200 ms before their origin's SIGKILL).
//!
//! The scenarios run one at a time so they do not compete for the CPU.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hearsay::client::ApiClient;
use hearsay::demo::cluster::{LocalCluster, NodeSpec};
use hearsay::receiver::{Received, Receiver};
use rand::RngExt;
use tokio::time::Instant;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const SETTLE: Duration = Duration::from_secs(40);
const UNSENT_WINDOW: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
struct Published {
    id: String,
    origin: usize,
    at: Instant,
    cache: String,
}

/// The API of each live node, kept current as nodes restart.
type Apis = Arc<Mutex<Vec<Option<ApiClient>>>>;

fn apis_of(c: &LocalCluster) -> Apis {
    Arc::new(Mutex::new(
        (0..c.len()).map(|i| c.node(i).map(|_| c.api(i))).collect(),
    ))
}

/// The publisher's seed: `HEARSAY_CHAOS_SEED` to replay a run, else
/// random; printed either way.
fn seed() -> u64 {
    let seed = std::env::var("HEARSAY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("chaos publisher seed: {seed} (HEARSAY_CHAOS_SEED={seed} replays it)");
    seed
}

/// Publishes at `rate` per second for `duration`, at random live nodes.
fn publisher(apis: Apis, rate: f64, duration: Duration) -> tokio::task::JoinHandle<Vec<Published>> {
    let mut rng = <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(seed());
    tokio::spawn(async move {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut k = 0u64;
        while start.elapsed() < duration {
            tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
            k += 1;
            let live: Vec<(usize, ApiClient)> = apis
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.clone().map(|a| (i, a)))
                .collect();
            if live.is_empty() {
                continue;
            }
            let (origin, api) = live[rng.random_range(0..live.len())].clone();
            let cache = format!("cache-{}", k % 5);
            let at = Instant::now();
            if let Ok(id) = api
                .invalidate(&serde_json::json!({"cache": cache, "keys": [format!("k{k}")]}))
                .await
            {
                out.push(Published {
                    id,
                    origin,
                    at,
                    cache,
                });
            }
        }
        out
    })
}

#[derive(Debug, Default)]
struct Tally {
    published: usize,
    pairs: usize,
    delivered: usize,
    flushed: usize,
    duplicates: usize,
    lost_with_origin: usize,
    undelivered: Vec<String>,
}

fn tally(published: &[Published], events: &[Vec<Received>], kills: &[(usize, Instant)]) -> Tally {
    let mut t = Tally {
        published: published.len(),
        ..Tally::default()
    };
    let by_receiver: Vec<HashMap<&str, usize>> = events
        .iter()
        .map(|evs| {
            let mut m = HashMap::new();
            for e in evs.iter().filter(|e| e.kind == "dev.hearsay.invalidate") {
                *m.entry(e.id.as_str()).or_insert(0) += 1;
            }
            m
        })
        .collect();
    for p in published {
        let at_risk = kills.iter().any(|(node, killed)| {
            *node == p.origin && *killed >= p.at && killed.duration_since(p.at) < UNSENT_WINDOW
        });
        for (r, evs) in events.iter().enumerate() {
            if r == p.origin {
                continue;
            }
            t.pairs += 1;
            match by_receiver[r].get(p.id.as_str()) {
                Some(&n) => {
                    t.delivered += 1;
                    t.duplicates += n - 1;
                }
                None => {
                    let covered = evs.iter().any(|e| {
                        e.kind == "dev.hearsay.flush"
                            && e.at >= p.at
                            && (e.data["cache"].is_null() || e.data["cache"] == p.cache.as_str())
                    });
                    if covered {
                        t.flushed += 1;
                    } else if at_risk {
                        t.lost_with_origin += 1;
                    } else {
                        t.undelivered
                            .push(format!("{} (from node {}) at receiver {r}", p.id, p.origin));
                    }
                }
            }
        }
    }
    t
}

/// Waits until every pair is delivered or covered, then reports.
async fn settle_and_report(
    name: &str,
    published: &[Published],
    events: impl Fn() -> Vec<Vec<Received>>,
    kills: &[(usize, Instant)],
) -> Tally {
    let deadline = Instant::now() + SETTLE;
    while !tally(published, &events(), kills).undelivered.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Late duplicates would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = tally(published, &events(), kills);
    eprintln!(
        "chaos {name}: published {}, pairs {}, delivered {}, flushed {}, duplicates {}, lost with origin {}, undelivered {}",
        t.published,
        t.pairs,
        t.delivered,
        t.flushed,
        t.duplicates,
        t.lost_with_origin,
        t.undelivered.len()
    );
    assert!(
        t.undelivered.is_empty(),
        "{name}: {} undelivered, e.g. {:?}",
        t.undelivered.len(),
        &t.undelivered[..t.undelivered.len().min(5)]
    );
    assert!(t.published > 50, "{name}: the load ran");
    t
}

fn all_events(recv: &[Receiver]) -> Vec<Vec<Received>> {
    recv.iter().map(Receiver::events).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_frames_dropped_on_every_link() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (c, recv) = cluster("chaos-loss", 5, &["--fault-drop-frames", "0.1"]).await;
    let published = publisher(apis_of(&c), 40.0, Duration::from_secs(5))
        .await
        .unwrap();
    let t = settle_and_report("10% frame loss", &published, || all_events(&recv), &[]).await;
    assert!(
        c.metric(0, "hearsay_sends_dropped_total{reason=\"fault\"}")
            .await
            .unwrap()
            > 0.0
    );
    assert!(t.delivered > 0);
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_third_of_the_nodes_then_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut c, recv) = cluster("chaos-kill", 6, &[]).await;
    let apis = apis_of(&c);
    let load = publisher(apis.clone(), 40.0, Duration::from_secs(6));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut kills = Vec::new();
    for i in [3, 4] {
        apis.lock().unwrap()[i] = None;
        kills.push((i, Instant::now()));
        c.kill9(i).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in [3, 4] {
        c.restart(i).await.unwrap();
        apis.lock().unwrap()[i] = Some(c.api(i));
    }
    let published = load.await.unwrap();
    settle_and_report(
        "SIGKILL a third, restart",
        &published,
        || all_events(&recv),
        &kills,
    )
    .await;
    // Each restarted sidecar told its (still running) app to flush, which
    // covers whatever the app missed while the sidecar was dead.
    for &(i, killed) in &kills {
        assert!(
            recv[i]
                .events()
                .iter()
                .any(|e| e.kind == "dev.hearsay.flush"
                    && e.data["reason"] == "sidecar_start"
                    && e.at > killed),
            "app {i} got a flush from its restarted sidecar"
        );
    }
    finish(c).await;
}

fn write_block(path: &std::path::Path, addrs: &[SocketAddr]) {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_into_two_halves_for_ten_seconds_then_healing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let recv = receivers(6).await;
    let opts = options("chaos-partition", &[]);
    let dir = opts.dir.clone();
    let mut c = LocalCluster::new(opts).unwrap();
    for (i, r) in recv.iter().enumerate() {
        let block = dir.join(format!("block-{i}"));
        std::fs::write(&block, "").unwrap();
        c.add(NodeSpec {
            webhook_url: r.url(),
            args: vec!["--fault-block-file".into(), block.display().to_string()],
            ..NodeSpec::default()
        })
        .await
        .unwrap();
    }
    c.wait_all_see_all(Duration::from_secs(20)).await.unwrap();
    let gossip: Vec<SocketAddr> = (0..6).map(|i| c.node(i).unwrap().ready.gossip).collect();
    let load = publisher(apis_of(&c), 20.0, Duration::from_secs(14));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..6 {
        let other_half: Vec<SocketAddr> = (0..6)
            .filter(|j| (j < &3) != (i < 3))
            .map(|j| gossip[j])
            .collect();
        write_block(&dir.join(format!("block-{i}")), &other_half);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    for i in 0..6 {
        write_block(&dir.join(format!("block-{i}")), &[]);
    }
    let published = load.await.unwrap();
    settle_and_report(
        "partition 10 s, heal",
        &published,
        || all_events(&recv),
        &[],
    )
    .await;
    assert!(
        c.metric(
            0,
            "hearsay_antientropy_repairs_total{direction=\"received\"}"
        )
        .await
        .unwrap()
            > 0.0
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_behind_one_sidecar_down_for_ten_seconds_then_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (c, mut recv) = cluster("chaos-app-down", 4, &[]).await;
    let load = publisher(apis_of(&c), 20.0, Duration::from_secs(14));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = recv.remove(2);
    let addr = down.addr;
    let before: Vec<Received> = down.events();
    down.stop().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let back = Receiver::start(addr, false).await.unwrap();
    recv.insert(2, back);
    let published = load.await.unwrap();
    let events = || {
        let mut all = all_events(&recv);
        all[2].splice(0..0, before.iter().cloned());
        all
    };
    let t = settle_and_report("app down 10 s", &published, events, &[]).await;
    assert_eq!(
        t.flushed, 0,
        "10 s is within the retry budget: everything is delivered"
    );
    assert!(
        c.metric(2, "hearsay_webhook_requests_total{outcome=\"retry\"}")
            .await
            .unwrap()
            > 0.0
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_under_load() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut c, recv) = cluster("chaos-rolling", 4, &[]).await;
    let apis = apis_of(&c);
    let load = publisher(apis.clone(), 20.0, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..4 {
        apis.lock().unwrap()[i] = None;
        let status = c.terminate(i, Duration::from_secs(15)).await.unwrap();
        assert!(status.success(), "node {i} drained and exited 0");
        c.restart(i).await.unwrap();
        apis.lock().unwrap()[i] = Some(c.api(i));
        c.wait_all_see_all(Duration::from_secs(20)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let published = load.await.unwrap();
    settle_and_report("rolling restart", &published, || all_events(&recv), &[]).await;
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_frames_is_rate_limited_and_the_others_are_unaffected() {
    use hearsay::gossip::{Item, Origin, PeerId};
    use hearsay::transport::frame::{Seal, now_ms, seal_frame};
    use hearsay::transport::keyring::Keyring;
    use tokio::io::AsyncWriteExt;
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut c, recv) = cluster("chaos-flood", 3, &["--inbound-frames-per-second", "300"]).await;
    let rogue_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rogue = rogue_listener.local_addr().unwrap();
    c.list_extra(rogue).unwrap();
    let target = c.node(1).unwrap().ready.gossip;
    eventually(
        Duration::from_secs(10),
        "the flooder is a member",
        || async { c.peers_of(1).await.unwrap().len() == 3 },
    )
    .await;
    let load = publisher(apis_of(&c), 20.0, Duration::from_secs(6));
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
    let limited = c
        .metric(1, "hearsay_frames_rate_limited_total")
        .await
        .unwrap();
    eprintln!("flood: {sent} frames sent by the flooder, {limited} dropped by node 1's limit");
    assert!(limited > 1000.0, "the flood hit the limit");
    settle_and_report("flooding peer", &published, || all_events(&recv), &[]).await;
    drop(rogue_listener);
    finish(c).await;
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
    let recv = receivers(3).await;
    let mut opts = options("chaos-rotation", &[]);
    opts.key = None;
    let dir = opts.dir.clone();
    let mut c = LocalCluster::new(opts).unwrap();
    let mut volumes = Vec::new();
    for (i, r) in recv.iter().enumerate() {
        let mut v = SecretVolume::new(dir.join(format!("keys-{i}")));
        v.write(OLD, None);
        c.add(NodeSpec {
            webhook_url: r.url(),
            args: vec![
                "--gossip-key-file".into(),
                v.dir.join("primary").display().to_string(),
                "--gossip-secondary-key-file".into(),
                v.dir.join("secondary").display().to_string(),
            ],
            ..NodeSpec::default()
        })
        .await
        .unwrap();
        volumes.push(v);
    }
    c.wait_all_see_all(Duration::from_secs(20)).await.unwrap();
    let load = publisher(apis_of(&c), 20.0, Duration::from_secs(16));
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
    let t = settle_and_report("key rotation", &published, || all_events(&recv), &[]).await;
    assert_eq!(t.flushed, 0);
    for i in 0..3 {
        assert_eq!(
            c.metric(i, "hearsay_auth_failures_total").await.unwrap(),
            0.0,
            "node {i}"
        );
        assert!(
            c.metric(i, "hearsay_key_reloads_total{outcome=\"ok\"}")
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
    let target = c.node(1).unwrap().ready.gossip;
    let mut frame = Vec::new();
    let seal = Seal {
        receiver: PeerId::from_name(&target.to_string()),
        receiver_origin: None,
        sender: PeerId::from_name(&c.node(0).unwrap().ready.gossip.to_string()),
        origin: Origin(1),
        frame_seq: 1,
        sent_at_ms: now_ms(),
    };
    seal_frame(seal, &[Item::Prune], &Keyring::new(OLD, None), &mut frame);
    let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
    s.write_all(&frame).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the old key is refused",
        || async { c.metric(1, "hearsay_auth_failures_total").await.unwrap() >= 1.0 },
    )
    .await;
    finish(c).await;
}

//! Helpers for tests that run real `hearsay` processes on 127.0.0.1.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hearsay::demo::cluster::{ClusterOptions, LocalCluster};
use hearsay::receiver::Receiver;

pub const KEY: &[u8] = b"test-key-0123456789abcdef0123456789";

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hearsay"))
}

/// A fresh directory for one test (removed first if a previous run left it).
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearsay-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn receivers(n: usize) -> Vec<Receiver> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(
            Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), false)
                .await
                .unwrap(),
        );
    }
    v
}

pub fn options(name: &str, extra: &[&str]) -> ClusterOptions {
    ClusterOptions {
        binary: binary(),
        dir: test_dir(name),
        key: Some(KEY.to_vec()),
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        start_timeout: Duration::from_secs(20),
    }
}

/// A cluster with one receiver per node.
pub async fn cluster(name: &str, n: usize, extra: &[&str]) -> (LocalCluster, Vec<Receiver>) {
    let recv = receivers(n).await;
    let urls: Vec<String> = recv.iter().map(Receiver::url).collect();
    let c = LocalCluster::start(options(name, extra), &urls)
        .await
        .unwrap();
    (c, recv)
}

/// Polls `check` until it returns true or `within` passes; then fails with
/// `what`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("not within {within:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How many times receiver `r` got event `id`.
pub fn count(r: &Receiver, id: &str) -> usize {
    r.events().iter().filter(|e| e.id == id).count()
}

pub async fn publish(c: &LocalCluster, i: usize, key: &str) -> String {
    c.api(i)
        .invalidate(&serde_json::json!({"cache": "products", "keys": [key]}))
        .await
        .unwrap()
}

/// Stops the cluster and removes its directory (left behind if a test
/// fails, for the logs).
pub async fn finish(c: LocalCluster) {
    let dir = c.dir().to_path_buf();
    c.shutdown(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The invalidations a receiver got (leaving out flushes and config).
pub fn invalidations(r: &Receiver) -> Vec<hearsay::receiver::Received> {
    r.events()
        .into_iter()
        .filter(|e| e.kind == "dev.hearsay.invalidate")
        .collect()
}

/// Flushes a receiver got, other than the one every sidecar sends at start.
pub fn flushes_beyond_start(r: &Receiver) -> usize {
    r.events()
        .iter()
        .filter(|e| e.kind == "dev.hearsay.flush" && e.data["reason"] != "sidecar_start")
        .count()
}

pub fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

/// Where `program` is on the PATH.
pub fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|f| f.is_file())
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// Makes sure each `(program, Debian package)` is there, installing the
/// missing packages with apt-get as root; or says why it cannot.
pub fn ensure_programs(need: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = need
        .iter()
        .filter(|(p, _)| !on_path(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() || !on_path("apt-get") {
        return Err(format!(
            "{list} missing (install with `apt-get install {list}` as root)"
        ));
    }
    eprintln!("installing {list} with apt-get");
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    // A fresh machine may have no package lists yet.
    let ok = install()
        || (std::process::Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .is_ok_and(|s| s.success())
            && install());
    if ok && need.iter().all(|(p, _)| on_path(p)) {
        Ok(())
    } else {
        Err(format!("apt-get install {list} failed"))
    }
}

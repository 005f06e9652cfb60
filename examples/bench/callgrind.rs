//! `bench callgrind`: the instructions one sidecar spends receiving and
//! delivering a fixed number of events from one peer, counted by
//! `valgrind --tool=callgrind` (repeatable whatever else the machine is
//! doing, unlike a timing). Two sidecars on loopback: a publisher run
//! normally, and the measured one under callgrind with collection off
//! until both are up; the events are published at the first in rounds, the
//! second delivers them to an in-process webhook receiver; collection
//! stops once the receiver has them all.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hearsay::demo::cluster::{ClusterOptions, LocalCluster, NodeSpec};
use hearsay::receiver::Receiver;
use serde::Serialize;

/// What one callgrind run counted.
#[derive(Debug, Serialize)]
pub struct Counted {
    pub events: u64,
    /// Instructions of the measured sidecar while the events went through.
    pub instructions: u64,
    pub instructions_per_event: f64,
}

fn valgrind_ready(allow_install: bool) -> anyhow::Result<()> {
    if crate::install::on_path("valgrind") && crate::install::on_path("callgrind_control") {
        return Ok(());
    }
    anyhow::ensure!(
        allow_install && crate::install::apt_install(&["valgrind"]),
        "valgrind is not installed (apt-get install valgrind)"
    );
    Ok(())
}

fn run(cmd: &mut std::process::Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub async fn count(
    hearsay: &Path,
    events: u64,
    allow_install: bool,
    dir: &Path,
) -> anyhow::Result<Counted> {
    valgrind_ready(allow_install)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (quiet, measured_app) = (
        Receiver::start(loopback, false).await?,
        Receiver::start(loopback, false).await?,
    );
    let mut c = LocalCluster::new(ClusterOptions {
        binary: hearsay.to_path_buf(),
        dir: dir.to_path_buf(),
        key: Some(b"callgrind-key-0123456789abcdef01".to_vec()),
        extra_args: Vec::new(),
        // Valgrind starts the measured sidecar some fifty times slower.
        start_timeout: Duration::from_secs(120),
    })?;
    let env = vec![("RUST_LOG".to_owned(), "warn".to_owned())];
    c.add(NodeSpec {
        webhook_url: quiet.url(),
        env: env.clone(),
        ..NodeSpec::default()
    })
    .await?;
    let out_file = dir.join("callgrind.out");
    c.add(NodeSpec {
        webhook_url: measured_app.url(),
        env,
        wrapper: vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "--instr-atstart=no".into(),
            format!("--callgrind-out-file={}", out_file.display()),
        ],
        ..NodeSpec::default()
    })
    .await?;
    c.wait_all_see_all(Duration::from_secs(120)).await?;
    let pid = c.node(1).context("the measured node")?.ready.pid;
    // Its first delivery (the start flush) before counting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while measured_app.count() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = measured_app.count();
    run(std::process::Command::new("callgrind_control").args(["-i", "on", &pid.to_string()]))?;
    let api = c.api(0);
    let mut k = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    while k < events {
        // Rounds of 100, each once the last has arrived: the measured
        // sidecar is never flooded (no coalescing, no flush).
        let round = (events - k).min(100);
        for _ in 0..round {
            let body = serde_json::json!({"cache": "bench", "keys": [format!("key-{k}")]});
            api.invalidate(&body).await?;
            k += 1;
        }
        while measured_app.count() < before + k as usize {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "only {} of {k} events arrived",
                measured_app.count() - before
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    run(std::process::Command::new("callgrind_control").args(["-i", "off", &pid.to_string()]))?;
    let got = measured_app.count() - before;
    c.shutdown(Duration::from_secs(60)).await;
    quiet.stop().await;
    measured_app.stop().await;
    anyhow::ensure!(got as u64 == events, "{got} of {events} events arrived");
    let text = std::fs::read_to_string(&out_file)
        .with_context(|| format!("no callgrind output at {}", out_file.display()))?;
    let instructions = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("no instruction total in the callgrind output")?;
    Ok(Counted {
        events,
        instructions,
        instructions_per_event: instructions as f64 / events as f64,
    })
}

//! `hearsay run`: builds the sidecar from its settings, runs it, and drains
//! it on SIGTERM (Kubernetes sends this) or SIGINT.
//!
//! The tasks: the owner ([`owner`]) holds all protocol state; the gossip
//! listener feeds it frames; discovery feeds it peer sets; the local API and
//! the webhook worker send it commands; the metrics listener reads shared
//! metrics. Everything between them is a bounded channel.

mod build;
pub mod owner;
mod spawn;

use crate::settings::Settings;
use anyhow::Context;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;

use build::{Identity, bind_all, identify, load_keys};
use spawn::spawn;

/// What `--ready-file` receives once every listener is up.
#[derive(Serialize)]
struct ReadyFile<'a> {
    node: &'a str,
    pid: u32,
    peer_id: String,
    origin: String,
    gossip: SocketAddr,
    advertise: SocketAddr,
    api: SocketAddr,
    metrics: SocketAddr,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Runs the sidecar: bind and build, spawn every task, wait for a signal,
/// then drain within the grace period.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let bound = bind_all(&settings).await?;
    let id = identify(&settings, bound.gossip_addr).await?;
    let keys = load_keys(&settings)?;
    let addrs = (bound.gossip_addr, bound.api_addr, bound.metrics_addr);
    let who = id.without_discovery();
    let running = spawn(&settings, bound, id, keys);
    // Listening before anyone can learn we are up (the ready file, the log
    // line): a SIGTERM sent the moment after is then a graceful stop.
    let mut signals = crate::shutdown::Signals::listen();
    announce(&settings, &who, addrs)?;
    let signal = signals.recv().await;
    tracing::info!(signal, grace = ?settings.shutdown_grace, "stopping: no new publishes; sending and delivering what is queued");
    running.drain(settings.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// Writes the ready file and logs that the sidecar runs.
fn announce(
    settings: &Settings,
    id: &Identity,
    (gossip, api, metrics): (SocketAddr, SocketAddr, SocketAddr),
) -> anyhow::Result<()> {
    if let Some(path) = &settings.ready_file {
        let ready = ReadyFile {
            node: &settings.node_name,
            pid: std::process::id(),
            peer_id: id.me.to_string(),
            origin: id.origin.to_string(),
            gossip,
            advertise: id.me_addr,
            api,
            metrics,
        };
        write_atomically(path, &serde_json::to_vec(&ready)?)
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    tracing::info!(
        node = %settings.node_name,
        peer_id = %id.me,
        origin = %id.origin,
        %gossip,
        advertise = %id.me_addr,
        %api,
        %metrics,
        webhook = %settings.webhook_url,
        "hearsay is running"
    );
    Ok(())
}

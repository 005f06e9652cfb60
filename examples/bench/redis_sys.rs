//! Redis pub/sub under test: one `redis-server` on an ephemeral loopback
//! port and one publishing connection per node. As its users run it, each
//! app SUBSCRIBEs itself (`apps`). The labelled extra, `redis-relayed`,
//! puts a relay process beside each app instead, which SUBSCRIBEs and hands
//! what it gets to the app's webhook the way the sidecar does: one call at
//! a time, each carrying everything that arrived while the previous one
//! was in flight.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::workload::System;
use crate::{free_port, post};

pub const CHANNEL: &str = "hearsay-bench";

pub struct Redis {
    server: Child,
    pub addr: SocketAddr,
    relays: Vec<Child>,
    publishers: Vec<redis::aio::MultiplexedConnection>,
}

impl Redis {
    /// The broker and `nodes` publishing connections.
    pub async fn start(nodes: usize) -> anyhow::Result<Redis> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start redis-server")?;
        let url = format!("redis://{addr}/");
        let client = redis::Client::open(url.as_str())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let first = loop {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    let _ = server.start_kill();
                    return Err(e).context("redis-server did not start listening");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let mut publishers = vec![first];
        for _ in 1..nodes {
            publishers.push(client.get_multiplexed_async_connection().await?);
        }
        Ok(Redis {
            server,
            addr,
            relays: Vec::new(),
            publishers,
        })
    }

    /// Starts a relay per webhook: SUBSCRIBE, then POST to the app.
    pub async fn relay(&mut self, bench: &Path, webhooks: &[String]) -> anyhow::Result<()> {
        for url in webhooks {
            let mut child = Command::new(bench)
                .args(["redis-subscriber", &self.addr.to_string(), url])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a relay")?;
            let out = child.stdout.take().context("no stdout")?;
            let mut line = String::new();
            tokio::time::timeout(
                Duration::from_secs(10),
                BufReader::new(out).read_line(&mut line),
            )
            .await
            .context("a relay did not subscribe within 10 s")??;
            anyhow::ensure!(line.trim() == "subscribed", "a relay said {line:?}");
            self.relays.push(child);
        }
        Ok(())
    }

    /// The broker first, then the relays (if any).
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.server)
            .chain(&self.relays)
            .filter_map(Child::id)
            .collect()
    }

    pub async fn stop(mut self) {
        for c in self
            .relays
            .iter_mut()
            .chain(std::iter::once(&mut self.server))
        {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

impl System for Redis {
    async fn publish(&self, node: usize, k: u64) -> Result<String, String> {
        let id = format!("redis-{k}");
        let mut conn = self.publishers[node].clone();
        let delivered: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(&id)
            .query_async(&mut conn)
            .await;
        delivered.map(|_| id).map_err(|e| e.to_string())
    }
}

/// `bench redis-subscriber ADDR URL`: subscribes, says so on stdout, then
/// forwards every message to the webhook until killed.
pub async fn subscriber(addr: SocketAddr, webhook: String) -> anyhow::Result<()> {
    use futures::StreamExt;
    let client = redis::Client::open(format!("redis://{addr}/").as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    println!("subscribed");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let forward = tokio::spawn(async move {
        let http = post::Poster::new(&webhook)?;
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 1024).await > 0 {
            http.deliver(&batch, "redis").await?;
            batch.clear();
        }
        anyhow::Ok(())
    });
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        let id: String = msg.get_payload().unwrap_or_default();
        if tx.send(id).is_err() {
            break;
        }
    }
    drop(tx);
    forward.await?
}

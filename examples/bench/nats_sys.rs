//! NATS core under test, as its users run it: one `nats-server` (Debian's)
//! on an ephemeral loopback port, each app subscribing itself, and one
//! publishing connection per node (async-nats). A core publish is not
//! acknowledged: accepted = the client took it, as a NATS user's publish
//! returns.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::free_port;
use crate::workload::System;

pub const SUBJECT: &str = "hearsay-bench";

pub struct Nats {
    server: Child,
    pub addr: SocketAddr,
    publishers: Vec<async_nats::Client>,
}

impl Nats {
    pub async fn start(nodes: usize) -> anyhow::Result<Nats> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start nats-server")?;
        let url = format!("nats://{addr}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let first = loop {
            match async_nats::connect(&url).await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    let _ = server.start_kill();
                    return Err(e).context("nats-server did not start listening");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let mut publishers = vec![first];
        for _ in 1..nodes {
            publishers.push(async_nats::connect(&url).await?);
        }
        Ok(Nats {
            server,
            addr,
            publishers,
        })
    }

    pub fn pids(&self) -> Vec<u32> {
        self.server.id().into_iter().collect()
    }

    pub async fn stop(mut self) {
        for p in self.publishers.drain(..) {
            let _ = p.drain().await;
        }
        let _ = self.server.start_kill();
        let _ = self.server.wait().await;
    }
}

impl System for Nats {
    async fn publish(&self, node: usize, k: u64) -> Result<String, String> {
        let id = format!("nats-{k}");
        self.publishers[node]
            .publish(SUBJECT, id.clone().into())
            .await
            .map(|()| id)
            .map_err(|e| e.to_string())
    }
}

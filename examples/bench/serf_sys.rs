//! Serf under test: N `serf agent`s on loopback (Serf's `local` timing
//! profile, its fastest), user events sent with coalescing off through
//! each agent's RPC port, and handed to the receivers through Serf's own
//! delivery path: an event handler it runs once per event.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use hearsay::demo::cluster::log_tail;

use crate::free_port;
use crate::workload::System;

pub const EVENT: &str = "bench";

pub struct Serf {
    agents: Vec<Child>,
    rpc: Vec<std::sync::Arc<Mutex<Rpc>>>,
}

impl Serf {
    /// Starts the agents one by one, each joining the first once its RPC
    /// port answers; logs go to `dir`.
    pub async fn start(bench: &Path, dir: &Path, webhooks: &[String]) -> anyhow::Result<Serf> {
        std::fs::create_dir_all(dir)?;
        let mut serf = Serf {
            agents: Vec::new(),
            rpc: Vec::new(),
        };
        let mut first_bind: Option<String> = None;
        for (i, url) in webhooks.iter().enumerate() {
            let bind = format!("127.0.0.1:{}", free_port()?);
            let rpc = format!("127.0.0.1:{}", free_port()?);
            // Serf runs handlers with `sh -c`; `exec` spares a fork.
            let handler = format!(
                "user:{EVENT}=exec '{}' serf-handler '{url}'",
                bench.display()
            );
            let log = dir.join(format!("serf-{i}.log"));
            let mut cmd = Command::new("serf");
            cmd.arg("agent")
                .args(["-node", &format!("node-{i}")])
                .args(["-bind", &bind])
                .args(["-rpc-addr", &rpc])
                .args(["-profile", "local"])
                .args(["-log-level", "warn"])
                .args(["-event-handler", &handler]);
            if let Some(first) = &first_bind {
                // Retried (each second) rather than tried once: at N = 50
                // on 2 busy cores a first join can time out.
                cmd.args(["-retry-join", first.as_str()])
                    .args(["-retry-interval", "1s"]);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log)?)
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start serf")?;
            serf.agents.push(child);
            let client = connect(&rpc)
                .await
                .with_context(|| format!("serf agent {i}:\n{}", log_tail(&log, 10)))?;
            serf.rpc.push(std::sync::Arc::new(Mutex::new(client)));
            first_bind.get_or_insert(bind);
        }
        serf.wait_joined(webhooks.len(), Duration::from_secs(120))
            .await?;
        Ok(serf)
    }

    /// Waits until every agent counts `n` live members.
    async fn wait_joined(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        for rpc in &self.rpc {
            loop {
                let rpc = rpc.clone();
                let alive = tokio::task::spawn_blocking(move || {
                    rpc.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .alive_members()
                })
                .await??;
                if alive >= n {
                    break;
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "serf agents did not join: {alive} of {n} alive"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub fn pids(&self) -> Vec<u32> {
        self.agents.iter().filter_map(Child::id).collect()
    }

    pub async fn stop(mut self) {
        for c in &mut self.agents {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

impl System for Serf {
    async fn publish(&self, node: usize, k: u64) -> Result<String, String> {
        let id = format!("serf-{k}");
        let rpc = self.rpc[node].clone();
        let payload = id.clone().into_bytes();
        let sent = tokio::task::spawn_blocking(move || {
            rpc.lock()
                .unwrap_or_else(|e| e.into_inner())
                .user_event(payload)
        })
        .await
        .map_err(|e| e.to_string())?;
        sent.map(|()| id).map_err(|e| format!("{e:#}"))
    }
}

/// A client of Serf's RPC protocol: msgpack, a header then a body per
/// request, a header (then a body for some commands) per answer.
pub struct Rpc {
    out: TcpStream,
    input: BufReader<TcpStream>,
    seq: u64,
}

#[derive(Serialize)]
struct RequestHeader<'a> {
    #[serde(rename = "Command")]
    command: &'a str,
    #[serde(rename = "Seq")]
    seq: u64,
}

#[derive(Deserialize)]
struct ResponseHeader {
    #[serde(rename = "Seq")]
    seq: u64,
    #[serde(rename = "Error")]
    error: String,
}

#[derive(Serialize)]
struct Handshake {
    #[serde(rename = "Version")]
    version: u32,
}

#[derive(Serialize)]
struct UserEvent<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Payload", with = "serde_bytes")]
    payload: &'a [u8],
    #[serde(rename = "Coalesce")]
    coalesce: bool,
}

#[derive(Deserialize)]
struct Members {
    #[serde(rename = "Members")]
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct Member {
    #[serde(rename = "Status")]
    status: String,
}

async fn connect(addr: &str) -> anyhow::Result<Rpc> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut rpc = Rpc {
                    input: BufReader::new(s.try_clone()?),
                    out: s,
                    seq: 0,
                };
                rpc.call("handshake", &Handshake { version: 1 })?;
                return Ok(rpc);
            }
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).with_context(|| format!("serf RPC at {addr} did not answer"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

impl Rpc {
    fn call(&mut self, command: &str, body: &impl Serialize) -> anyhow::Result<()> {
        self.seq += 1;
        let mut buf = rmp_serde::to_vec_named(&RequestHeader {
            command,
            seq: self.seq,
        })?;
        buf.extend(rmp_serde::to_vec_named(body)?);
        self.out.write_all(&buf)?;
        let h: ResponseHeader = rmp_serde::from_read(&mut self.input)?;
        anyhow::ensure!(
            h.seq == self.seq,
            "serf answered request {} to request {}",
            h.seq,
            self.seq
        );
        anyhow::ensure!(h.error.is_empty(), "serf said: {}", h.error);
        Ok(())
    }

    fn user_event(&mut self, payload: Vec<u8>) -> anyhow::Result<()> {
        self.call(
            "event",
            &UserEvent {
                name: EVENT,
                payload: &payload,
                coalesce: false,
            },
        )
    }

    fn alive_members(&mut self) -> anyhow::Result<usize> {
        self.seq += 1;
        // `members` takes no body.
        let buf = rmp_serde::to_vec_named(&RequestHeader {
            command: "members",
            seq: self.seq,
        })?;
        self.out.write_all(&buf)?;
        let h: ResponseHeader = rmp_serde::from_read(&mut self.input)?;
        anyhow::ensure!(h.error.is_empty(), "serf said: {}", h.error);
        let m: Members = rmp_serde::from_read(&mut self.input)?;
        Ok(m.members.iter().filter(|m| m.status == "alive").count())
    }
}

/// `bench serf-handler URL`: what Serf runs for each user event. The
/// payload (the event's id) is on stdin.
pub fn handler(url: &str) -> anyhow::Result<()> {
    use std::io::Read;
    let mut id = String::new();
    std::io::stdin().read_to_string(&mut id)?;
    crate::post::post_once(url, &crate::post::batch(&[id.trim().to_owned()], "serf"))
}

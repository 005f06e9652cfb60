//! A cluster of real `hearsay run` processes on 127.0.0.1, for the demo and
//! the integration tests. Every node binds port 0 and reports its addresses
//! in a ready file; the cluster then writes a peers file that every node
//! watches (static discovery), so no port is ever guessed in advance.
//! Children are killed when the cluster is dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::Method;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::client::ApiClient;
use crate::commands::PeerInfo;

mod launch;

/// What a node wrote to its ready file.
#[derive(Clone, Debug, Deserialize)]
pub struct ReadyInfo {
    pub node: String,
    pub pid: u32,
    pub peer_id: String,
    pub origin: String,
    pub gossip: SocketAddr,
    pub api: SocketAddr,
    pub metrics: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `hearsay` binary to run.
    pub binary: PathBuf,
    /// Working directory: key, peers file, ready files, logs.
    pub dir: PathBuf,
    /// The gossip key every node shares; `None` runs with `--insecure`.
    pub key: Option<Vec<u8>>,
    /// More `hearsay run` arguments for every node.
    pub extra_args: Vec<String>,
    /// How long a node may take to start.
    pub start_timeout: Duration,
}

/// How one node is started.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    pub webhook_url: String,
    /// The IP the node's listeners bind (port 0 each): default 127.0.0.1;
    /// a network namespace's own address when the binary runs in one.
    pub listen_ip: Option<IpAddr>,
    /// Gossip listener (default the listen IP, port 0).
    pub gossip_addr: Option<SocketAddr>,
    /// The address peers know the node by, listed in the peers file instead
    /// of the listener's (`--advertise-addr`: a proxy in front of it, say).
    pub advertise: Option<SocketAddr>,
    /// Leave out the cluster's peers file (for Kubernetes discovery).
    pub no_peers_file: bool,
    /// Extra environment (the child's environment is otherwise empty).
    pub env: Vec<(String, String)>,
    /// Extra `hearsay run` arguments.
    pub args: Vec<String>,
    /// Another `hearsay` binary for this node (an older version, to test a
    /// rolling upgrade); default the cluster's.
    pub binary: Option<PathBuf>,
    /// A command the node runs under (`valgrind --tool=callgrind`, say):
    /// the program and its arguments, the binary and its own after them.
    pub wrapper: Vec<String>,
}

pub struct NodeProc {
    child: Child,
    pub ready: ReadyInfo,
    pub log: PathBuf,
    pub webhook_url: String,
}

pub struct LocalCluster {
    opts: ClusterOptions,
    nodes: Vec<Option<NodeProc>>,
    /// Gossip addresses listed in the peers file, by node.
    listed: Vec<Option<SocketAddr>>,
    /// How each node was started, kept for restarts.
    specs: Vec<NodeSpec>,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The last lines of a log, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl LocalCluster {
    /// An empty cluster; add nodes with [`LocalCluster::add_node`].
    pub fn new(opts: ClusterOptions) -> anyhow::Result<LocalCluster> {
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("cannot create {}", opts.dir.display()))?;
        if let Some(key) = &opts.key {
            write_atomically(&opts.dir.join("key"), key)?;
        }
        write_atomically(&opts.dir.join("peers"), b"")?;
        Ok(LocalCluster {
            opts,
            nodes: Vec::new(),
            listed: Vec::new(),
            specs: Vec::new(),
        })
    }

    /// Starts one node per webhook URL, then waits until every node lists
    /// every other as a peer.
    pub async fn start(
        opts: ClusterOptions,
        webhook_urls: &[String],
    ) -> anyhow::Result<LocalCluster> {
        let mut c = LocalCluster::new(opts)?;
        for url in webhook_urls {
            c.spawn(NodeSpec {
                webhook_url: url.clone(),
                ..NodeSpec::default()
            })
            .await?;
        }
        c.publish_peers()?;
        c.wait_all_see_all(c.opts.start_timeout).await?;
        Ok(c)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    pub fn node(&self, i: usize) -> Option<&NodeProc> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    /// A client of node `i`'s API, with the cluster's `--api-token` (from
    /// its extra arguments) if it has one.
    pub fn api(&self, i: usize) -> ApiClient {
        let n = self.node(i).expect("node is running");
        let args = &self.opts.extra_args;
        let token = args
            .iter()
            .position(|a| a == "--api-token")
            .and_then(|at| args.get(at + 1))
            .cloned();
        ApiClient::new(n.ready.api, token)
    }

    /// Starts a new node (with extra arguments) and adds it to the peers
    /// file. Returns its index.
    pub async fn add_node(
        &mut self,
        webhook_url: String,
        extra: &[String],
    ) -> anyhow::Result<usize> {
        self.add(NodeSpec {
            webhook_url,
            args: extra.to_vec(),
            ..NodeSpec::default()
        })
        .await
    }

    /// Starts a node as `spec` says (and lists it in the peers file unless
    /// told not to). Returns its index.
    pub async fn add(&mut self, spec: NodeSpec) -> anyhow::Result<usize> {
        let i = self.spawn(spec).await?;
        self.publish_peers()?;
        Ok(i)
    }

    async fn spawn(&mut self, spec: NodeSpec) -> anyhow::Result<usize> {
        let i = self.nodes.len();
        let proc = self.launch(i, &spec).await?;
        self.listed
            .push((!spec.no_peers_file).then_some(spec.advertise.unwrap_or(proc.ready.gossip)));
        self.nodes.push(Some(proc));
        self.specs.push(spec);
        Ok(i)
    }

    /// Writes every listed node's gossip address into the peers file.
    pub fn publish_peers(&self) -> anyhow::Result<()> {
        let text: String = self
            .listed
            .iter()
            .flatten()
            .map(|a| format!("{a}\n"))
            .collect();
        write_atomically(&self.opts.dir.join("peers"), text.as_bytes())?;
        Ok(())
    }

    /// Lists another address in the peers file (a peer that is not one of
    /// these processes: a test's own client, say).
    pub fn list_extra(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        self.listed.push(Some(addr));
        self.nodes.push(None);
        self.specs.push(NodeSpec::default());
        self.publish_peers()
    }

    /// Takes a node out of the peers file (as Kubernetes would once its pod
    /// is gone).
    pub fn unlist(&mut self, i: usize) -> anyhow::Result<()> {
        self.listed[i] = None;
        self.publish_peers()
    }

    pub async fn peers_of(&self, i: usize) -> anyhow::Result<Vec<PeerInfo>> {
        Ok(self.api(i).json(Method::GET, "/v1/peers", None).await?)
    }

    /// Waits until every running node lists every other running node.
    pub async fn wait_all_see_all(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let want = self.nodes.iter().flatten().count() - 1;
        for i in 0..self.nodes.len() {
            if self.node(i).is_none() {
                continue;
            }
            loop {
                let n = self.peers_of(i).await.map(|p| p.len()).unwrap_or(0);
                if n >= want {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("node {i} sees {n} peers, not {want}, after {within:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The node's `/metrics` text.
    pub async fn scrape(&self, i: usize) -> anyhow::Result<String> {
        let n = self.node(i).context("node is not running")?;
        let bytes = ApiClient::new(n.ready.metrics, None)
            .call(Method::GET, "/metrics", None)
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// One sample's value from the node's metrics (0 if absent).
    pub async fn metric(&self, i: usize, series: &str) -> anyhow::Result<f64> {
        let text = self.scrape(i).await?;
        Ok(text
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0))
    }

    fn signal(&self, i: usize, sig: Signal) -> anyhow::Result<()> {
        let n = self.node(i).context("node is not running")?;
        let pid = Pid::from_raw(i32::try_from(n.ready.pid)?);
        kill(pid, sig).with_context(|| format!("cannot send {sig} to node {i}"))?;
        Ok(())
    }

    /// SIGKILL: the node dies with everything it held.
    pub async fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, Signal::SIGKILL)?;
        if let Some(mut n) = self.nodes[i].take() {
            let _ = n.child.wait().await;
        }
        Ok(())
    }

    /// SIGTERM, then the exit status (or an error if it takes too long).
    pub async fn terminate(&mut self, i: usize, within: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(i, Signal::SIGTERM)?;
        let mut n = self.nodes[i].take().context("node is not running")?;
        match tokio::time::timeout(within, n.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = n.child.start_kill();
                bail!(
                    "node {i} did not exit within {within:?} of SIGTERM:\n{}",
                    log_tail(&n.log, 20)
                )
            }
        }
    }

    /// Starts a stopped node again with another binary (`None`: the
    /// cluster's), as a rolling upgrade does.
    pub async fn restart_with_binary(
        &mut self,
        i: usize,
        binary: Option<PathBuf>,
    ) -> anyhow::Result<()> {
        self.specs[i].binary = binary;
        self.restart(i).await
    }

    /// Starts a stopped node again: a new process, new ports, same webhook.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.node(i).is_some() {
            bail!("node {i} is still running");
        }
        let spec = self.specs[i].clone();
        let proc = self.launch(i, &spec).await?;
        self.listed[i] =
            (!spec.no_peers_file).then_some(spec.advertise.unwrap_or(proc.ready.gossip));
        self.nodes[i] = Some(proc);
        self.publish_peers()
    }

    /// SIGTERM to every node; waits up to `within` for each.
    pub async fn shutdown(mut self, within: Duration) {
        for i in 0..self.nodes.len() {
            if self.node(i).is_some() {
                let _ = self.signal(i, Signal::SIGTERM);
            }
        }
        for n in self.nodes.iter_mut().flatten() {
            if tokio::time::timeout(within, n.child.wait()).await.is_err() {
                let _ = n.child.start_kill();
            }
        }
    }
}

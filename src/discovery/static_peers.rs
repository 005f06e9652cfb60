//! Static discovery: a fixed list of `host:port`, and/or a file of them
//! (one per line, `#` comments) that is re-read when it changes. Names are
//! re-resolved every few seconds; a name that stops resolving keeps its
//! last address. A peer's identity is its resolved `ip:port`, so every node
//! derives the same id for it whatever name it was listed under.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::sync::watch;

use super::Publisher;
use crate::gossip::{Peer, PeerSet};
use crate::metrics::Metrics;

const POLL: Duration = Duration::from_secs(1);
const RESOLVE_EVERY: u32 = 5;

#[derive(Debug, Error)]
#[error("cannot tell which address peers know this node by: {0}")]
pub struct SelfUnknown(pub String);

/// Resolves one `host:port` to its first address.
async fn resolve(entry: &str) -> std::io::Result<SocketAddr> {
    if let Ok(a) = entry.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(entry)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// The address this node is known by. In order: the advertised address;
/// the bound gossip address if it names an IP; the listed peer whose port
/// is ours and whose IP this host can bind (it is one of ours).
pub async fn find_self(
    entries: &[String],
    bound: SocketAddr,
    advertise: Option<SocketAddr>,
) -> Result<SocketAddr, SelfUnknown> {
    if let Some(a) = advertise {
        return Ok(a);
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    for e in entries {
        if let Ok(addr) = resolve(e).await
            && addr.port() == bound.port()
            && std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0)).is_ok()
        {
            return Ok(addr);
        }
    }
    Err(SelfUnknown(format!(
        "the gossip listener is on {bound}; set --advertise-addr (or POD_IP)"
    )))
}

/// Entries of a peers file: one `host:port` per line or comma-separated,
/// blank lines and `#` comments ignored.
pub fn parse_peers_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

pub struct StaticDiscovery {
    pub entries: Vec<String>,
    pub file: Option<PathBuf>,
    pub me: SocketAddr,
}

pub async fn run(
    cfg: StaticDiscovery,
    out: Publisher,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = Resolved {
        cfg,
        metrics,
        known: HashMap::new(),
        file_entries: Vec::new(),
        file_stamp: None,
    };
    let mut ticks = 0u32;
    let mut poll = crate::clock::shared_ticks(POLL);
    loop {
        let changed_list = state.reread_file() || ticks == 0;
        if changed_list || ticks.is_multiple_of(RESOLVE_EVERY) {
            out.publish(PeerSet::new(state.resolve_all().await));
            out.listed();
        }
        ticks = ticks.wrapping_add(1);
        tokio::select! {
            _ = poll.tick() => {}
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
    }
}

/// The static list, the peers file's list, and the last address each
/// entry resolved to.
struct Resolved {
    cfg: StaticDiscovery,
    metrics: Arc<Metrics>,
    known: HashMap<String, SocketAddr>,
    file_entries: Vec<String>,
    file_stamp: Option<SystemTime>,
}

impl Resolved {
    /// Re-reads the peers file if it changed; whether its list did.
    fn reread_file(&mut self) -> bool {
        let Some(path) = &self.cfg.file else {
            return false;
        };
        let stamp = modified(path);
        if stamp == self.file_stamp {
            return false;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.file_entries = parse_peers_file(&text);
                self.file_stamp = stamp;
                true
            }
            Err(e) => {
                self.count_error();
                tracing::warn!(file = %path.display(), error = %e, "cannot read the peers file; keeping the last list");
                false
            }
        }
    }

    /// Every entry's address, resolved now; an entry that fails keeps its
    /// last address, or is skipped until it first resolves.
    async fn resolve_all(&mut self) -> Vec<Peer> {
        let entries: Vec<String> = self
            .cfg
            .entries
            .iter()
            .chain(&self.file_entries)
            .cloned()
            .collect();
        let mut peers = Vec::new();
        for entry in entries {
            let addr = match resolve(&entry).await {
                Ok(a) => {
                    self.known.insert(entry.clone(), a);
                    a
                }
                Err(e) => {
                    self.count_error();
                    let Some(a) = self.known.get(&entry) else {
                        tracing::warn!(peer = %entry, error = %e, "cannot resolve; skipped for now");
                        continue;
                    };
                    tracing::warn!(peer = %entry, error = %e, last = %a, "cannot resolve; keeping its last address");
                    *a
                }
            };
            if addr != self.cfg.me {
                peers.push(Peer {
                    name: entry.as_str().into(),
                    ..Peer::new(&addr.to_string(), addr)
                });
            }
        }
        peers
    }

    fn count_error(&self) {
        self.metrics
            .membership
            .discovery_errors
            .with_label_values(&["static"])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_file_takes_lines_commas_and_comments() {
        let text = "# the cluster\n127.0.0.1:1, 127.0.0.1:2\n\n  node-c:7946  # third\n";
        assert_eq!(
            parse_peers_file(text),
            vec!["127.0.0.1:1", "127.0.0.1:2", "node-c:7946"]
        );
    }

    #[tokio::test]
    async fn this_node_is_found_by_a_listed_address_it_can_bind() {
        let bound: SocketAddr = "0.0.0.0:7001".parse().unwrap();
        let entries = vec!["192.0.2.10:7001".to_owned(), "127.0.0.1:7001".to_owned()];
        let me = find_self(&entries, bound, None).await.unwrap();
        assert_eq!(me, "127.0.0.1:7001".parse().unwrap());
        let none = find_self(&["192.0.2.10:7001".to_owned()], bound, None).await;
        assert!(none.is_err());
        let given: SocketAddr = "10.0.0.9:7001".parse().unwrap();
        assert_eq!(
            find_self(&entries, bound, Some(given)).await.unwrap(),
            given
        );
    }
}

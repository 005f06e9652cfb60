//! Static discovery: a fixed list of `host:port`, and/or a file of them
//! (one per line, `#` comments) that is re-read when it changes. Names are
//! re-resolved every few seconds; a name that stops resolving keeps its
//! last address. A peer's identity is its resolved `ip:port`, so every node
//! derives the same id for it whatever name it was listed under.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::sync::watch;

use crate::gossip::{Peer, PeerSet};
use crate::metrics::Metrics;
use crate::metrics::server::Readiness;

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
    members_tx: watch::Sender<Arc<PeerSet>>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut known: HashMap<String, SocketAddr> = HashMap::new();
    let mut file_entries: Vec<String> = Vec::new();
    let mut file_stamp: Option<SystemTime> = None;
    let mut ticks = 0u32;
    loop {
        let mut changed_list = ticks == 0;
        if let Some(path) = &cfg.file {
            let stamp = modified(path);
            if stamp != file_stamp {
                match std::fs::read_to_string(path) {
                    Ok(text) => {
                        file_entries = parse_peers_file(&text);
                        file_stamp = stamp;
                        changed_list = true;
                    }
                    Err(e) => {
                        metrics
                            .membership
                            .discovery_errors
                            .with_label_values(&["static"])
                            .inc();
                        tracing::warn!(file = %path.display(), error = %e, "cannot read the peers file; keeping the last list");
                    }
                }
            }
        }
        if changed_list || ticks.is_multiple_of(RESOLVE_EVERY) {
            let mut peers = Vec::new();
            for entry in cfg.entries.iter().chain(&file_entries) {
                let addr = match resolve(entry).await {
                    Ok(a) => {
                        known.insert(entry.clone(), a);
                        a
                    }
                    Err(e) => {
                        metrics
                            .membership
                            .discovery_errors
                            .with_label_values(&["static"])
                            .inc();
                        match known.get(entry) {
                            Some(a) => {
                                tracing::warn!(peer = %entry, error = %e, last = %a, "cannot resolve; keeping its last address");
                                *a
                            }
                            None => {
                                tracing::warn!(peer = %entry, error = %e, "cannot resolve; skipped for now");
                                continue;
                            }
                        }
                    }
                };
                if addr == cfg.me {
                    continue;
                }
                peers.push(Peer {
                    name: entry.as_str().into(),
                    ..Peer::new(&addr.to_string(), addr)
                });
            }
            let set = PeerSet::new(peers);
            members_tx.send_if_modified(|cur| {
                if **cur == set {
                    false
                } else {
                    *cur = Arc::new(set);
                    true
                }
            });
            readiness.discovery_ready.store(true, Ordering::Relaxed);
        }
        ticks = ticks.wrapping_add(1);
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
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

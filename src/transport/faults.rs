//! Fault injection for tests and experiments, off unless configured: drop
//! a share of outbound frames, or block peers listed in a file (re-read
//! every 100 ms). Two nodes that block each other are partitioned.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use rand::RngExt;

#[derive(Debug)]
pub struct Faults {
    drop: f64,
    block_file: Option<PathBuf>,
    blocked: RwLock<HashSet<SocketAddr>>,
}

impl Faults {
    pub fn new(drop: f64, block_file: Option<PathBuf>) -> Faults {
        Faults {
            drop,
            block_file,
            blocked: RwLock::new(HashSet::new()),
        }
    }

    /// Whether a frame to `to` is to be dropped.
    pub fn should_drop(&self, to: SocketAddr) -> bool {
        if self
            .blocked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&to)
        {
            return true;
        }
        self.drop > 0.0 && rand::rng().random_bool(self.drop)
    }

    /// Keeps the blocked set in step with the file.
    pub async fn follow_block_file(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let Some(path) = &self.block_file else {
            return;
        };
        loop {
            let set: HashSet<SocketAddr> = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            *self.blocked.write().unwrap_or_else(|e| e.into_inner()) = set;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = crate::shutdown::requested(&mut shutdown) => return,
            }
        }
    }
}

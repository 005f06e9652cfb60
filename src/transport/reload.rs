//! Key rotation without restarts: the key files are re-read every second
//! and, when their content changed, the keyring in use is replaced.
//!
//! Kubernetes updates a mounted Secret by writing a new directory and
//! swapping a symlink, so the files' content changes atomically; polling
//! the content sees exactly that, and works the same for files changed by
//! hand. A file that cannot be read (mid-update, or a key too short) keeps
//! the current keyring and is retried.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::keyring::{Keyring, SharedKeyring};
use crate::metrics::Metrics;
use crate::settings::KeySource;

pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

fn snapshot(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

pub async fn run(
    source: KeySource,
    keys: SharedKeyring,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let KeySource::Files { primary, secondary } = &source else {
        return;
    };
    let files: Vec<PathBuf> = std::iter::once(primary.clone())
        .chain(secondary.clone())
        .collect();
    let mut last = snapshot(&files);
    let mut ticks = crate::clock::shared_ticks(RELOAD_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
        let now = snapshot(&files);
        if now == last {
            continue;
        }
        match Keyring::load(&source) {
            Ok(k) => {
                tracing::info!(
                    secondary = !k.is_insecure() && now.get(1).is_some_and(Option::is_some),
                    "gossip keys changed; reloaded"
                );
                keys.replace(k);
                metrics
                    .transport
                    .key_reloads
                    .with_label_values(&["ok"])
                    .inc();
                last = now;
            }
            Err(e) => {
                metrics
                    .transport
                    .key_reloads
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(error = %e, "gossip keys changed but cannot be loaded; keeping the current ones");
            }
        }
    }
}

//! The shutdown signal every task watches: a `watch` channel that turns
//! true once.

use tokio::sync::watch;

/// Resolves once shutdown is requested (or the sender is gone). The guard
/// `wait_for` returns is dropped here, so callers stay `Send`.
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

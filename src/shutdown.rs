//! The shutdown signal every task watches: a `watch` channel that turns
//! true once; and the process signals that start it.

use tokio::sync::watch;

/// Resolves once shutdown is requested (or the sender is gone). The guard
/// `wait_for` returns is dropped here, so callers stay `Send`.
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Resolves on SIGTERM or SIGINT, naming which. Kubernetes, `kill` and
/// Ctrl-C all stop a process the same way.
pub async fn signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

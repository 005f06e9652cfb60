//! The shutdown signal every task watches: a `watch` channel that turns
//! true once; and the process signals that start it.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

/// Resolves once shutdown is requested (or the sender is gone). The guard
/// `wait_for` returns is dropped here, so callers stay `Send`.
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// SIGTERM and SIGINT, listened for from the moment this is made: a signal
/// that arrives before anyone awaits [`Signals::recv`] is kept, not lost.
/// Kubernetes, `kill` and Ctrl-C all stop a process the same way.
pub struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    /// Starts listening. Must be called inside a tokio runtime.
    pub fn listen() -> Signals {
        let open = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        Signals {
            term: open(SignalKind::terminate(), "SIGTERM"),
            int: open(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Resolves on the next SIGTERM or SIGINT, naming which.
    pub async fn recv(&mut self) -> &'static str {
        async fn next(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => "SIGTERM",
            _ = next(&mut self.int) => "SIGINT",
        }
    }
}

//! The shutdown signal every task watches: a `watch` channel that turns
//! true once; and the process signals that start it.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

/// Resolves once shutdown is requested (or the sender is gone). The guard
/// `wait_for` returns is dropped here, so callers stay `Send`.
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Set by a parent (the demo, a test cluster) for its `hearsay` children:
/// the pid they must not outlive.
pub const PARENT_PID_ENV: &str = "HEARSAY_PARENT_PID";

/// With [`PARENT_PID_ENV`] set, asks the kernel to send this process
/// SIGTERM when its parent dies (`PR_SET_PDEATHSIG`, through nix's safe
/// wrapper), however the parent ends: a signal, a closed stdout, a panic or
/// SIGKILL. If the parent is already gone, the process exits at once.
pub fn stop_with_parent() {
    let Some(parent) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        eprintln!("hearsay: cannot follow the parent process: {e}");
        return;
    }
    // The parent may have died between our fork and the prctl.
    if nix::unistd::getppid().as_raw() != parent {
        eprintln!("hearsay: the parent process {parent} is gone; exiting");
        std::process::exit(1);
    }
}

/// SIGTERM, SIGINT and SIGHUP, listened for from the moment this is made: a
/// signal that arrives before anyone awaits [`Signals::recv`] is kept, not
/// lost. Kubernetes, `kill`, Ctrl-C and a closed terminal all stop a
/// process the same way.
pub struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
    hup: Option<Signal>,
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
            hup: open(SignalKind::hangup(), "SIGHUP"),
        }
    }

    /// Resolves on the next SIGTERM, SIGINT or SIGHUP, naming which.
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
            _ = next(&mut self.hup) => "SIGHUP",
        }
    }
}

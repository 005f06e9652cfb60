//! The metrics and probes listener: `/metrics` (Prometheus text format),
//! `/healthz` (the process is serving) and `/readyz` (listeners up and
//! discovery has produced its first peer set).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use tokio::sync::watch;

use super::Metrics;
use crate::http::{self, Body};

/// What `/readyz` reports on.
#[derive(Debug)]
pub struct Readiness {
    pub listeners_up: AtomicBool,
    /// Whether discovery has listed its peers once (discovery's own report).
    pub discovery_listed: watch::Receiver<bool>,
}

impl Readiness {
    pub fn new(discovery_listed: watch::Receiver<bool>) -> Readiness {
        Readiness {
            listeners_up: AtomicBool::new(false),
            discovery_listed,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.listeners_up.load(Ordering::Relaxed) && *self.discovery_listed.borrow()
    }
}

/// Asks the owner to copy its counts into the metrics, and waits for it
/// (briefly: a stopping owner does not hold a scrape up).
pub type Sync = tokio::sync::mpsc::Sender<crate::commands::Command>;

pub async fn handle(
    req: Request<Incoming>,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    sync: Sync,
) -> Response<Body> {
    if req.method() != Method::GET {
        return http::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            // The owner copies its counts at a scrape rather than on a
            // timer: an idle sidecar then wakes only for its own work.
            let (reply, synced) = tokio::sync::oneshot::channel();
            let asked = sync
                .send(crate::commands::Command::SyncMetrics { reply })
                .await;
            if asked.is_ok() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), synced).await;
            }
            metrics.membership.ready.set(i64::from(ready.is_ready()));
            let mut resp = http::text(StatusCode::OK, metrics.render());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/healthz" => http::text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if ready.is_ready() {
                http::text(StatusCode::OK, "ready\n")
            } else if !ready.listeners_up.load(Ordering::Relaxed) {
                http::text(StatusCode::SERVICE_UNAVAILABLE, "listeners starting\n")
            } else {
                http::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "waiting for discovery's first peer set\n",
                )
            }
        }
        _ => http::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "try /metrics, /healthz or /readyz",
        ),
    }
}

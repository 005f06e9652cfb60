//! A webhook receiver: what an app does with hearsay's batches, reduced to
//! recording them. The demo runs one per node, the tests use it to check
//! what arrived, and `hearsay receiver` is the example app (it logs each
//! event). It can be told to fail, to play a broken app.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::{self, Body, ServerLimits};

/// One CloudEvent as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub kind: String,
    pub source: String,
    pub data: serde_json::Value,
    pub at: Instant,
}

#[derive(Deserialize)]
struct WireEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    source: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// How the receiver answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Accept = 0,
    /// 500: a retryable failure.
    Fail = 1,
    /// 400: a permanent rejection.
    Reject = 2,
    /// Keeps the events, then answers 200 only after [`SLOW_ANSWER`]: an
    /// app slower than the sidecar's webhook timeout.
    Slow = 3,
}

/// How long a [`Mode::Slow`] receiver takes to answer.
pub const SLOW_ANSWER: Duration = Duration::from_secs(2);

struct State {
    // A std mutex: held only to push or copy, never across an await.
    events: Mutex<Vec<Received>>,
    requests: Mutex<u64>,
    mode: AtomicU8,
    log: bool,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts receiving on `addr` (port 0 picks a free one). With `log`,
    /// every event is also logged (the example app).
    pub async fn start(addr: SocketAddr, log: bool) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            events: Mutex::new(Vec::new()),
            requests: Mutex::new(0),
            mode: AtomicU8::new(Mode::Accept as u8),
            log,
        });
        let (stop, stop_rx) = watch::channel(false);
        let s = state.clone();
        let task = tokio::spawn(http::serve(
            listener,
            move |req| handle(req, s.clone()),
            ServerLimits::default(),
            stop_rx,
            Duration::from_secs(1),
        ));
        Ok(Receiver {
            addr,
            state,
            stop,
            task,
        })
    }

    /// Where hearsay should deliver.
    pub fn url(&self) -> String {
        format!("http://{}/hearsay", self.addr)
    }

    pub fn events(&self) -> Vec<Received> {
        self.state
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The events from the `start`-th on (a cursor for polling without
    /// copying everything each time).
    pub fn events_from(&self, start: usize) -> Vec<Received> {
        let events = self.state.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .get(start..)
            .map(<[Received]>::to_vec)
            .unwrap_or_default()
    }

    /// How many events have arrived so far.
    pub fn count(&self) -> usize {
        self.state
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Webhook requests seen, whatever the answer.
    pub fn requests(&self) -> u64 {
        *self
            .state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Stops listening (the port is closed, as if the app died).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Response<Body> {
    if req.method() == Method::GET {
        return http::text(StatusCode::OK, "ready\n");
    }
    if req.method() != Method::POST {
        return http::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "POST batches here",
        );
    }
    *state.requests.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    match state.mode.load(Ordering::Relaxed) {
        1 => return http::error(StatusCode::INTERNAL_SERVER_ERROR, "failing", "told to fail"),
        2 => return http::error(StatusCode::BAD_REQUEST, "rejecting", "told to reject"),
        _ => {}
    }
    let at = Instant::now();
    let body = match http::read_body(req.into_body(), 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return http::error(StatusCode::BAD_REQUEST, "unreadable", &e.to_string()),
    };
    let batch: Vec<WireEvent> = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return http::error(StatusCode::BAD_REQUEST, "not_a_batch", &e.to_string()),
    };
    let slow = state.mode.load(Ordering::Relaxed) == Mode::Slow as u8;
    {
        let mut events = state.events.lock().unwrap_or_else(|e| e.into_inner());
        for e in batch {
            if state.log {
                tracing::info!(id = %e.id, kind = %e.kind, source = %e.source, data = %e.data, "received");
            }
            events.push(Received {
                id: e.id,
                kind: e.kind,
                source: e.source,
                data: e.data,
                at,
            });
        }
    }
    if slow {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    http::text(StatusCode::OK, "ok\n")
}

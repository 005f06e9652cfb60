//! The webhook worker: one request in flight to the app at a time.
//!
//! - 2xx: delivered.
//! - Connect errors, timeouts, 429 and 5xx: the batch goes back to the
//!   front of the queue and is retried with exponential backoff and jitter.
//!   After a timeout the app may have processed the batch (it was only slow
//!   to answer), so the retry can deliver its events a second time: counted
//!   in `hearsay_webhook_redelivered_total`.
//! - Other 4xx: the app refuses these events for good; counted and logged
//!   with the response body.
//! - Readiness gating: until the app has answered once (the probe path if
//!   configured, else a first successful delivery), failures do not count
//!   against the retry budget; events simply wait.
//! - Once ready, an app that keeps failing past the retry budget gets a
//!   flush instead of its backlog (the queue turns pending invalidations
//!   into one flush of everything, delivered when the app is back).

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::cloudevents::{CONTENT_TYPE, Encoder};
use super::health::{Health, error_chain};
use crate::clock::Clock;
use crate::commands::{BatchAnswer, BatchOutcome, Command};
use crate::delivery::queue::AppMessage;
use crate::gossip::Origin;
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub url: Uri,
    pub probe_path: Option<String>,
    pub timeout: Duration,
    pub retry_budget: Duration,
    /// This outlet's index in the owner.
    pub outlet: usize,
}

/// How often a gated worker tries again.
const GATED_RETRY: Duration = Duration::from_millis(250);

enum Outcome {
    Success,
    Retryable(String),
    /// No answer in time: the app may or may not have the batch.
    TimedOut(String),
    Rejected(StatusCode, String),
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub async fn run(
    cfg: WebhookConfig,
    origin: Origin,
    cmd_tx: mpsc::Sender<Command>,
    notify: Arc<Notify>,
    metrics: Arc<Metrics>,
    clock: Clock,
    health: Health,
) {
    let outlet = cfg.outlet;
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times();
    let mut w = Worker {
        cfg,
        client,
        metrics,
        clock,
        health,
        ready: false,
        failing_since: None,
    };
    let mut delays = backoff.build();
    let mut encoder = Encoder::new(origin);
    loop {
        if !w.ready && !w.probe().await {
            tokio::time::sleep(GATED_RETRY).await;
            continue;
        }
        let (reply, answer) = oneshot::channel();
        if cmd_tx
            .send(Command::NextBatch { outlet, reply })
            .await
            .is_err()
        {
            return;
        }
        let batch = match answer.await {
            Err(_) | Ok(BatchAnswer::Done) => return,
            Ok(BatchAnswer::Empty) => {
                // Woken by the owner when something is queued; the timeout
                // only guards against a missed wake-up.
                let _ = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;
                continue;
            }
            Ok(BatchAnswer::Wait(d)) => {
                tokio::time::sleep(d).await;
                continue;
            }
            Ok(BatchAnswer::Batch(b)) => b,
        };
        let body = encoder.encode(&batch, w.clock.now());
        let outcome = w.deliver(body, &batch).await;
        let (done, pause) = w.judge(outcome, batch);
        if matches!(done, BatchOutcome::Acknowledged(_)) {
            delays = backoff.build();
        }
        let done = Command::BatchDone {
            outlet,
            outcome: done,
        };
        if cmd_tx.send(done).await.is_err() {
            return;
        }
        match pause {
            Pause::None => {}
            Pause::Backoff => {
                let delay = delays.next().unwrap_or(Duration::from_secs(2));
                tokio::time::sleep(delay).await;
            }
            Pause::Gated => tokio::time::sleep(GATED_RETRY).await,
        }
    }
}

/// How long the worker waits before asking for the next batch.
enum Pause {
    None,
    /// The next step of the retry backoff.
    Backoff,
    /// The app has not answered yet: a fixed short wait.
    Gated,
}

/// The worker's view of the app: whether it has answered once, and since
/// when it has been failing.
struct Worker {
    cfg: WebhookConfig,
    client: HttpClient,
    metrics: Arc<Metrics>,
    clock: Clock,
    health: Health,
    ready: bool,
    failing_since: Option<Instant>,
}

impl Worker {
    /// With a probe path: whether the app answers it (then it is ready).
    /// Without one, readiness waits for a first delivery.
    async fn probe(&mut self) -> bool {
        let Some(path) = self.cfg.probe_path.clone() else {
            return true;
        };
        match probe(&self.client, &self.cfg, &path).await {
            Ok(()) => {
                tracing::info!(url = %self.cfg.url, "app is ready");
                self.health.succeeded(self.clock.now());
                self.ready = true;
                true
            }
            Err(why) => {
                self.failed(&format!("probe {path}: {why}"));
                false
            }
        }
    }

    /// Posts one batch, timing it; a timeout once ready counts its events
    /// as redelivered when they go again.
    async fn deliver(&self, body: Vec<u8>, batch: &[AppMessage]) -> Outcome {
        let started = Instant::now();
        let outcome = post(&self.client, &self.cfg, body).await;
        self.metrics
            .delivery
            .webhook_latency
            .observe(started.elapsed().as_secs_f64());
        if self.ready && matches!(outcome, Outcome::TimedOut(_)) {
            let events: usize = batch.iter().map(AppMessage::event_count).sum();
            self.metrics
                .delivery
                .webhook_redelivered
                .inc_by(events as u64);
        }
        outcome
    }

    /// What becomes of a batch after `outcome`, and how long to wait
    /// before the next.
    fn judge(&mut self, outcome: Outcome, batch: Vec<AppMessage>) -> (BatchOutcome, Pause) {
        let result = match &outcome {
            Outcome::Success => "success",
            Outcome::Rejected(..) => "rejected",
            _ if !self.ready => "gated",
            _ => "retry",
        };
        self.metrics
            .delivery
            .webhook_requests
            .with_label_values(&[result])
            .inc();
        match outcome {
            Outcome::Success => {
                if !self.ready {
                    tracing::info!(url = %self.cfg.url, "app is ready");
                }
                self.ready = true;
                self.health.succeeded(self.clock.now());
                self.failing_since = None;
                (BatchOutcome::Acknowledged(batch), Pause::None)
            }
            Outcome::Rejected(status, body) => {
                let events: usize = batch.iter().map(AppMessage::event_count).sum();
                tracing::warn!(%status, events, body = %body, "the app rejected a batch; not retrying");
                self.health.rejected(format!("{status}: {body}"));
                (BatchOutcome::Rejected(batch), Pause::None)
            }
            Outcome::Retryable(why) | Outcome::TimedOut(why) if !self.ready => {
                // Gated: the batch waits, and no failure counts yet.
                self.failed(&why);
                (BatchOutcome::Retry(batch), Pause::Gated)
            }
            Outcome::Retryable(why) | Outcome::TimedOut(why) => {
                self.failed(&why);
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.cfg.retry_budget {
                    tracing::warn!(
                        error = %why,
                        failing_for = ?since.elapsed(),
                        "the app kept failing past the retry budget; it gets a flush instead"
                    );
                    self.failing_since = None;
                    (BatchOutcome::GiveUp(batch), Pause::Backoff)
                } else {
                    tracing::debug!(error = %why, "delivery failed; retrying");
                    (BatchOutcome::Retry(batch), Pause::Backoff)
                }
            }
        }
    }

    /// Logs a failed attempt at WARN when the health says one is due.
    fn failed(&self, why: &str) {
        let Some(w) = self
            .health
            .failed(why.to_owned(), self.ready, self.clock.now())
        else {
            return;
        };
        let what = if self.ready {
            "the app is failing; events are retried"
        } else {
            "the app has not answered yet; events wait"
        };
        tracing::warn!(url = %self.cfg.url, error = %why, attempts = w.attempts, "{what}");
    }
}

async fn post(client: &HttpClient, cfg: &WebhookConfig, body: Vec<u8>) -> Outcome {
    let req = Request::builder()
        .method(Method::POST)
        .uri(cfg.url.clone())
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)));
    let req = match req {
        Ok(r) => r,
        Err(e) => return Outcome::Retryable(e.to_string()),
    };
    let resp = match tokio::time::timeout(cfg.timeout, client.request(req)).await {
        Err(_) => return Outcome::TimedOut(format!("timed out after {:?}", cfg.timeout)),
        Ok(Err(e)) => return Outcome::Retryable(error_chain(&e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_success() {
        // Drain the body so the connection goes back to the pool.
        let _ = tokio::time::timeout(cfg.timeout, resp.into_body().collect()).await;
        return Outcome::Success;
    }
    let text = match tokio::time::timeout(cfg.timeout, resp.into_body().collect()).await {
        Ok(Ok(b)) => {
            let b = b.to_bytes();
            String::from_utf8_lossy(&b[..b.len().min(2048)]).into_owned()
        }
        _ => String::new(),
    };
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Outcome::Retryable(format!("{status}: {text}"))
    } else {
        Outcome::Rejected(status, text)
    }
}

/// Whether the app's probe path answers 2xx; else why not.
async fn probe(client: &HttpClient, cfg: &WebhookConfig, path: &str) -> Result<(), String> {
    let mut parts = cfg.url.clone().into_parts();
    parts.path_and_query = path.parse().ok();
    let uri = Uri::from_parts(parts).map_err(|e| e.to_string())?;
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(cfg.timeout, client.request(req)).await {
        Err(_) => Err(format!("timed out after {:?}", cfg.timeout)),
        Ok(Err(e)) => Err(error_chain(&e)),
        Ok(Ok(r)) if r.status().is_success() => Ok(()),
        Ok(Ok(r)) => Err(format!("answered {}", r.status())),
    }
}

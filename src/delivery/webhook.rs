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
    // Logs a failed attempt at WARN when the health says one is due.
    let failed = |why: &str, ready: bool| {
        if let Some(w) = health.failed(why.to_owned(), ready, clock.now()) {
            let what = if ready {
                "the app is failing; events are retried"
            } else {
                "the app has not answered yet; events wait"
            };
            tracing::warn!(url = %cfg.url, error = %why, attempts = w.attempts, "{what}");
        }
    };
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times();
    let mut delays = backoff.build();
    let mut encoder = Encoder::new(origin);
    let mut ready = false;
    let mut failing_since: Option<Instant> = None;
    loop {
        if !ready && let Some(path) = &cfg.probe_path {
            match probe(&client, &cfg, path).await {
                Ok(()) => {
                    tracing::info!(url = %cfg.url, "app is ready");
                    health.succeeded(clock.now());
                    ready = true;
                }
                Err(why) => {
                    failed(&format!("probe {path}: {why}"), false);
                    tokio::time::sleep(GATED_RETRY).await;
                    continue;
                }
            }
        }
        let (reply, answer) = oneshot::channel();
        if cmd_tx.send(Command::NextBatch { reply }).await.is_err() {
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
        let body = encoder.encode(&batch, clock.now());
        let started = Instant::now();
        let outcome = post(&client, &cfg, body).await;
        metrics
            .delivery
            .webhook_latency
            .observe(started.elapsed().as_secs_f64());
        if ready && matches!(outcome, Outcome::TimedOut(_)) {
            let events: usize = batch.iter().map(AppMessage::event_count).sum();
            metrics.delivery.webhook_redelivered.inc_by(events as u64);
        }
        let done = match outcome {
            Outcome::Success => {
                if !ready {
                    tracing::info!(url = %cfg.url, "app is ready");
                }
                ready = true;
                health.succeeded(clock.now());
                failing_since = None;
                delays = backoff.build();
                metrics
                    .delivery
                    .webhook_requests
                    .with_label_values(&["success"])
                    .inc();
                BatchOutcome::Acknowledged(batch)
            }
            Outcome::Rejected(status, body) => {
                let events: usize = batch.iter().map(AppMessage::event_count).sum();
                tracing::warn!(%status, events, body = %body, "the app rejected a batch; not retrying");
                health.rejected(format!("{status}: {body}"));
                metrics
                    .delivery
                    .webhook_requests
                    .with_label_values(&["rejected"])
                    .inc();
                BatchOutcome::Rejected(batch)
            }
            Outcome::Retryable(why) | Outcome::TimedOut(why) if !ready => {
                failed(&why, false);
                metrics
                    .delivery
                    .webhook_requests
                    .with_label_values(&["gated"])
                    .inc();
                let _ = cmd_tx
                    .send(Command::BatchDone(BatchOutcome::Retry(batch)))
                    .await;
                tokio::time::sleep(GATED_RETRY).await;
                continue;
            }
            Outcome::Retryable(why) | Outcome::TimedOut(why) => {
                metrics
                    .delivery
                    .webhook_requests
                    .with_label_values(&["retry"])
                    .inc();
                failed(&why, true);
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= cfg.retry_budget {
                    tracing::warn!(
                        error = %why,
                        failing_for = ?since.elapsed(),
                        "the app kept failing past the retry budget; it gets a flush instead"
                    );
                    failing_since = None;
                    BatchOutcome::GiveUp(batch)
                } else {
                    tracing::debug!(error = %why, "delivery failed; retrying");
                    BatchOutcome::Retry(batch)
                }
            }
        };
        let retry = matches!(done, BatchOutcome::Retry(_) | BatchOutcome::GiveUp(_));
        if cmd_tx.send(Command::BatchDone(done)).await.is_err() {
            return;
        }
        if retry {
            let delay = delays.next().unwrap_or(Duration::from_secs(2));
            tokio::time::sleep(delay).await;
        }
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

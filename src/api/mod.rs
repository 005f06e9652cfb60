//! The local API (DESIGN §1, §11) on `--api-addr`: JSON in and out, errors
//! as `{"error":{"code":"…","message":"…"}}`.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/invalidate` | publish an invalidation → `202 {"id"}` |
//! | `PUT /v1/config/{key}` | set a config value (the body) → `202 {"id"}` |
//! | `DELETE /v1/config/{key}` | delete it → `202 {"id"}` |
//! | `GET /v1/config`, `GET /v1/config/{key}` | current values and versions |
//! | `GET /v1/peers` | the peers and their state |
//! | `GET /v1/status` | this node |
//! | `GET /v1/subscribe` | a subscription stream (SSE or NDJSON) |
//! | `?wait=3s` on a publish, `GET /v1/events/{id}` | confirmations |
//!
//! Handlers only parse and answer; every decision is the owner task's.

pub mod confirm;
mod routes;
mod subscribe;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use tokio::sync::{mpsc, oneshot};

use crate::commands::Command;
use crate::gossip::{EventError, PublishError};
use crate::http::{self, Body};

/// Largest request body accepted (an event is far smaller; see the limits).
pub const MAX_BODY: usize = 1024 * 1024;

pub struct ApiCtx {
    pub cmd_tx: mpsc::Sender<Command>,
    pub token: Option<String>,
    pub shutting_down: Arc<AtomicBool>,
    /// `hearsay_publish_refused_total{reason="shutting_down"}`.
    pub refused_shutting_down: prometheus::IntCounter,
    /// The subscription streams, unless `--delivery webhook`.
    pub streams: Option<Arc<crate::delivery::stream::Hub>>,
    pub clock: crate::clock::Clock,
    /// `hearsay_confirm_waits_total`, for the waits that run out here.
    pub waits: prometheus::IntCounterVec,
}

pub async fn handle(req: Request<Incoming>, ctx: Arc<ApiCtx>) -> Response<Body> {
    if let Some(token) = &ctx.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut r = http::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    routes::route(req, &ctx).await
}

/// Compares without stopping at the first difference, so response time
/// does not tell how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sends a command to the owner and waits for its answer.
async fn ask<T>(
    ctx: &ApiCtx,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, Response<Body>> {
    let unavailable = || {
        http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the sidecar is shutting down",
        )
    };
    let (tx, rx) = oneshot::channel();
    ctx.cmd_tx.send(make(tx)).await.map_err(|_| unavailable())?;
    rx.await.map_err(|_| unavailable())
}

/// The answer to a refused publish: 400 for bad input, 413 over a size
/// limit, 429 with `Retry-After` over the rate limit.
fn publish_error(e: &PublishError) -> Response<Body> {
    match e {
        PublishError::RateLimited { retry_after } => {
            let secs = retry_after_seconds(*retry_after);
            let mut r = http::error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &e.to_string(),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_str(&secs.to_string())
                    .expect("digits are a valid header"),
            );
            r
        }
        PublishError::Invalid(inner) if inner.is_size_limit() => http::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &inner.to_string(),
        ),
        PublishError::Invalid(inner) => {
            http::error(StatusCode::BAD_REQUEST, code_of(inner), &inner.to_string())
        }
        PublishError::NoSuchKey { .. } => {
            http::error(StatusCode::NOT_FOUND, "not_found", &e.to_string())
        }
    }
}

fn code_of(e: &EventError) -> &'static str {
    match e {
        EventError::NothingToInvalidate => "nothing_to_invalidate",
        EventError::EmptyCacheName => "missing_cache",
        EventError::EmptyKey { .. } => "empty_key",
        EventError::EmptyConfigKey | EventError::ConfigKeyInvalid => "invalid_config_key",
        _ => "invalid",
    }
}

/// `Retry-After` is whole seconds; never tell a client to retry at once.
fn retry_after_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn shutting_down(ctx: &ApiCtx) -> Option<Response<Body>> {
    ctx.shutting_down.load(Ordering::Relaxed).then(|| {
        ctx.refused_shutting_down.inc();
        http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the sidecar is shutting down and takes no new publishes",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
    }

    #[test]
    fn size_limits_are_413_and_bad_input_400() {
        let big = PublishError::Invalid(EventError::TooManyKeys { count: 5, max: 1 });
        assert_eq!(publish_error(&big).status(), StatusCode::PAYLOAD_TOO_LARGE);
        let bad = PublishError::Invalid(EventError::NothingToInvalidate);
        assert_eq!(publish_error(&bad).status(), StatusCode::BAD_REQUEST);
        let limited = PublishError::RateLimited {
            retry_after: Duration::from_millis(300),
        };
        let r = publish_error(&limited);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}

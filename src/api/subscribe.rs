//! `GET /v1/subscribe`: a subscription stream (see `delivery::stream`).
//!
//! - `text/event-stream` by default; `Accept: application/x-ndjson` or
//!   `?format=ndjson` for one CloudEvent per line.
//! - `?cache=a&cache=b`: only those caches' invalidations and flushes;
//!   flushes of every cache and config always pass.
//! - `Last-Event-ID` (or `?last_event_id=`, for clients that cannot set
//!   headers): resume right after that event.

use std::convert::Infallible;

use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode, header};

use super::ApiCtx;
use super::routes::percent_decode;
use crate::delivery::stream::{Format, Refused, Start};
use crate::http::{self, Body};

/// Cache filters one stream may name.
const MAX_CACHES: usize = 256;
/// The longest cache name or event id accepted in a subscription.
const MAX_NAME: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
struct Ask {
    format: Format,
    caches: Vec<String>,
    start: Start,
}

/// The subscription a request asks for, or why it is not one.
fn parse(req: &Request<Incoming>) -> Result<Ask, String> {
    let bad = |msg: String| msg;
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut format = if accept.contains("application/x-ndjson") {
        Format::Ndjson
    } else {
        Format::Sse
    };
    let mut caches = Vec::new();
    let mut last = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| bad("Last-Event-ID is not visible ASCII".into()))?;
    for pair in req.uri().query().unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(&v.replace('+', " "))
            .ok_or_else(|| bad(format!("{k}: not valid percent-encoded UTF-8")))?;
        if v.len() > MAX_NAME {
            return Err(bad(format!("{k}: longer than {MAX_NAME} bytes")));
        }
        match k {
            "cache" if v.is_empty() => return Err(bad("cache: empty name".into())),
            "cache" => caches.push(v),
            "format" => {
                format = match v.as_str() {
                    "sse" => Format::Sse,
                    "ndjson" => Format::Ndjson,
                    _ => return Err(bad(format!("format: {v:?} is not sse or ndjson"))),
                }
            }
            "last_event_id" => last = Some(v),
            _ => {
                return Err(bad(format!(
                    "unknown parameter {k:?} (cache, format, last_event_id)"
                )));
            }
        }
    }
    if caches.len() > MAX_CACHES {
        return Err(bad(format!("more than {MAX_CACHES} caches")));
    }
    let start = match last.filter(|l| !l.is_empty()) {
        Some(id) => Start::After(id),
        None => Start::New,
    };
    Ok(Ask {
        format,
        caches,
        start,
    })
}

pub async fn subscribe(req: Request<Incoming>, ctx: &ApiCtx) -> Response<Body> {
    // A bad request is a 400 whether or not streams are on.
    let ask = match parse(&req) {
        Ok(a) => a,
        Err(why) => return http::error(StatusCode::BAD_REQUEST, "invalid_query", &why),
    };
    let Some(hub) = &ctx.streams else {
        return http::error(
            StatusCode::NOT_FOUND,
            "streams_off",
            "subscription streams are off: start the sidecar with --delivery stream or both",
        );
    };
    let (sub, opened) = match hub.subscribe(ask.caches, ask.start, ctx.clock.now()) {
        Ok(s) => s,
        Err(Refused::TooMany(n)) => {
            let mut r = http::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_subscribers",
                &format!("{n} streams are open already (--stream-max-subscribers)"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return r;
        }
        Err(Refused::Closed) => {
            return http::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the sidecar is shutting down",
            );
        }
    };
    let format = ask.format;
    let preamble = futures::stream::iter(
        Some(bytes::Bytes::from_static(format.preamble())).filter(|b| !b.is_empty()),
    );
    // The subscription moves into the body: dropping it (the client went
    // away) closes the stream.
    let records = futures::stream::unfold(sub, move |mut sub| async move {
        let bytes = sub.next(format).await?;
        Some((bytes, sub))
    });
    let frames = preamble
        .chain(records)
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::CACHE_CONTROL, "no-cache")
        // Proxies such as nginx would otherwise hold records back.
        .header("x-accel-buffering", "no")
        .header("hearsay-stream", opened.as_str())
        .body(StreamBody::new(frames).boxed_unsync())
        .expect("static response parts are valid")
}

//! Request bodies with a size bound, and JSON responses, including the
//! error shape every client sees: `{"error":{"code":"…","message":"…"}}`.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode, header};
use serde::Serialize;
use thiserror::Error;

use super::Body;

#[derive(Debug, Error)]
pub enum BodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("request body could not be read: {0}")]
    ReadFailed(String),
}

/// After refusing a body as too large, how much more of it is read and
/// thrown away (and for how long), so the client, still sending, can read
/// the 413 instead of a connection reset.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads a whole body, refusing it past `limit` bytes without buffering
/// more than that.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(buf.freeze()),
            Some(Err(e)) => return Err(BodyError::ReadFailed(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        drain(body, buf.len() + data.len()).await;
                        return Err(BodyError::TooLarge(limit));
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Reads and discards up to `DRAIN_LIMIT` bytes, for at most `DRAIN_TIME`.
async fn drain(mut body: Incoming, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen < DRAIN_LIMIT {
            match body.frame().await {
                Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(super::full(bytes))
        .expect("static response parts are valid")
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(super::full(body))
        .expect("static response parts are valid")
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: ErrorDetail { code, message },
        },
    )
}

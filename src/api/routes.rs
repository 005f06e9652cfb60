//! The routes: parse the request, ask the owner, shape the answer.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde::Deserialize;

use super::{ApiCtx, MAX_BODY, ask, confirm, shutting_down};
use crate::commands::Command;
use crate::gossip::Invalidation;
use crate::http::{self, Body, BodyError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateRequest {
    cache: String,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    all: bool,
}

pub async fn route(req: Request<Incoming>, ctx: &ApiCtx) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::POST, ["", "v1", "invalidate"]) => invalidate(req, ctx).await,
        (_, ["", "v1", "invalidate"]) => not_allowed("POST"),
        (Method::GET, ["", "v1", "config"]) => config_all(ctx).await,
        (_, ["", "v1", "config"]) => not_allowed("GET"),
        (m, ["", "v1", "config", key]) => {
            let key = match percent_decode(key) {
                Some(k) => k,
                None => {
                    return http::error(
                        StatusCode::BAD_REQUEST,
                        "invalid_config_key",
                        "the key is not valid percent-encoded UTF-8",
                    );
                }
            };
            match m {
                Method::GET => config_one(ctx, &key).await,
                Method::PUT => config_set(req, ctx, key).await,
                Method::DELETE => config_delete(&req, ctx, key).await,
                _ => not_allowed("GET, PUT, DELETE"),
            }
        }
        (Method::GET, ["", "v1", "peers"]) => {
            match ask(ctx, |reply| Command::Peers { reply }).await {
                Ok(peers) => http::json(StatusCode::OK, &peers),
                Err(r) => r,
            }
        }
        (Method::GET, ["", "v1", "status"]) => {
            match ask(ctx, |reply| Command::Status { reply }).await {
                Ok(status) => http::json(StatusCode::OK, &status),
                Err(r) => r,
            }
        }
        (Method::GET, ["", "v1", "openapi.json"]) => openapi(),
        (Method::GET, ["", "v1", "subscribe"]) => super::subscribe::subscribe(req, ctx).await,
        (Method::GET, ["", "v1", "events", id]) => confirm::event(ctx, id).await,
        (_, ["", "v1", "peers" | "status" | "openapi.json" | "subscribe"])
        | (_, ["", "v1", "events", _]) => not_allowed("GET"),
        _ => http::error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {path}"),
        ),
    }
}

/// 405, with the `Allow` header RFC 9110 asks for.
fn not_allowed(allowed: &'static str) -> Response<Body> {
    let mut r = http::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("allowed: {allowed}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    r
}

/// The OpenAPI 3.1 document of this API (`docs/openapi.json`, compiled in).
const OPENAPI: &str = include_str!("../../docs/openapi.json");

fn openapi() -> Response<Body> {
    let mut r = http::text(StatusCode::OK, OPENAPI);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// How long a client may take to send a body (slow clients hold a
/// connection slot).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn body_of(req: Request<Incoming>) -> Result<bytes::Bytes, Response<Body>> {
    let read = tokio::time::timeout(BODY_TIMEOUT, http::read_body(req.into_body(), MAX_BODY));
    let Ok(result) = read.await else {
        return Err(http::error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            &format!("the request body did not arrive within {BODY_TIMEOUT:?}"),
        ));
    };
    result.map_err(|e| match e {
        BodyError::TooLarge(_) => {
            http::error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &e.to_string())
        }
        BodyError::ReadFailed(_) => {
            http::error(StatusCode::BAD_REQUEST, "unreadable_body", &e.to_string())
        }
    })
}

async fn invalidate(req: Request<Incoming>, ctx: &ApiCtx) -> Response<Body> {
    if let Some(r) = shutting_down(ctx) {
        return r;
    }
    let wait = match confirm::wait_of(&req) {
        Ok(w) => w,
        Err(why) => return confirm::bad_query(&why),
    };
    let body = match body_of(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed: InvalidateRequest = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return http::error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()),
    };
    let inv = Invalidation {
        cache: parsed.cache,
        keys: parsed.keys,
        prefixes: parsed.prefixes,
        tags: parsed.tags,
        all: parsed.all,
    };
    confirm::publish(ctx, wait, |wait, reply| Command::Publish {
        inv,
        wait,
        reply,
    })
    .await
}

async fn config_all(ctx: &ApiCtx) -> Response<Body> {
    match ask(ctx, |reply| Command::GetConfig { reply }).await {
        Ok(entries) => http::json(StatusCode::OK, &entries),
        Err(r) => r,
    }
}

async fn config_one(ctx: &ApiCtx, key: &str) -> Response<Body> {
    match ask(ctx, |reply| Command::GetConfig { reply }).await {
        Ok(entries) => match entries.into_iter().find(|e| e.key == key) {
            Some(e) => http::json(StatusCode::OK, &e),
            None => http::error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no config key {key:?}"),
            ),
        },
        Err(r) => r,
    }
}

async fn config_set(req: Request<Incoming>, ctx: &ApiCtx, key: String) -> Response<Body> {
    if let Some(r) = shutting_down(ctx) {
        return r;
    }
    let wait = match confirm::wait_of(&req) {
        Ok(w) => w,
        Err(why) => return confirm::bad_query(&why),
    };
    let body = match body_of(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let value = match String::from_utf8(body.to_vec()) {
        Ok(v) => v,
        Err(_) => {
            return http::error(
                StatusCode::BAD_REQUEST,
                "invalid_utf8",
                "the value must be UTF-8 text",
            );
        }
    };
    confirm::publish(ctx, wait, |wait, reply| Command::SetConfig {
        key,
        value,
        wait,
        reply,
    })
    .await
}

async fn config_delete(req: &Request<Incoming>, ctx: &ApiCtx, key: String) -> Response<Body> {
    if let Some(r) = shutting_down(ctx) {
        return r;
    }
    let wait = match confirm::wait_of(req) {
        Ok(w) => w,
        Err(why) => return confirm::bad_query(&why),
    };
    confirm::publish(ctx, wait, |wait, reply| Command::DeleteConfig {
        key,
        wait,
        reply,
    })
    .await
}

/// Decodes `%XX` escapes; `None` if malformed or not UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn keys_in_paths_are_percent_decoded() {
        assert_eq!(
            percent_decode("feature%20flag").as_deref(),
            Some("feature flag")
        );
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}

//! A client for the local API, used by `hearsay publish`, `config`,
//! `peers`, `status` and the demo.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach the hearsay API at {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("{status} {code}: {message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
        /// From `Retry-After`, on 429.
        retry_after: Option<u64>,
    },
    #[error("unexpected answer from the API: {0}")]
    BadAnswer(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    token: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl ApiClient {
    pub fn new(addr: SocketAddr, token: Option<String>) -> ApiClient {
        ApiClient {
            addr,
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
            timeout: Duration::from_secs(10),
        }
    }

    /// How long one request may take (default 10 s).
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Refused`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        self.send(method, path, body).await.map(|(_, b)| b)
    }

    /// As [`ApiClient::call`], with the status (`200` and `202` differ
    /// for a publish that waited).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let uri = format!("http://{}{}", self.addr, path);
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: self.addr,
            reason,
        };
        let resp = tokio::time::timeout(self.timeout, self.http.request(req))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            return Ok((status, bytes));
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (
                "error".to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        Err(ClientError::Refused {
            status,
            code,
            message,
            retry_after,
        })
    }

    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let bytes = self.call(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// Publishes an invalidation; returns its id.
    pub async fn invalidate(&self, body: &serde_json::Value) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Accepted {
            id: String,
        }
        let a: Accepted = self
            .json(
                Method::POST,
                "/v1/invalidate",
                Some(serde_json::to_vec(body).unwrap_or_default()),
            )
            .await?;
        Ok(a.id)
    }
}

/// Percent-encodes a config key for a path segment.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

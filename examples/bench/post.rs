//! Handing events to a receiver: the same CloudEvents batch the sidecar
//! posts, from the Redis subscribers and the Serf event handler.

use std::io::{Read, Write};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A CloudEvents JSON batch of `ids`, from `source`.
pub fn batch(ids: &[String], source: &str) -> Vec<u8> {
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "specversion": "1.0",
                "id": id,
                "type": "dev.hearsay.bench",
                "source": source,
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap_or_default()
}

/// A kept-alive HTTP client for one webhook.
pub struct Poster {
    uri: Uri,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Poster {
    pub fn new(url: &str) -> anyhow::Result<Poster> {
        Ok(Poster {
            uri: url.parse()?,
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    pub async fn deliver(&self, ids: &[String], source: &str) -> anyhow::Result<()> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header("content-type", "application/cloudevents-batch+json")
            .body(Full::new(Bytes::from(batch(ids, source))))?;
        let resp = self.http.request(req).await?;
        let status = resp.status();
        resp.into_body().collect().await?;
        anyhow::ensure!(status.is_success(), "the receiver answered {status}");
        Ok(())
    }
}

/// One POST over a fresh connection, without a runtime: what a process
/// started per event (Serf's handler) can afford.
pub fn post_once(url: &str, body: &[u8]) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("not an http URL: {url}"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut conn = std::net::TcpStream::connect(host)?;
    conn.set_nodelay(true)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/cloudevents-batch+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)?;
    let status = answer.get(9..12).unwrap_or_default();
    anyhow::ensure!(
        status.starts_with(b"2"),
        "the receiver answered {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(())
}

//! A client of the subscription streams (`GET /v1/subscribe`): the
//! stream's parser ([`Parser`], SSE and NDJSON, fed bytes as they come) and
//! a connection that yields one record at a time ([`Subscriber`]), for
//! `hearsay subscribe`, the bench and the tests.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, header};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::client::ClientError;
pub use crate::delivery::stream::Format;

/// One record of a stream: the CloudEvent and its id and type.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRecord {
    pub id: String,
    pub kind: String,
    pub event: serde_json::Value,
}

/// Turns a stream's bytes into records. SSE: `id:`, `event:` and `data:`
/// fields (data lines joined), a blank line ends a record, `:` lines are
/// comments. NDJSON: one JSON object per non-empty line.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    line: Vec<u8>,
    id: String,
    kind: String,
    data: Vec<String>,
}

/// Longest line accepted (a record is far smaller; see the event limits).
const MAX_LINE: usize = 4 << 20;

impl Parser {
    pub fn new(format: Format) -> Parser {
        Parser {
            format,
            line: Vec::new(),
            id: String::new(),
            kind: String::new(),
            data: Vec::new(),
        }
    }

    /// The records completed by `bytes`; a record that is not valid JSON
    /// is an error in its place.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<StreamRecord, String>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() < MAX_LINE {
                    self.line.push(b);
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(r) = self.line_done(&line) {
                out.push(r);
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<Result<StreamRecord, String>> {
        match self.format {
            Format::Ndjson if line.trim().is_empty() => None,
            Format::Ndjson => Some(from_json(line, None, None)),
            Format::Sse if line.is_empty() => {
                if self.data.is_empty() {
                    return None;
                }
                let data = std::mem::take(&mut self.data).join("\n");
                let id = std::mem::take(&mut self.id);
                let kind = std::mem::take(&mut self.kind);
                Some(from_json(&data, Some(id), Some(kind)))
            }
            Format::Sse if line.starts_with(':') => None,
            Format::Sse => {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => self.id = value.to_owned(),
                    "event" => self.kind = value.to_owned(),
                    "data" => self.data.push(value.to_owned()),
                    _ => {}
                }
                None
            }
        }
    }
}

fn from_json(text: &str, id: Option<String>, kind: Option<String>) -> Result<StreamRecord, String> {
    let event: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text:.200}"))?;
    let field = |f: &str| event[f].as_str().unwrap_or_default().to_owned();
    Ok(StreamRecord {
        id: id.filter(|i| !i.is_empty()).unwrap_or_else(|| field("id")),
        kind: kind
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| field("type")),
        event,
    })
}

/// What to subscribe to.
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    pub caches: Vec<String>,
    pub ndjson: bool,
    pub last_event_id: Option<String>,
    pub token: Option<String>,
}

/// An open stream.
pub struct Subscriber {
    body: Incoming,
    parser: Parser,
    ready: std::collections::VecDeque<Result<StreamRecord, String>>,
    /// How the stream started: `new`, `resumed` or `gap`.
    pub opened: String,
}

impl Subscriber {
    pub async fn open(addr: SocketAddr, o: &SubscribeOptions) -> Result<Subscriber, ClientError> {
        let mut query: Vec<String> = o
            .caches
            .iter()
            .map(|c| format!("cache={}", crate::client::encode_key(c)))
            .collect();
        if o.ndjson {
            query.push("format=ndjson".into());
        }
        let uri = format!("http://{addr}/v1/subscribe?{}", query.join("&"));
        let mut req = Request::get(uri);
        if let Some(id) = &o.last_event_id {
            req = req.header("last-event-id", id);
        }
        if let Some(t) = &o.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let unreachable = |reason: String| ClientError::Unreachable { addr, reason };
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(crate::delivery::health::error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await.map(|b| b.to_bytes());
            let text = bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
            return Err(ClientError::Refused {
                status,
                code: "refused".into(),
                message: text.unwrap_or_default(),
                retry_after: None,
            });
        }
        let opened = resp
            .headers()
            .get("hearsay-stream")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let format = if o.ndjson {
            Format::Ndjson
        } else {
            Format::Sse
        };
        Ok(Subscriber {
            body: resp.into_body(),
            parser: Parser::new(format),
            ready: Default::default(),
            opened,
        })
    }

    /// The next record; `None` when the stream ends (or breaks: then
    /// reconnect with the last id seen).
    pub async fn next(&mut self) -> Option<Result<StreamRecord, String>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                self.ready.extend(self.parser.feed(&data));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_records_split_anywhere_and_comments_are_skipped() {
        let text = b"retry: 1000\n\n: keepalive\n\nid: a\nevent: dev.hearsay.flush\ndata: {\"id\":\"a\",\"type\":\"dev.hearsay.flush\"}\n\nid: b\r\ndata: {\"id\":\"b\",\r\ndata: \"type\":\"t\"}\r\n\r\n";
        let mut p = Parser::new(Format::Sse);
        let mut got = Vec::new();
        for chunk in text.chunks(7) {
            got.extend(p.feed(chunk));
        }
        let got: Vec<StreamRecord> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "a");
        assert_eq!(got[0].kind, "dev.hearsay.flush");
        assert_eq!(got[1].id, "b");
        assert_eq!(
            got[1].kind, "t",
            "the type comes from the event without event:"
        );
    }

    #[test]
    fn ndjson_skips_blank_lines_and_reports_bad_ones() {
        let mut p = Parser::new(Format::Ndjson);
        let got = p.feed(b"{\"id\":\"x\",\"type\":\"k\"}\n\n{oops\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().id, "x");
        assert!(got[1].is_err());
    }
}

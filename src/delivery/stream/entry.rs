//! One record of a subscription stream, encoded once and shared by every
//! stream that carries it, with the SSE and NDJSON framings made on first
//! use.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::delivery::cloudevents::Record;
use crate::delivery::queue::AppMessage;
use crate::gossip::{EventBody, Time};

/// How a stream frames its records.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/event-stream`: `id:`, `event:`, `data:` and a blank line.
    Sse,
    /// `application/x-ndjson`: one CloudEvent per line.
    Ndjson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Sse => "text/event-stream",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    /// What an idle stream sends to stay open: an SSE comment, or an empty
    /// line (NDJSON readers skip it).
    pub fn keepalive(self) -> &'static [u8] {
        match self {
            Format::Sse => b": keepalive\n\n",
            Format::Ndjson => b"\n",
        }
    }

    /// What a stream opens with: SSE asks clients to reconnect after 1 s.
    pub fn preamble(self) -> &'static [u8] {
        match self {
            Format::Sse => b"retry: 1000\n\n",
            Format::Ndjson => b"",
        }
    }
}

/// Which subscribers an entry is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// An invalidation or a flush of one cache.
    Cache(String),
    /// A flush of every cache, or config: every stream, whatever its filter.
    Everyone,
}

#[derive(Debug)]
pub struct Entry {
    /// Where in the log this entry stands: a stream resuming after it gets
    /// every logged entry with a higher number.
    pub seq: u64,
    pub at: Time,
    pub msg: AppMessage,
    pub record: Record,
    pub scope: Scope,
    sse: OnceLock<Bytes>,
    ndjson: OnceLock<Bytes>,
}

impl Entry {
    pub fn new(seq: u64, at: Time, msg: AppMessage, record: Record) -> Entry {
        let scope = match &msg {
            AppMessage::Event(e) => match &e.body {
                EventBody::Invalidate(inv) => Scope::Cache(inv.cache.clone()),
                _ => Scope::Everyone,
            },
            AppMessage::Merged { cache, .. } => Scope::Cache(cache.clone()),
            AppMessage::Flush {
                cache: Some(cache), ..
            } => Scope::Cache(cache.clone()),
            AppMessage::Flush { cache: None, .. } | AppMessage::ConfigEvicted { .. } => {
                Scope::Everyone
            }
        };
        Entry {
            seq,
            at,
            msg,
            record,
            scope,
            sse: OnceLock::new(),
            ndjson: OnceLock::new(),
        }
    }

    /// The entry as `format` writes it.
    pub fn bytes(&self, format: Format) -> &Bytes {
        match format {
            Format::Sse => self.sse.get_or_init(|| {
                let r = &self.record;
                Bytes::from(format!(
                    "id: {}\nevent: {}\ndata: {}\n\n",
                    r.id, r.kind, r.json
                ))
            }),
            Format::Ndjson => self
                .ndjson
                .get_or_init(|| Bytes::from(format!("{}\n", self.record.json))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::cloudevents::TYPE_FLUSH;
    use crate::gossip::FlushReason;

    #[test]
    fn sse_and_ndjson_frame_one_record() {
        let e = Entry::new(
            3,
            Time::ZERO,
            AppMessage::Flush {
                cache: None,
                reason: FlushReason::Subscribe,
            },
            Record {
                id: "a-flush-1".into(),
                kind: TYPE_FLUSH,
                json: "{\"id\":\"a-flush-1\"}".into(),
            },
        );
        assert_eq!(e.scope, Scope::Everyone);
        assert_eq!(
            &e.bytes(Format::Sse)[..],
            b"id: a-flush-1\nevent: dev.hearsay.flush\ndata: {\"id\":\"a-flush-1\"}\n\n"
        );
        assert_eq!(&e.bytes(Format::Ndjson)[..], b"{\"id\":\"a-flush-1\"}\n");
    }
}

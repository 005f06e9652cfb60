//! The webhook payload: a CloudEvents 1.0 batch
//! (`application/cloudevents-batch+json`), one JSON array of events.
//!
//! - `dev.hearsay.invalidate`: `data` is `{cache, keys, prefixes, tags,
//!   all}`; a merge made under queue pressure adds `coalesced`, the ids of
//!   every event it stands for.
//! - `dev.hearsay.config`: `data` is `{key, value, version}`; `value` is
//!   null for a delete.
//! - `dev.hearsay.flush`: `data` is `{cache, reason}`; `cache` null means
//!   every cache.

use std::collections::BTreeSet;

use serde::Serialize;

use super::super::sidecar::clock::rfc3339;
use crate::gossip::app_queue::{AppMessage, FlushCause};
use crate::gossip::{Event, EventBody, Origin, Time};

pub const CONTENT_TYPE: &str = "application/cloudevents-batch+json";
pub const TYPE_INVALIDATE: &str = "dev.hearsay.invalidate";
pub const TYPE_CONFIG: &str = "dev.hearsay.config";
pub const TYPE_FLUSH: &str = "dev.hearsay.flush";

#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: String,
    source: String,
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    datacontenttype: &'static str,
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Invalidate {
        cache: &'a str,
        keys: Vec<&'a str>,
        prefixes: Vec<&'a str>,
        tags: Vec<&'a str>,
        all: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        coalesced: Option<Vec<String>>,
    },
    Config {
        key: &'a str,
        value: Option<&'a str>,
        version: String,
    },
    Flush {
        cache: Option<&'a str>,
        reason: &'static str,
    },
}

/// Encodes batches for one node. Flush events get ids unique to this
/// node's incarnation.
pub struct Encoder {
    origin: Origin,
    flushes: u64,
}

fn source(origin: Origin) -> String {
    format!("/hearsay/{origin}")
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn set_strs(v: &BTreeSet<String>) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

impl Encoder {
    pub fn new(origin: Origin) -> Encoder {
        Encoder { origin, flushes: 0 }
    }

    fn event<'a>(&self, e: &'a Event) -> CloudEvent<'a> {
        let (kind, data) = match &e.body {
            EventBody::Invalidate(inv) => (
                TYPE_INVALIDATE,
                Data::Invalidate {
                    cache: &inv.cache,
                    keys: strs(&inv.keys),
                    prefixes: strs(&inv.prefixes),
                    tags: strs(&inv.tags),
                    all: inv.all,
                    coalesced: None,
                },
            ),
            EventBody::Config {
                key,
                value,
                version,
            } => (
                TYPE_CONFIG,
                Data::Config {
                    key,
                    value: Some(value),
                    version: format!("{}-{}", version.hlc, version.origin),
                },
            ),
            EventBody::ConfigDelete { key, version } => (
                TYPE_CONFIG,
                Data::Config {
                    key,
                    value: None,
                    version: format!("{}-{}", version.hlc, version.origin),
                },
            ),
        };
        CloudEvent {
            specversion: "1.0",
            id: e.id.to_string(),
            source: source(e.id.origin),
            kind,
            time: rfc3339(e.published_at),
            datacontenttype: "application/json",
            data,
        }
    }

    /// The JSON array for one batch; `now` stamps merges and flushes.
    pub fn encode(&mut self, batch: &[AppMessage], now: Time) -> Vec<u8> {
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            let ce = match m {
                AppMessage::Event(e) => self.event(e),
                AppMessage::Merged {
                    cache,
                    keys,
                    prefixes,
                    tags,
                    all,
                    ids,
                } => CloudEvent {
                    specversion: "1.0",
                    id: ids.first().map(|i| i.to_string()).unwrap_or_default(),
                    source: source(self.origin),
                    kind: TYPE_INVALIDATE,
                    time: rfc3339(now),
                    datacontenttype: "application/json",
                    data: Data::Invalidate {
                        cache,
                        keys: set_strs(keys),
                        prefixes: set_strs(prefixes),
                        tags: set_strs(tags),
                        all: *all,
                        coalesced: Some(ids.iter().map(|i| i.to_string()).collect()),
                    },
                },
                AppMessage::Flush { cache, cause } => {
                    self.flushes += 1;
                    CloudEvent {
                        specversion: "1.0",
                        id: format!("{}-flush-{}", self.origin, self.flushes),
                        source: source(self.origin),
                        kind: TYPE_FLUSH,
                        time: rfc3339(now),
                        datacontenttype: "application/json",
                        data: Data::Flush {
                            cache: cache.as_deref(),
                            reason: flush_reason(*cause),
                        },
                    }
                }
            };
            out.push(ce);
        }
        serde_json::to_vec(&out).unwrap_or_else(|_| b"[]".to_vec())
    }
}

fn flush_reason(c: FlushCause) -> &'static str {
    c.as_str()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gossip::{EventId, Invalidation, Version};

    #[test]
    fn a_batch_is_a_json_array_of_cloudevents() {
        let inv = Arc::new(Event {
            id: EventId {
                origin: Origin(0xab),
                seq: 7,
            },
            published_at: Time::from_millis(1_700_000_000_000),
            body: EventBody::Invalidate(Invalidation {
                cache: "products".into(),
                keys: vec!["42".into()],
                ..Invalidation::default()
            }),
        });
        let del = Arc::new(Event {
            id: EventId {
                origin: Origin(0xab),
                seq: 8,
            },
            published_at: Time::from_millis(1_700_000_000_000),
            body: EventBody::ConfigDelete {
                key: "color".into(),
                version: Version {
                    hlc: 5,
                    origin: Origin(0xab),
                },
            },
        });
        let batch = vec![
            AppMessage::Event(inv),
            AppMessage::Event(del),
            AppMessage::Flush {
                cache: None,
                cause: FlushCause::Gap,
            },
        ];
        let bytes = Encoder::new(Origin(1)).encode(&batch, Time::from_millis(1_700_000_000_500));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0]["specversion"], "1.0");
        assert_eq!(a[0]["type"], TYPE_INVALIDATE);
        assert_eq!(a[0]["id"], "00000000000000ab0000000000000007");
        assert_eq!(a[0]["source"], "/hearsay/00000000000000ab");
        assert_eq!(a[0]["time"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(a[0]["data"]["cache"], "products");
        assert_eq!(a[0]["data"]["keys"][0], "42");
        assert!(a[0]["data"].get("coalesced").is_none());
        assert_eq!(a[1]["type"], TYPE_CONFIG);
        assert!(a[1]["data"]["value"].is_null());
        assert_eq!(a[2]["type"], TYPE_FLUSH);
        assert!(a[2]["data"]["cache"].is_null());
        assert_eq!(a[2]["data"]["reason"], "gap");
        assert_eq!(a[2]["id"], "0000000000000001-flush-1");
    }
}

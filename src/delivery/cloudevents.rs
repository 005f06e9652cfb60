//! The webhook payload: a CloudEvents 1.0 batch
//! (`application/cloudevents-batch+json`), one JSON array of events.
//!
//! - `dev.hearsay.invalidate`: `data` is `{cache, keys, prefixes, tags,
//!   all}`; a merge made under queue pressure adds `coalesced`, the ids of
//!   every event it stands for.
//! - `dev.hearsay.config`: `data` is `{key, value, version}`; `value` is
//!   null for a delete, and for a key this replica evicted at the register
//!   cap, which also carries `evicted: true`.
//! - `dev.hearsay.flush`: `data` is `{cache, reason}`; `cache` null means
//!   every cache.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::clock::rfc3339;
use crate::delivery::queue::AppMessage;
use crate::gossip::{Event, EventBody, Origin, Time, Version};

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
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        evicted: bool,
    },
    Flush {
        cache: Option<&'a str>,
        reason: &'static str,
    },
}

/// Encodes batches for one node. Flush events get ids unique to this
/// node's incarnation; clones share the counters, so every stream of one
/// sidecar numbers its flushes from one sequence.
#[derive(Clone)]
pub struct Encoder {
    origin: Origin,
    flushes: Arc<AtomicU64>,
    evictions: Arc<AtomicU64>,
}

/// One event on its own: for a subscription stream's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    /// The CloudEvent type.
    pub kind: &'static str,
    /// The CloudEvent, structured mode, one line of JSON.
    pub json: String,
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
        Encoder {
            origin,
            flushes: Arc::default(),
            evictions: Arc::default(),
        }
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
                    version: version_text(version),
                    evicted: false,
                },
            ),
            EventBody::ConfigDelete { key, version } => (
                TYPE_CONFIG,
                Data::Config {
                    key,
                    value: None,
                    version: version_text(version),
                    evicted: false,
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
        let out: Vec<CloudEvent<'_>> = batch.iter().map(|m| self.cloud_event(m, now)).collect();
        serde_json::to_vec(&out).unwrap_or_else(|_| b"[]".to_vec())
    }

    /// One entry as a record of its own.
    pub fn record(&mut self, m: &AppMessage, now: Time) -> Record {
        let ce = self.cloud_event(m, now);
        Record {
            id: ce.id.clone(),
            kind: ce.kind,
            json: serde_json::to_string(&ce).unwrap_or_default(),
        }
    }

    fn cloud_event<'a>(&mut self, m: &'a AppMessage, now: Time) -> CloudEvent<'a> {
        match m {
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
            AppMessage::ConfigEvicted { key, version } => {
                let n = self.evictions.fetch_add(1, Ordering::Relaxed) + 1;
                CloudEvent {
                    specversion: "1.0",
                    id: format!("{}-evict-{n}", self.origin),
                    source: source(self.origin),
                    kind: TYPE_CONFIG,
                    time: rfc3339(now),
                    datacontenttype: "application/json",
                    data: Data::Config {
                        key,
                        value: None,
                        version: version_text(version),
                        evicted: true,
                    },
                }
            }
            AppMessage::Flush { cache, reason } => {
                let n = self.flushes.fetch_add(1, Ordering::Relaxed) + 1;
                CloudEvent {
                    specversion: "1.0",
                    id: format!("{}-flush-{n}", self.origin),
                    source: source(self.origin),
                    kind: TYPE_FLUSH,
                    time: rfc3339(now),
                    datacontenttype: "application/json",
                    data: Data::Flush {
                        cache: cache.as_deref(),
                        reason: reason.as_str(),
                    },
                }
            }
        }
    }
}

/// A version as the API prints it: `<hybrid logical clock>-<origin>`.
pub fn version_text(v: &Version) -> String {
    format!("{}-{}", v.hlc, v.origin)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gossip::{EventId, FlushReason, Invalidation};

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
                reason: FlushReason::GapUnrecoverable,
            },
            AppMessage::ConfigEvicted {
                key: "zz".into(),
                version: Version {
                    hlc: 9,
                    origin: Origin(0xcd),
                },
            },
        ];
        let bytes = Encoder::new(Origin(1)).encode(&batch, Time::from_millis(1_700_000_000_500));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 4);
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
        assert_eq!(a[2]["data"]["reason"], "gap_unrecoverable");
        assert_eq!(a[2]["id"], "0000000000000001-flush-1");
        assert!(a[1]["data"].get("evicted").is_none());
        assert_eq!(a[3]["type"], TYPE_CONFIG);
        assert_eq!(a[3]["data"]["key"], "zz");
        assert!(a[3]["data"]["value"].is_null());
        assert_eq!(a[3]["data"]["evicted"], true);
        assert_eq!(a[3]["data"]["version"], "9-00000000000000cd");
    }

    #[test]
    fn a_record_is_one_cloudevent_and_clones_share_the_flush_ids() {
        let mut a = Encoder::new(Origin(1));
        let mut b = a.clone();
        let flush = AppMessage::Flush {
            cache: Some("users".into()),
            reason: FlushReason::Subscribe,
        };
        let first = a.record(&flush, Time::from_millis(1_700_000_000_000));
        let second = b.record(&flush, Time::from_millis(1_700_000_000_000));
        assert_eq!(first.kind, TYPE_FLUSH);
        assert_eq!(first.id, "0000000000000001-flush-1");
        assert_eq!(second.id, "0000000000000001-flush-2");
        assert!(!first.json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&first.json).unwrap();
        assert_eq!(v["id"], first.id.as_str());
        assert_eq!(v["data"]["reason"], "subscribe");
        assert_eq!(v["data"]["cache"], "users");
    }
}

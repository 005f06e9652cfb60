//! The fake's store: objects as the API server serializes them, a global
//! resourceVersion that increases with every write, and the event log that
//! watches are served from.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::selector::Selector;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pod,
    EndpointSlice,
}

impl Kind {
    pub fn list_kind(self) -> &'static str {
        match self {
            Kind::Pod => "PodList",
            Kind::EndpointSlice => "EndpointSliceList",
        }
    }
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Pod => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
        }
    }
}

/// One write, as watches replay it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub rv: u64,
    pub kind: Kind,
    pub ns: String,
    pub old: Option<Value>,
    /// `None` for a delete (the deleted object is in `old`, at `rv`).
    pub new: Option<Value>,
}

/// A paginated list in progress: the rest of a consistent snapshot.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub rest: Vec<Value>,
    pub rv: u64,
}

#[derive(Default)]
pub struct Store {
    pub rv: u64,
    objects: BTreeMap<(Kind, String, String), Value>,
    log: Vec<Entry>,
    /// Watches from below this resourceVersion get `410 Gone`.
    pub compacted: u64,
    snapshots: HashMap<String, Snapshot>,
    next_token: u64,
    next_uid: u64,
}

pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

impl Store {
    /// Creates or replaces an object; returns its new resourceVersion.
    pub fn put(&mut self, kind: Kind, ns: &str, mut obj: Value) -> u64 {
        self.rv += 1;
        let name = name_of(&obj);
        let key = (kind, ns.to_owned(), name.clone());
        let old = self.objects.get(&key).cloned();
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("an object with metadata");
        meta.insert("namespace".into(), json!(ns));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        if !meta.contains_key("uid") {
            self.next_uid += 1;
            let uid = old
                .as_ref()
                .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("uid-{}", self.next_uid));
            meta.insert("uid".into(), json!(uid));
        }
        meta.entry("creationTimestamp")
            .or_insert(json!("2026-11-22T00:00:00Z"));
        obj["kind"] = json!(kind.kind());
        obj["apiVersion"] = json!(kind.api_version());
        self.objects.insert(key, obj.clone());
        self.log.push(Entry {
            rv: self.rv,
            kind,
            ns: ns.to_owned(),
            old,
            new: Some(obj),
        });
        self.rv
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(kind, ns.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn delete(&mut self, kind: Kind, ns: &str, name: &str) -> Option<u64> {
        let mut obj = self
            .objects
            .remove(&(kind, ns.to_owned(), name.to_owned()))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.log.push(Entry {
            rv: self.rv,
            kind,
            ns: ns.to_owned(),
            old: Some(obj),
            new: None,
        });
        Some(self.rv)
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.objects.keys().filter(|(k, _, _)| *k == kind).count()
    }

    /// Every matching object now, in key order, and the resourceVersion.
    pub fn list(&self, kind: Kind, ns: Option<&str>, sel: &Selector) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .iter()
            .filter(|((k, n, _), o)| {
                *k == kind && ns.is_none_or(|ns| ns == n) && sel.matches(&labels_of(o))
            })
            .map(|(_, o)| o.clone())
            .collect();
        (items, self.rv)
    }

    /// Watch events strictly after `after`, as a watch with this selector
    /// sees them: an object that starts matching is ADDED, one that stops
    /// matching is DELETED.
    pub fn events_after(
        &self,
        kind: Kind,
        ns: Option<&str>,
        sel: &Selector,
        after: u64,
    ) -> Vec<(u64, &'static str, Value)> {
        let start = self.log.partition_point(|e| e.rv <= after);
        self.log[start..]
            .iter()
            .filter(|e| e.kind == kind && ns.is_none_or(|ns| ns == e.ns))
            .filter_map(|e| {
                let was = e.old.as_ref().is_some_and(|o| sel.matches(&labels_of(o)));
                let is = e.new.as_ref().is_some_and(|o| sel.matches(&labels_of(o)));
                match (&e.new, was, is) {
                    (Some(n), false, true) => Some((e.rv, "ADDED", n.clone())),
                    (Some(n), true, true) => Some((e.rv, "MODIFIED", n.clone())),
                    (Some(n), true, false) => Some((e.rv, "DELETED", n.clone())),
                    (None, true, _) => e.old.clone().map(|o| (e.rv, "DELETED", o)),
                    _ => None,
                }
            })
            .collect()
    }

    pub fn save_snapshot(&mut self, snap: Snapshot) -> String {
        self.next_token += 1;
        let token = format!("continue-{}-{}", snap.rv, self.next_token);
        self.snapshots.insert(token.clone(), snap);
        token
    }

    pub fn take_snapshot(&mut self, token: &str) -> Option<Snapshot> {
        self.snapshots.remove(token)
    }

    /// Forgets history: old watch positions and list continuations expire.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.snapshots.clear();
    }
}

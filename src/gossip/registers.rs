//! Config values as last-writer-wins registers. A write and a delete are
//! both versioned events; a delete leaves a tombstone so it cannot be undone
//! by an older write arriving late.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::event::{Event, EventBody, Version};
use super::time::Time;

#[derive(Clone, Debug)]
pub struct Register {
    pub version: Version,
    /// `None` for a tombstone.
    pub value: Option<String>,
    /// The event that wrote this version; what anti-entropy sends.
    pub event: Arc<Event>,
    pub updated_at: Time,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Apply {
    /// The write is newer and now current.
    Newer,
    /// An equal or newer version is already here.
    Stale,
    /// A new key, but the key limit is reached.
    TooManyKeys,
    /// Not a config event.
    NotConfig,
}

#[derive(Debug, Default)]
pub struct Registers {
    map: BTreeMap<String, Register>,
}

impl Registers {
    pub fn apply(&mut self, event: &Arc<Event>, now: Time, max_keys: usize) -> Apply {
        let (key, version, value) = match &event.body {
            EventBody::Config {
                key,
                value,
                version,
            } => (key, *version, Some(value.clone())),
            EventBody::ConfigDelete { key, version } => (key, *version, None),
            EventBody::Invalidate(_) => return Apply::NotConfig,
        };
        match self.map.get(key) {
            Some(cur) if cur.version >= version => return Apply::Stale,
            None if self.map.len() >= max_keys => return Apply::TooManyKeys,
            _ => {}
        }
        self.map.insert(
            key.clone(),
            Register {
                version,
                value,
                event: event.clone(),
                updated_at: now,
            },
        );
        Apply::Newer
    }

    pub fn get(&self, key: &str) -> Option<&Register> {
        self.map.get(key)
    }

    /// Live values (tombstones left out), in key order.
    pub fn live(&self) -> impl Iterator<Item = (&str, &Register)> {
        self.map
            .iter()
            .filter(|(_, r)| r.value.is_some())
            .map(|(k, r)| (k.as_str(), r))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every key and version, for a digest.
    pub fn versions(&self) -> Vec<(String, Version)> {
        self.map
            .iter()
            .map(|(k, r)| (k.clone(), r.version))
            .collect()
    }

    /// The writes a peer with these versions lacks.
    pub fn newer_than(&self, theirs: &[(String, Version)]) -> Vec<Arc<Event>> {
        let theirs: BTreeMap<&str, Version> =
            theirs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.map
            .iter()
            .filter(|(k, r)| theirs.get(k.as_str()).is_none_or(|v| *v < r.version))
            .map(|(_, r)| r.event.clone())
            .collect()
    }

    /// Whether a peer with these versions has a write this node lacks.
    pub fn lacks_any(&self, theirs: &[(String, Version)]) -> bool {
        theirs
            .iter()
            .any(|(k, v)| self.map.get(k).is_none_or(|r| r.version < *v))
    }

    /// Drops tombstones older than `age`. Returns how many.
    pub fn forget_tombstones(&mut self, now: Time, age: Duration) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, r| r.value.is_some() || now.since(r.updated_at) < age);
        before - self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::event::{EventId, Origin};

    fn write(key: &str, value: Option<&str>, hlc: u64, origin: u64) -> Arc<Event> {
        let version = Version {
            hlc,
            origin: Origin(origin),
        };
        let body = match value {
            Some(v) => EventBody::Config {
                key: key.into(),
                value: v.into(),
                version,
            },
            None => EventBody::ConfigDelete {
                key: key.into(),
                version,
            },
        };
        Arc::new(Event {
            id: EventId {
                origin: Origin(origin),
                seq: hlc,
            },
            published_at: Time::ZERO,
            body,
        })
    }

    #[test]
    fn the_highest_version_wins_whatever_the_arrival_order() {
        let writes = [
            write("k", Some("a"), 1, 1),
            write("k", Some("b"), 2, 1),
            write("k", Some("c"), 2, 2),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut r = Registers::default();
            for i in order {
                r.apply(&writes[i], Time::ZERO, 10);
            }
            assert_eq!(r.get("k").unwrap().value.as_deref(), Some("c"));
        }
    }

    #[test]
    fn a_delete_is_a_tombstone_that_an_older_write_cannot_undo() {
        let mut r = Registers::default();
        assert_eq!(
            r.apply(&write("k", None, 5, 1), Time::ZERO, 10),
            Apply::Newer
        );
        assert_eq!(
            r.apply(&write("k", Some("old"), 4, 1), Time::ZERO, 10),
            Apply::Stale
        );
        assert_eq!(r.live().count(), 0);
        assert_eq!(
            r.forget_tombstones(Time::from_millis(10), Duration::from_secs(1)),
            0
        );
        assert_eq!(
            r.forget_tombstones(Time::from_millis(1_000), Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn the_key_limit_refuses_new_keys_but_not_updates() {
        let mut r = Registers::default();
        r.apply(&write("a", Some("1"), 1, 1), Time::ZERO, 1);
        assert_eq!(
            r.apply(&write("b", Some("1"), 1, 1), Time::ZERO, 1),
            Apply::TooManyKeys
        );
        assert_eq!(
            r.apply(&write("a", Some("2"), 2, 1), Time::ZERO, 1),
            Apply::Newer
        );
    }

    #[test]
    fn digest_comparison_finds_what_each_side_lacks() {
        let mut mine = Registers::default();
        mine.apply(&write("a", Some("1"), 2, 1), Time::ZERO, 10);
        mine.apply(&write("b", Some("1"), 1, 1), Time::ZERO, 10);
        let mut theirs = Registers::default();
        theirs.apply(&write("b", Some("2"), 3, 1), Time::ZERO, 10);
        let newer = mine.newer_than(&theirs.versions());
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].body.config_version().unwrap().0, "a");
        assert!(mine.lacks_any(&theirs.versions()));
        assert!(!theirs.lacks_any(&[]));
    }
}

//! Config values as last-writer-wins registers. A write and a delete are
//! both versioned events; a delete leaves a tombstone so it cannot be undone
//! by an older write arriving late.
//!
//! # The rule at the key limit
//!
//! `max_config_keys` bounds what a node accepts *from its own app* (live
//! keys only; tombstones never block a write). Replication must not refuse
//! what another replica accepted, or replicas diverge: two partitioned
//! nodes can each accept a new key while at the limit. So a replicated
//! write is accepted up to a hard cap of registers (live keys and
//! tombstones, [`register_cap`]: four times the limit). If even that is
//! reached, every node keeps the same registers: the ones whose keys sort
//! first. A write to a key that sorts after every key held is refused; a
//! write to one that sorts before evicts the last key. Since every node
//! applies the same order to the same union of writes, they converge. An
//! evicted live key is reported to the app (a config event with a null
//! value, `evicted: true`), counted and logged.
//!
//! Tombstones expire `config_tombstone_ttl` after their *version's* time,
//! not after they arrived, so every node forgets a tombstone at the same
//! moment and anti-entropy does not carry it back and forth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::event::{Event, EventBody, Version};
use super::hlc::Hlc;
use super::time::Time;

/// Registers a node holds at most (live keys and tombstones), for a given
/// `max_config_keys`.
pub fn register_cap(max_config_keys: usize) -> usize {
    max_config_keys.saturating_mul(4).max(1)
}

/// One key's current version and value.
#[derive(Clone, Debug)]
pub struct Register {
    /// The version that wrote it; higher wins.
    pub version: Version,
    /// `None` for a tombstone.
    pub value: Option<String>,
    /// The event that wrote this version; what anti-entropy sends.
    pub event: Arc<Event>,
    /// When this node applied it.
    pub updated_at: Time,
}

/// What applying a write did.
#[derive(Clone, Debug)]
pub enum Apply {
    /// The write is newer and now current.
    Newer,
    /// Newer and current, and to make room under the cap this register
    /// (the one with the last key) was evicted.
    NewerEvicting(Register),
    /// An equal or newer version is already here.
    Stale,
    /// A new key at the register cap that sorts after every key held.
    RefusedAtCap,
    /// Not a config event.
    NotConfig,
}

/// Every config key this node knows, live or deleted.
#[derive(Debug, Default)]
pub struct Registers {
    map: BTreeMap<String, Register>,
    live: usize,
}

impl Registers {
    /// Applies a write or delete by version, within `cap` registers.
    pub fn apply(&mut self, event: &Arc<Event>, now: Time, cap: usize) -> Apply {
        let (key, version, value) = match &event.body {
            EventBody::Config {
                key,
                value,
                version,
            } => (key, *version, Some(value.clone())),
            EventBody::ConfigDelete { key, version } => (key, *version, None),
            EventBody::Invalidate(_) => return Apply::NotConfig,
        };
        let mut evicted = None;
        match self.map.get(key) {
            Some(cur) if cur.version >= version => return Apply::Stale,
            Some(_) => {}
            None if self.map.len() >= cap => {
                // The map is not empty here: it holds `cap` >= 1 registers.
                let last = self.map.keys().next_back().cloned();
                match last {
                    Some(last) if key.as_str() < last.as_str() => {
                        evicted = self.remove(&last);
                    }
                    _ => return Apply::RefusedAtCap,
                }
            }
            None => {}
        }
        let register = Register {
            version,
            value,
            event: event.clone(),
            updated_at: now,
        };
        if register.value.is_some() {
            self.live += 1;
        }
        if let Some(old) = self.map.insert(key.clone(), register)
            && old.value.is_some()
        {
            self.live -= 1;
        }
        match evicted {
            Some(r) => Apply::NewerEvicting(r),
            None => Apply::Newer,
        }
    }

    fn remove(&mut self, key: &str) -> Option<Register> {
        let r = self.map.remove(key)?;
        if r.value.is_some() {
            self.live -= 1;
        }
        Some(r)
    }

    /// The register of a key, tombstones included.
    pub fn get(&self, key: &str) -> Option<&Register> {
        self.map.get(key)
    }

    /// The key that sorts last (the first evicted at the cap).
    pub fn last_key(&self) -> Option<&str> {
        self.map.keys().next_back().map(String::as_str)
    }

    /// Whether the key has a live value.
    pub fn is_live(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|r| r.value.is_some())
    }

    /// Live values (tombstones left out), in key order.
    pub fn live(&self) -> impl Iterator<Item = (&str, &Register)> {
        self.map
            .iter()
            .filter(|(_, r)| r.value.is_some())
            .map(|(k, r)| (k.as_str(), r))
    }

    /// How many keys have a live value.
    pub fn live_len(&self) -> usize {
        self.live
    }

    /// Registers held, tombstones included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no register is held.
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

    /// Drops tombstones whose version is older than `age`. Returns how many.
    pub fn forget_tombstones(&mut self, now: Time, age: Duration) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, r| r.value.is_some() || !tombstone_expired(r.version, now, age));
        before - self.map.len()
    }
}

/// A tombstone written at `version` is forgotten `age` after the version's
/// wall-clock time, the same moment on every node.
pub fn tombstone_expired(version: Version, now: Time, age: Duration) -> bool {
    let written = Time::from_millis(Hlc::millis(version.hlc));
    now.since(written) >= age
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, Origin};

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
                seq: hlc.max(1),
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
            assert_eq!(r.live_len(), 1);
        }
    }

    #[test]
    fn a_delete_is_a_tombstone_that_an_older_write_cannot_undo() {
        let mut r = Registers::default();
        let ms = |m: u64| m << 16;
        assert!(matches!(
            r.apply(&write("k", None, ms(5), 1), Time::ZERO, 10),
            Apply::Newer
        ));
        assert!(matches!(
            r.apply(&write("k", Some("old"), ms(4), 1), Time::ZERO, 10),
            Apply::Stale
        ));
        assert_eq!(r.live().count(), 0);
        assert_eq!(r.live_len(), 0);
        // Forgotten a second after the version's own time, however late it
        // arrived here.
        assert_eq!(
            r.forget_tombstones(Time::from_millis(1_004), Duration::from_secs(1)),
            0
        );
        assert_eq!(
            r.forget_tombstones(Time::from_millis(1_005), Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn at_the_cap_every_order_of_writes_keeps_the_same_first_keys() {
        let writes: Vec<Arc<Event>> = ["d", "a", "c", "e", "b"]
            .iter()
            .enumerate()
            .map(|(i, k)| write(k, Some("v"), i as u64 + 1, 1))
            .collect();
        let orders: [[usize; 5]; 3] = [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 4, 0, 3, 1]];
        for order in orders {
            let mut r = Registers::default();
            let mut evicted = 0;
            let mut refused = 0;
            for i in order {
                match r.apply(&writes[i], Time::ZERO, 3) {
                    Apply::NewerEvicting(_) => evicted += 1,
                    Apply::RefusedAtCap => refused += 1,
                    _ => {}
                }
            }
            let keys: Vec<&str> = r.live().map(|(k, _)| k).collect();
            assert_eq!(keys, ["a", "b", "c"], "order {order:?}");
            assert_eq!(evicted + refused, 2);
            assert_eq!(r.live_len(), 3);
        }
    }

    #[test]
    fn updates_are_never_refused_at_the_cap() {
        let mut r = Registers::default();
        r.apply(&write("a", Some("1"), 1, 1), Time::ZERO, 1);
        assert!(matches!(
            r.apply(&write("b", Some("1"), 1, 1), Time::ZERO, 1),
            Apply::RefusedAtCap
        ));
        assert!(matches!(
            r.apply(&write("a", Some("2"), 2, 1), Time::ZERO, 1),
            Apply::Newer
        ));
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

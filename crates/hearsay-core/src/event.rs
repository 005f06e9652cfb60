//! The event model (DESIGN §4): what an origin publishes, how it is named,
//! and the limits every event must respect before it enters the cluster.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::time::Time;

/// A random 64-bit incarnation id chosen when a process starts. A restarted
/// pod, or a pod reusing an IP, is a new origin, so sequence numbers never
/// need to survive a restart.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin(pub u64);

/// `v` as 16 lower-case hex digits. Ids are printed for every event
/// delivered; `{:016x}` goes through the formatter's padding machinery,
/// several times the work of this.
fn hex16(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().take(16).enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = [0u8; 16];
        hex16(self.0, &mut b);
        // UNWRAP: hex digits are ASCII.
        f.write_str(std::str::from_utf8(&b).unwrap_or_default())
    }
}

/// `(origin, seq)`: seq counts up from 1 per origin. Printed as one 128-bit
/// hex string (32 characters).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The node that published it.
    pub origin: Origin,
    /// Its place in the origin's sequence, from 1.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = [0u8; 32];
        let (origin, seq) = b.split_at_mut(16);
        hex16(self.origin.0, origin);
        hex16(self.seq, seq);
        // UNWRAP: hex digits are ASCII.
        f.write_str(std::str::from_utf8(&b).unwrap_or_default())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("an event id is 32 hexadecimal characters")]
/// The error of parsing an [`EventId`] from text.
pub struct BadEventId;

impl FromStr for EventId {
    type Err = BadEventId;
    fn from_str(s: &str) -> Result<Self, BadEventId> {
        if s.len() != 32 || !s.is_ascii() {
            return Err(BadEventId);
        }
        let origin = u64::from_str_radix(&s[..16], 16).map_err(|_| BadEventId)?;
        let seq = u64::from_str_radix(&s[16..], 16).map_err(|_| BadEventId)?;
        Ok(EventId {
            origin: Origin(origin),
            seq,
        })
    }
}

/// A last-writer-wins version: hybrid logical clock first, origin as the
/// tiebreak, so every node orders two writes the same way.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The origin's hybrid logical clock at the write.
    pub hlc: u64,
    /// The writer, which breaks ties between equal clocks.
    pub origin: Origin,
}

/// What to drop from a cache.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Invalidation {
    /// The cache's name, as the app knows it.
    pub cache: String,
    /// Exact keys to drop.
    pub keys: Vec<String>,
    /// Drop every key that starts with one of these.
    pub prefixes: Vec<String>,
    /// Drop every entry carrying one of these tags.
    pub tags: Vec<String>,
    /// Drop the whole cache.
    pub all: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// What an event carries.
pub enum EventBody {
    /// Drop entries from a cache.
    Invalidate(Invalidation),
    /// Set a config key (a last-writer-wins register).
    Config {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
        /// Orders this write against every other write to the key.
        version: Version,
    },
    /// Delete a config key (a tombstone with a version).
    ConfigDelete {
        /// The key.
        key: String,
        /// Orders this delete against every write to the key.
        version: Version,
    },
}

impl EventBody {
    /// The config key and version, for config writes.
    pub fn config_version(&self) -> Option<(&str, Version)> {
        match self {
            EventBody::Config { key, version, .. } | EventBody::ConfigDelete { key, version } => {
                Some((key, *version))
            }
            EventBody::Invalidate(_) => None,
        }
    }

    /// Checks every limit; the same check runs at the local API and on
    /// every event received from a peer.
    pub fn validate(&self, limits: &Limits) -> Result<(), EventError> {
        match self {
            EventBody::Invalidate(inv) => inv.validate(limits),
            EventBody::Config { key, value, .. } => {
                validate_config_key(key, limits)?;
                if value.len() > limits.max_config_value_bytes {
                    return Err(EventError::ConfigValueTooLarge {
                        size: value.len(),
                        max: limits.max_config_value_bytes,
                    });
                }
                Ok(())
            }
            EventBody::ConfigDelete { key, .. } => validate_config_key(key, limits),
        }
    }
}

impl Invalidation {
    /// Checks the invalidation against `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<(), EventError> {
        if self.cache.is_empty() {
            return Err(EventError::EmptyCacheName);
        }
        if self.cache.len() > limits.max_cache_name_len {
            return Err(EventError::CacheNameTooLong {
                len: self.cache.len(),
                max: limits.max_cache_name_len,
            });
        }
        let count = self.keys.len() + self.prefixes.len() + self.tags.len();
        if count > limits.max_keys_per_event {
            return Err(EventError::TooManyKeys {
                count,
                max: limits.max_keys_per_event,
            });
        }
        if count == 0 && !self.all {
            return Err(EventError::NothingToInvalidate);
        }
        for (field, list) in [
            ("keys", &self.keys),
            ("prefixes", &self.prefixes),
            ("tags", &self.tags),
        ] {
            for k in list {
                if k.is_empty() {
                    return Err(EventError::EmptyKey { field });
                }
                if k.len() > limits.max_key_len {
                    return Err(EventError::KeyTooLong {
                        field,
                        len: k.len(),
                        max: limits.max_key_len,
                    });
                }
            }
        }
        Ok(())
    }
}

fn validate_config_key(key: &str, limits: &Limits) -> Result<(), EventError> {
    if key.is_empty() {
        return Err(EventError::EmptyConfigKey);
    }
    if key.len() > limits.max_config_key_len {
        return Err(EventError::ConfigKeyTooLong {
            len: key.len(),
            max: limits.max_config_key_len,
        });
    }
    if key.contains('/') || key.chars().any(char::is_control) {
        return Err(EventError::ConfigKeyInvalid);
    }
    Ok(())
}

/// One published event, immutable once created; shared by `Arc` between
/// the retention buffer, queues and frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Who published it, and where in their sequence.
    pub id: EventId,
    /// The origin's clock when it accepted the publish (for the propagation
    /// delay, and to tell what predates a node's start).
    pub published_at: Time,
    /// What it carries.
    pub body: EventBody,
}

/// What the allocator really takes for a request of `size` bytes (glibc:
/// an 8-byte header, 16-byte granules, 32 at least; nothing for nothing).
fn chunk(size: usize) -> usize {
    if size == 0 {
        0
    } else {
        (size + 8).div_ceil(16).max(2) * 16
    }
}

fn strings_heap(list: &Vec<String>) -> usize {
    chunk(list.capacity() * std::mem::size_of::<String>())
        + list.iter().map(|s| chunk(s.capacity())).sum::<usize>()
}

impl Event {
    /// Heap bytes an `Arc<Event>` holds: the shared allocation and every
    /// string and list in it, as the allocator counts them.
    pub fn heap_bytes(&self) -> usize {
        // The Arc's two counts, then the event.
        let own = chunk(2 * std::mem::size_of::<usize>() + std::mem::size_of::<Event>());
        own + match &self.body {
            EventBody::Invalidate(inv) => {
                chunk(inv.cache.capacity())
                    + strings_heap(&inv.keys)
                    + strings_heap(&inv.prefixes)
                    + strings_heap(&inv.tags)
            }
            EventBody::Config { key, value, .. } => chunk(key.capacity()) + chunk(value.capacity()),
            EventBody::ConfigDelete { key, .. } => chunk(key.capacity()),
        }
    }
}

/// Size limits for events. All are configurable and all are enforced with an
/// [`EventError`] naming what was too big.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest cache name, in bytes.
    pub max_cache_name_len: usize,
    /// Longest key, prefix or tag, in bytes.
    pub max_key_len: usize,
    /// Keys, prefixes and tags together.
    pub max_keys_per_event: usize,
    /// Encoded size of one event.
    pub max_event_bytes: usize,
    /// Longest config key, in bytes.
    pub max_config_key_len: usize,
    /// Largest config value, in bytes.
    pub max_config_value_bytes: usize,
    /// Live keys plus tombstones.
    pub max_config_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cache_name_len: 128,
            max_key_len: 512,
            max_keys_per_event: 1000,
            max_event_bytes: 64 * 1024,
            max_config_key_len: 253,
            max_config_value_bytes: 32 * 1024,
            max_config_keys: 1024,
        }
    }
}

/// Why an event was refused. The message names the limit so a user can act.
// Each variant's `#[error]` message documents it and its fields.
#[allow(missing_docs)]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EventError {
    #[error("cache name is empty")]
    EmptyCacheName,
    #[error("cache name is {len} bytes; the limit is {max}")]
    CacheNameTooLong { len: usize, max: usize },
    #[error("an entry in {field} is empty")]
    EmptyKey { field: &'static str },
    #[error("an entry in {field} is {len} bytes; the limit is {max}")]
    KeyTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{count} keys, prefixes and tags in one event; the limit is {max}")]
    TooManyKeys { count: usize, max: usize },
    #[error("nothing to invalidate: give keys, prefixes, tags or all")]
    NothingToInvalidate,
    #[error("event is {size} bytes encoded; the limit is {max}")]
    EventTooLarge { size: usize, max: usize },
    #[error("config key is empty")]
    EmptyConfigKey,
    #[error("config key is {len} bytes; the limit is {max}")]
    ConfigKeyTooLong { len: usize, max: usize },
    #[error("config key must not contain '/' or control characters")]
    ConfigKeyInvalid,
    #[error("config value is {size} bytes; the limit is {max}")]
    ConfigValueTooLarge { size: usize, max: usize },
    #[error("{count} config keys; the limit is {max}")]
    TooManyConfigKeys { count: usize, max: usize },
}

impl EventError {
    /// True when the event was well-formed but too big: the API answers 413
    /// for these and 400 for the rest.
    pub fn is_size_limit(&self) -> bool {
        matches!(
            self,
            EventError::CacheNameTooLong { .. }
                | EventError::KeyTooLong { .. }
                | EventError::TooManyKeys { .. }
                | EventError::EventTooLarge { .. }
                | EventError::ConfigKeyTooLong { .. }
                | EventError::ConfigValueTooLarge { .. }
                | EventError::TooManyConfigKeys { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(keys: &[&str]) -> Invalidation {
        Invalidation {
            cache: "products".into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn event_id_round_trips_through_its_hex_form() {
        let id = EventId {
            origin: Origin(0xdead_beef_0123_4567),
            seq: 42,
        };
        let s = id.to_string();
        assert_eq!(s, "deadbeef01234567000000000000002a");
        assert_eq!(Origin(1).to_string(), "0000000000000001");
        assert_eq!(Origin(u64::MAX).to_string(), "ffffffffffffffff");
        assert_eq!(s.parse::<EventId>(), Ok(id));
        assert_eq!("xyz".parse::<EventId>(), Err(BadEventId));
        assert_eq!(
            "zz00000000000000000000000000002a".parse::<EventId>(),
            Err(BadEventId)
        );
    }

    #[test]
    fn invalidation_limits_are_enforced_with_named_errors() {
        let limits = Limits {
            max_key_len: 4,
            max_keys_per_event: 2,
            ..Limits::default()
        };
        assert_eq!(inv(&["42"]).validate(&limits), Ok(()));
        assert_eq!(
            inv(&["12345"]).validate(&limits),
            Err(EventError::KeyTooLong {
                field: "keys",
                len: 5,
                max: 4
            })
        );
        assert_eq!(
            inv(&["a", "b", "c"]).validate(&limits),
            Err(EventError::TooManyKeys { count: 3, max: 2 })
        );
        assert_eq!(
            inv(&[]).validate(&limits),
            Err(EventError::NothingToInvalidate)
        );
        assert_eq!(
            inv(&[""]).validate(&limits),
            Err(EventError::EmptyKey { field: "keys" })
        );
        let all = Invalidation {
            all: true,
            ..inv(&[])
        };
        assert_eq!(all.validate(&limits), Ok(()));
        let unnamed = Invalidation {
            cache: String::new(),
            ..inv(&["1"])
        };
        assert_eq!(unnamed.validate(&limits), Err(EventError::EmptyCacheName));
    }

    #[test]
    fn config_limits_are_enforced_and_classified() {
        let limits = Limits {
            max_config_value_bytes: 3,
            ..Limits::default()
        };
        let v = Version {
            hlc: 1,
            origin: Origin(1),
        };
        let big = EventBody::Config {
            key: "k".into(),
            value: "abcd".into(),
            version: v,
        };
        let err = big.validate(&limits).unwrap_err();
        assert!(err.is_size_limit());
        let slash = EventBody::ConfigDelete {
            key: "a/b".into(),
            version: v,
        };
        let err = slash.validate(&limits).unwrap_err();
        assert_eq!(err, EventError::ConfigKeyInvalid);
        assert!(!err.is_size_limit());
    }
}

//! Decoding a frame body, checking every length against what remains.

use std::sync::Arc;

use super::encode::{outcome_code, route_flags};
use super::*;

/// The route of a flag byte; `None` for a combination no sender makes.
pub(super) fn route_of(flags: u8) -> Option<Route> {
    Route::ALL.into_iter().find(|r| route_flags(*r) == flags)
}

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated(what));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidValue(what)),
        }
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let byte = self.u8(what)?;
            let low = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            v |= low << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    /// A count of things each at least `min_size` bytes long; refuses counts
    /// that cannot fit before anyone allocates for them.
    fn count(&mut self, what: &'static str, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.varint(what)?;
        let remaining = self.remaining();
        if n.saturating_mul(min_size as u64) > remaining as u64 {
            return Err(DecodeError::CountTooLarge {
                what,
                count: n,
                remaining,
            });
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let n = self.count(what, 1)?;
        let b = self.bytes(n, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    fn strings(&mut self, what: &'static str) -> Result<Vec<String>, DecodeError> {
        let n = self.count(what, 1)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.string(what)?);
        }
        Ok(v)
    }

    fn id(&mut self) -> Result<EventId, DecodeError> {
        let origin = Origin(self.u64("event origin")?);
        let seq = self.varint("event seq")?;
        if seq == 0 {
            return Err(DecodeError::InvalidValue("event seq"));
        }
        Ok(EventId { origin, seq })
    }

    fn version(&mut self) -> Result<Version, DecodeError> {
        let hlc = self.varint("version clock")?;
        let origin = Origin(self.u64("version origin")?);
        Ok(Version { hlc, origin })
    }

    fn event(&mut self) -> Result<Event, DecodeError> {
        let id = self.id()?;
        let published_at = Time::from_micros(self.varint("publish time")?);
        let body = match self.u8("event body type")? {
            BODY_INVALIDATE => {
                let cache = self.string("cache name")?;
                let all = self.bool("all flag")?;
                let keys = self.strings("keys")?;
                let prefixes = self.strings("prefixes")?;
                let tags = self.strings("tags")?;
                EventBody::Invalidate(Invalidation {
                    cache,
                    keys,
                    prefixes,
                    tags,
                    all,
                })
            }
            BODY_CONFIG => EventBody::Config {
                key: self.string("config key")?,
                value: self.string("config value")?,
                version: self.version()?,
            },
            BODY_CONFIG_DELETE => EventBody::ConfigDelete {
                key: self.string("config key")?,
                version: self.version()?,
            },
            other => return Err(DecodeError::UnknownEventBody(other)),
        };
        Ok(Event {
            id,
            published_at,
            body,
        })
    }

    pub(super) fn item(&mut self) -> Result<Item, DecodeError> {
        Ok(match self.u8("item type")? {
            ITEM_EVENT => {
                let flags = self.u8("event flags")?;
                let route = route_of(flags).ok_or(DecodeError::InvalidValue("event flags"))?;
                let hop = self.u8("hop")?;
                let event = Arc::new(self.event()?);
                Item::Event(EventItem { route, hop, event })
            }
            ITEM_IHAVE => {
                let n = self.count("announcements", 10)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = self.id()?;
                    let hop = self.u8("hop")?;
                    v.push(Announcement { id, hop });
                }
                Item::IHave(v)
            }
            ITEM_GRAFT => {
                let n = self.count("graft ids", 9)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.id()?);
                }
                Item::Graft(v)
            }
            ITEM_PRUNE => Item::Prune,
            ITEM_NEIGHBOR => Item::Neighbor,
            ITEM_DISCONNECT => Item::Disconnect,
            ITEM_DIGEST => {
                let reply_wanted = self.bool("reply flag")?;
                let since = Time::from_micros(self.varint("since")?);
                let n = self.count("digest origins", 10)?;
                let mut origins = Vec::with_capacity(n);
                for _ in 0..n {
                    let origin = Origin(self.u64("digest origin")?);
                    let member = if self.bool("member flag")? {
                        Some(PeerId(self.u64("member")?))
                    } else {
                        None
                    };
                    let watermark = self.varint("watermark")?;
                    origins.push(DigestEntry {
                        origin,
                        member,
                        watermark,
                    });
                }
                let n = self.count("digest config", 10)?;
                let mut config = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.string("config key")?;
                    config.push((key, self.version()?));
                }
                Item::Digest(Digest {
                    reply_wanted,
                    since,
                    origins,
                    config,
                })
            }
            ITEM_REPAIR_INFO => {
                let n = self.count("repair info", 10)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let origin = Origin(self.u64("repair origin")?);
                    let through = self.varint("repair through")?;
                    let lost = self.bool("lost flag")?;
                    v.push(OriginRepair {
                        origin,
                        through,
                        lost,
                    });
                }
                Item::RepairInfo(v)
            }
            ITEM_CONFIRM_WANT => {
                let origin = Origin(self.u64("want origin")?);
                let from = self.varint("want from")?;
                let through = self.varint("want through")?;
                if from > through {
                    return Err(DecodeError::InvalidValue("want range"));
                }
                Item::ConfirmWant(ConfirmWant {
                    origin,
                    from,
                    through,
                })
            }
            ITEM_CONFIRM_REPORT => {
                let origin = Origin(self.u64("report origin")?);
                let n = self.count("report ranges", 3)?;
                let mut ranges = Vec::with_capacity(n);
                let mut prev_end = 0u64;
                for _ in 0..n {
                    let gap = self.varint("range gap")?;
                    let len = self.varint("range length")?;
                    let code = self.u8("range outcome")?;
                    let outcome = Outcome::ALL
                        .into_iter()
                        .find(|o| outcome_code(*o) == code)
                        .ok_or(DecodeError::InvalidValue("range outcome"))?;
                    let first = prev_end
                        .checked_add(gap)
                        .ok_or(DecodeError::InvalidValue("range start"))?;
                    let last = first
                        .checked_add(len)
                        .ok_or(DecodeError::InvalidValue("range end"))?;
                    // In order and not overlapping (the first may start at 0).
                    if !ranges.is_empty() && gap == 0 {
                        return Err(DecodeError::InvalidValue("range order"));
                    }
                    ranges.push(SettledRange {
                        first,
                        last,
                        outcome,
                    });
                    prev_end = last;
                }
                Item::ConfirmReport(ConfirmReport { origin, ranges })
            }
            other => return Err(DecodeError::UnknownItem(other)),
        })
    }
}

//! The wire format. Compact, versioned and hostile-input safe: every length
//! is checked against what remains of the frame before anything is
//! allocated, and decoding arbitrary bytes returns an error, never panics.
//!
//! ```text
//! frame  = header body [tag]
//! header = magic "HS" | version u8 | flags u8 | body_len u32 BE
//!        | sender peer u64 BE | sender origin u64 BE | frame seq u64 BE
//!        | sent at (Unix ms) u64 BE                                       (40 bytes)
//! body   = item*
//! tag    = HMAC-SHA256(receiver peer u64 BE ‖ [receiver origin u64 BE]
//!          ‖ header ‖ body), 32 bytes, present when flags & AUTH; the
//!          receiver origin is in it when flags & BOUND
//! ```
//!
//! The tag covers the receiver's identity, which is not sent: a frame
//! captured on its way to one peer does not verify at another. A *bound*
//! frame also covers the receiver's incarnation (its origin, which it
//! announced in its hello, see `transport::hello`), so a frame captured
//! before the receiver restarted does not verify at its next incarnation,
//! whose replay windows start empty. The frame seq and the send time let
//! the receiver refuse replays within one incarnation (see
//! `transport::replay`).
//!
//! Flags a receiver does not know make it refuse the frame, so a sender
//! only sets BOUND for a receiver that said in its hello that it knows it;
//! frames to a receiver that sent no hello (an older version, during a
//! rolling upgrade) are sealed as before.
//!
//! Integers inside the body are LEB128 varints, strings are a varint length
//! and UTF-8 bytes. The transport computes and checks the tag; this module
//! only reserves its place.

use std::sync::Arc;

use thiserror::Error;

use super::event::{Event, EventBody, EventId, Invalidation, Origin, Version};
use super::membership::PeerId;
use super::message::{Announcement, Digest, DigestEntry, EventItem, Item, OriginRepair, Route};
use super::time::Time;

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"HS";
/// The frame format's version, in every header.
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 40;
/// Bytes in the HMAC-SHA256 tag after the body, when [`FLAG_AUTH`] is set.
pub const TAG_LEN: usize = 32;
/// Header flag: a 32-byte authentication tag follows the body.
pub const FLAG_AUTH: u8 = 0x01;
/// Header flag: the tag also covers the receiver's origin.
pub const FLAG_BOUND: u8 = 0x02;
/// Every header flag this version understands.
pub const KNOWN_FLAGS: u8 = FLAG_AUTH | FLAG_BOUND;
/// Default bound on a frame body.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

const ITEM_EVENT: u8 = 1;
const ITEM_IHAVE: u8 = 2;
const ITEM_GRAFT: u8 = 3;
const ITEM_PRUNE: u8 = 4;
const ITEM_NEIGHBOR: u8 = 5;
const ITEM_DISCONNECT: u8 = 6;
const ITEM_DIGEST: u8 = 7;
const ITEM_REPAIR_INFO: u8 = 8;

const EV_RELAY: u8 = 1;
const EV_EXACT: u8 = 2;
const EV_STATE: u8 = 4;

const BODY_INVALIDATE: u8 = 1;
const BODY_CONFIG: u8 = 2;
const BODY_CONFIG_DELETE: u8 = 3;

/// Why a frame could not be decoded.
// Each variant's `#[error]` message documents it and its fields.
#[allow(missing_docs)]
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("bad magic bytes {0:02x?}")]
    BadMagic([u8; 2]),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown header flags {0:#04x}")]
    UnknownFlags(u8),
    #[error("frame body of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("frame ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("unknown item type {0}")]
    UnknownItem(u8),
    #[error("unknown event body type {0}")]
    UnknownEventBody(u8),
    #[error("varint longer than 64 bits")]
    VarintOverflow,
    #[error("{what} count {count} cannot fit in the remaining {remaining} bytes")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        remaining: usize,
    },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
}

/// The fixed-size frame header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Header flags ([`FLAG_AUTH`], and the transport's).
    pub flags: u8,
    /// Bytes of body after the header.
    pub body_len: u32,
    /// The sending peer.
    pub sender: PeerId,
    /// The sender's origin (its events' id prefix).
    pub sender_origin: Origin,
    /// The sender's frame counter, for replay windows.
    pub frame_seq: u64,
    /// The sender's wall clock when it sealed the frame, Unix milliseconds.
    pub sent_at_ms: u64,
}

impl FrameHeader {
    /// The header's wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..2].copy_from_slice(&MAGIC);
        h[2] = PROTOCOL_VERSION;
        h[3] = self.flags;
        h[4..8].copy_from_slice(&self.body_len.to_be_bytes());
        h[8..16].copy_from_slice(&self.sender.0.to_be_bytes());
        h[16..24].copy_from_slice(&self.sender_origin.0.to_be_bytes());
        h[24..32].copy_from_slice(&self.frame_seq.to_be_bytes());
        h[32..40].copy_from_slice(&self.sent_at_ms.to_be_bytes());
        h
    }

    /// Validates magic, version, flags and the body bound, so a reader knows
    /// how much more to read before allocating anything.
    pub fn decode(h: &[u8; HEADER_LEN], max_body: usize) -> Result<FrameHeader, DecodeError> {
        if h[0..2] != MAGIC {
            return Err(DecodeError::BadMagic([h[0], h[1]]));
        }
        if h[2] != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(h[2]));
        }
        let flags = h[3];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::UnknownFlags(flags));
        }
        let body_len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if body_len as usize > max_body {
            return Err(DecodeError::FrameTooLarge {
                len: body_len as usize,
                max: max_body,
            });
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_be_bytes(b)
        };
        Ok(FrameHeader {
            flags,
            body_len,
            sender: PeerId(u64_at(8)),
            sender_origin: Origin(u64_at(16)),
            frame_seq: u64_at(24),
            sent_at_ms: u64_at(32),
        })
    }

    /// Whether an authentication tag follows the body.
    pub fn has_tag(&self) -> bool {
        self.flags & FLAG_AUTH != 0
    }

    /// Whether the tag covers the receiver's origin too.
    pub fn is_bound(&self) -> bool {
        self.flags & FLAG_BOUND != 0
    }

    /// Bytes that follow the header: body and tag.
    pub fn remaining_len(&self) -> usize {
        self.body_len as usize + if self.has_tag() { TAG_LEN } else { 0 }
    }
}

/// Encodes header and body into `out` (cleared first). `flags` says whether
/// a tag follows (which the caller computes over `out` and appends) and what
/// it covers.
pub fn encode_frame(
    sender: PeerId,
    sender_origin: Origin,
    frame_seq: u64,
    sent_at_ms: u64,
    items: &[Item],
    flags: u8,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    for item in items {
        put_item(out, item);
    }
    let body_len = u32::try_from(out.len() - HEADER_LEN).unwrap_or(u32::MAX);
    let header = FrameHeader {
        flags,
        body_len,
        sender,
        sender_origin,
        frame_seq,
        sent_at_ms,
    };
    out[..HEADER_LEN].copy_from_slice(&header.encode());
}

/// Decodes a whole body. Any error rejects the whole frame.
pub fn decode_body(body: &[u8]) -> Result<Vec<Item>, DecodeError> {
    let mut r = Reader { buf: body, pos: 0 };
    let mut items = Vec::new();
    while r.remaining() > 0 {
        items.push(r.item()?);
    }
    Ok(items)
}

/// The encoded size of one item, computed without allocating.
pub fn item_len(item: &Item) -> usize {
    let mut c = Counter(0);
    put_item(&mut c, item);
    c.0
}

/// The encoded size of one event (the `max_event_bytes` limit applies to it).
pub fn event_len(event: &Event) -> usize {
    let mut c = Counter(0);
    put_event(&mut c, event);
    c.0
}

// ---- encoding -------------------------------------------------------------

/// Where encoded bytes go: a buffer, or a counter that only measures.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn put_u8(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

fn put_varint(s: &mut impl Sink, mut v: u64) {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = byte;
            n += 1;
            break;
        }
        buf[n] = byte | 0x80;
        n += 1;
    }
    s.put(&buf[..n]);
}

fn put_u64(s: &mut impl Sink, v: u64) {
    s.put(&v.to_be_bytes());
}

fn put_str(s: &mut impl Sink, v: &str) {
    put_varint(s, v.len() as u64);
    s.put(v.as_bytes());
}

fn put_strs(s: &mut impl Sink, v: &[String]) {
    put_varint(s, v.len() as u64);
    for x in v {
        put_str(s, x);
    }
}

fn put_id(s: &mut impl Sink, id: &EventId) {
    put_u64(s, id.origin.0);
    put_varint(s, id.seq);
}

fn put_version(s: &mut impl Sink, v: &Version) {
    put_varint(s, v.hlc);
    put_u64(s, v.origin.0);
}

fn put_event(s: &mut impl Sink, e: &Event) {
    put_id(s, &e.id);
    put_varint(s, e.published_at.as_micros());
    match &e.body {
        EventBody::Invalidate(inv) => {
            s.put_u8(BODY_INVALIDATE);
            put_str(s, &inv.cache);
            s.put_u8(u8::from(inv.all));
            put_strs(s, &inv.keys);
            put_strs(s, &inv.prefixes);
            put_strs(s, &inv.tags);
        }
        EventBody::Config {
            key,
            value,
            version,
        } => {
            s.put_u8(BODY_CONFIG);
            put_str(s, key);
            put_str(s, value);
            put_version(s, version);
        }
        EventBody::ConfigDelete { key, version } => {
            s.put_u8(BODY_CONFIG_DELETE);
            put_str(s, key);
            put_version(s, version);
        }
    }
}

/// An event item's flag byte. The wire keeps three flags (relay, exact,
/// state); a [`Route`] is one of their five legal combinations.
fn route_flags(route: Route) -> u8 {
    match route {
        Route::Push => 0,
        Route::TreeRelay => EV_RELAY,
        Route::GraftAnswer => EV_RELAY | EV_EXACT,
        Route::Repair => EV_EXACT,
        Route::ConfigState => EV_EXACT | EV_STATE,
    }
}

/// The route of a flag byte; `None` for a combination no sender makes.
fn route_of(flags: u8) -> Option<Route> {
    const ROUTES: [Route; 5] = [
        Route::Push,
        Route::TreeRelay,
        Route::GraftAnswer,
        Route::Repair,
        Route::ConfigState,
    ];
    ROUTES.into_iter().find(|r| route_flags(*r) == flags)
}

fn put_item(s: &mut impl Sink, item: &Item) {
    match item {
        Item::Event(ev) => {
            s.put_u8(ITEM_EVENT);
            s.put_u8(route_flags(ev.route));
            s.put_u8(ev.hop);
            put_event(s, &ev.event);
        }
        Item::IHave(list) => {
            s.put_u8(ITEM_IHAVE);
            put_varint(s, list.len() as u64);
            for a in list {
                put_id(s, &a.id);
                s.put_u8(a.hop);
            }
        }
        Item::Graft(ids) => {
            s.put_u8(ITEM_GRAFT);
            put_varint(s, ids.len() as u64);
            for id in ids {
                put_id(s, id);
            }
        }
        Item::Prune => s.put_u8(ITEM_PRUNE),
        Item::Neighbor => s.put_u8(ITEM_NEIGHBOR),
        Item::Disconnect => s.put_u8(ITEM_DISCONNECT),
        Item::Digest(d) => {
            s.put_u8(ITEM_DIGEST);
            s.put_u8(u8::from(d.reply_wanted));
            put_varint(s, d.since.as_micros());
            put_varint(s, d.origins.len() as u64);
            for e in &d.origins {
                put_u64(s, e.origin.0);
                match e.member {
                    Some(m) => {
                        s.put_u8(1);
                        put_u64(s, m.0);
                    }
                    None => s.put_u8(0),
                }
                put_varint(s, e.watermark);
            }
            put_varint(s, d.config.len() as u64);
            for (key, v) in &d.config {
                put_str(s, key);
                put_version(s, v);
            }
        }
        Item::RepairInfo(list) => {
            s.put_u8(ITEM_REPAIR_INFO);
            put_varint(s, list.len() as u64);
            for r in list {
                put_u64(s, r.origin.0);
                put_varint(s, r.through);
                s.put_u8(u8::from(r.lost));
            }
        }
    }
}

// ---- decoding -------------------------------------------------------------

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
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

    fn item(&mut self) -> Result<Item, DecodeError> {
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
            other => return Err(DecodeError::UnknownItem(other)),
        })
    }
}

#[cfg(test)]
mod tests;

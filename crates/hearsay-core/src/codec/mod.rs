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

use thiserror::Error;

use super::confirm::Outcome;
use super::event::{Event, EventBody, EventId, Invalidation, Origin, Version};
use super::membership::PeerId;
use super::message::{
    Announcement, ConfirmReport, ConfirmWant, Digest, DigestEntry, EventItem, Item, OriginRepair,
    Route, SettledRange,
};
use super::time::Time;

mod decode;
mod encode;

use decode::Reader;
use encode::{Counter, put_event, put_item};

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
// Confirmations: sent only to peers whose hello says they decode them.
const ITEM_CONFIRM_WANT: u8 = 9;
const ITEM_CONFIRM_REPORT: u8 = 10;

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
    let mut r = Reader::new(body);
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

#[cfg(test)]
mod tests;

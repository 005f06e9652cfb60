//! Reading and writing whole frames on a byte stream: the header first
//! (bounded before any allocation), then body and tag, then the tag check,
//! then decoding. Any failure ends the connection: after a bad header the
//! stream cannot be trusted to be in step.
//!
//! Two clocks guard a reader: between frames a connection may idle (peers
//! keep connections open), but once a frame has started the rest of it must
//! arrive promptly, so a slow sender cannot hold a half-read frame forever.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::keyring::{AuthError, Keyring};
use crate::gossip::codec::{self, DecodeError, FrameHeader, HEADER_LEN, TAG_LEN};
use crate::gossip::{Item, Origin, PeerId};

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// The connection broke between frames (reset, or given up by the
    /// kernel when the peer stopped acknowledging): nothing was cut short.
    #[error("connection lost between frames: {0}")]
    Lost(std::io::Error),
    #[error("no frame for {0:?}")]
    Idle(Duration),
    #[error("frame not complete within {0:?} of its first byte")]
    Slow(Duration),
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// The tag did not verify; `claimed` is the sender the header names
    /// (not proven: for telling which peer's key looks wrong).
    #[error("frame rejected: {error}")]
    Auth { error: AuthError, claimed: PeerId },
    #[error("unauthenticated frame while a key is configured, or the reverse")]
    TagMismatch { claimed: PeerId },
}

impl FrameError {
    /// The `reason` label of `hearsay_frames_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Closed | FrameError::Io(_) | FrameError::Lost(_) | FrameError::Idle(_) => {
                "io"
            }
            FrameError::Slow(_) => "slow",
            FrameError::Decode(DecodeError::FrameTooLarge { .. }) => "too_large",
            FrameError::Decode(DecodeError::BadMagic(_) | DecodeError::UnsupportedVersion(_)) => {
                "bad_header"
            }
            // Before authentication: a newer sender's flag, or noise. Not
            // `malformed`, which means authentic but undecodable.
            FrameError::Decode(DecodeError::UnknownFlags(_)) => "unknown_flags",
            FrameError::Decode(_) => "malformed",
            FrameError::Auth {
                error: AuthError::MissingTag,
                ..
            }
            | FrameError::TagMismatch { .. } => "missing_tag",
            FrameError::Auth {
                error: AuthError::BadTag,
                ..
            } => "bad_tag",
        }
    }

    /// For an authentication failure, the sender the frame claimed.
    pub fn claimed_sender(&self) -> Option<PeerId> {
        match self {
            FrameError::Auth { claimed, .. } | FrameError::TagMismatch { claimed } => {
                Some(*claimed)
            }
            _ => None,
        }
    }
}

/// Bounds on one read.
#[derive(Copy, Clone, Debug)]
pub struct ReadLimits {
    pub max_body: usize,
    /// How long a connection may stay silent between frames.
    pub idle: Duration,
    /// How long the rest of a frame may take once its first byte arrived.
    pub frame: Duration,
}

/// A frame that passed every check.
#[derive(Debug)]
pub struct ReceivedFrame {
    pub header: FrameHeader,
    pub items: Vec<Item>,
    /// Bytes on the wire, header and tag included.
    pub len: usize,
}

/// Who a frame must be sealed for: this node, and (for bound frames) this
/// incarnation of it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Me {
    pub peer: PeerId,
    pub origin: Origin,
}

/// Reads one frame addressed to `me`. `Ok(None)` is a clean end of stream
/// between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limits: ReadLimits,
    keys: &Keyring,
    me: Me,
) -> Result<Option<ReceivedFrame>, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    match tokio::time::timeout(limits.idle, r.read_exact(&mut head[..1])).await {
        Err(_) => return Err(FrameError::Idle(limits.idle)),
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(FrameError::Lost(e)),
    }
    let rest = async {
        r.read_exact(&mut head[1..]).await?;
        let header = FrameHeader::decode(&head, limits.max_body)?;
        if header.has_tag() == keys.is_insecure() {
            return Err(FrameError::TagMismatch {
                claimed: header.sender,
            });
        }
        let mut rest = vec![0u8; header.remaining_len()];
        r.read_exact(&mut rest).await?;
        Ok((header, rest))
    };
    let (header, rest) = tokio::time::timeout(limits.frame, rest)
        .await
        .map_err(|_| FrameError::Slow(limits.frame))??;
    let body_len = header.body_len as usize;
    let (body, tag) = rest.split_at(body_len);
    let mut signed = Vec::with_capacity(16 + HEADER_LEN + body_len);
    signed.extend_from_slice(&me.peer.0.to_be_bytes());
    if header.is_bound() {
        signed.extend_from_slice(&me.origin.0.to_be_bytes());
    }
    signed.extend_from_slice(&head);
    signed.extend_from_slice(body);
    keys.verify(&signed, header.has_tag().then_some(tag))
        .map_err(|error| FrameError::Auth {
            error,
            claimed: header.sender,
        })?;
    let items = codec::decode_body(body)?;
    Ok(Some(ReceivedFrame {
        header,
        items,
        len: HEADER_LEN + rest.len(),
    }))
}

/// What goes into a sealed frame's header besides its items.
#[derive(Copy, Clone, Debug)]
pub struct Seal {
    pub receiver: PeerId,
    /// The receiver's incarnation, from its hello: the frame is bound to it.
    /// `None` for a receiver that sent no hello (an older version).
    pub receiver_origin: Option<Origin>,
    pub sender: PeerId,
    pub origin: Origin,
    pub frame_seq: u64,
    pub sent_at_ms: u64,
}

/// Encodes and signs one frame for `seal.receiver` into `out`.
pub fn seal_frame(seal: Seal, items: &[Item], keys: &Keyring, out: &mut Vec<u8>) {
    let keyed = !keys.is_insecure();
    let flags = match (keyed, seal.receiver_origin) {
        (false, _) => 0,
        (true, None) => codec::FLAG_AUTH,
        (true, Some(_)) => codec::FLAG_AUTH | codec::FLAG_BOUND,
    };
    codec::encode_frame(
        seal.sender,
        seal.origin,
        seal.frame_seq,
        seal.sent_at_ms,
        items,
        flags,
        out,
    );
    let receiver = seal.receiver.0.to_be_bytes();
    let tag = match seal.receiver_origin {
        Some(o) => keys.sign(&[&receiver, &o.0.to_be_bytes(), out]),
        None => keys.sign(&[&receiver, out]),
    };
    if let Some(tag) = tag {
        debug_assert_eq!(tag.as_ref().len(), TAG_LEN);
        out.extend_from_slice(tag.as_ref());
    }
}

/// Unix milliseconds now, for `sent_at_ms`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

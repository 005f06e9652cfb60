//! Reading and writing whole frames on a byte stream: the header first
//! (bounded before any allocation), then body and tag, then the tag check,
//! then decoding. Any failure ends the connection: after a bad header the
//! stream cannot be trusted to be in step.

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
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("frame rejected: {0}")]
    Auth(#[from] AuthError),
    #[error("unauthenticated frame while a key is configured, or the reverse")]
    TagMismatch,
}

impl FrameError {
    /// The `reason` label of `hearsay_frames_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Closed | FrameError::Io(_) => "io",
            FrameError::Decode(DecodeError::FrameTooLarge { .. }) => "too_large",
            FrameError::Decode(DecodeError::BadMagic(_) | DecodeError::UnsupportedVersion(_)) => {
                "bad_header"
            }
            FrameError::Decode(_) => "malformed",
            FrameError::Auth(AuthError::MissingTag) | FrameError::TagMismatch => "missing_tag",
            FrameError::Auth(AuthError::BadTag) => "bad_tag",
        }
    }
}

/// A frame that passed every check.
#[derive(Debug)]
pub struct ReceivedFrame {
    pub header: FrameHeader,
    pub items: Vec<Item>,
    /// Bytes on the wire, header and tag included.
    pub len: usize,
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: usize,
    keys: &Keyring,
) -> Result<Option<ReceivedFrame>, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut head[1..]).await?;
    let header = FrameHeader::decode(&head, max_body)?;
    if header.has_tag() == keys.is_insecure() {
        return Err(FrameError::TagMismatch);
    }
    let mut rest = vec![0u8; header.remaining_len()];
    r.read_exact(&mut rest).await?;
    let body_len = header.body_len as usize;
    let (body, tag) = rest.split_at(body_len);
    let mut signed = Vec::with_capacity(HEADER_LEN + body_len);
    signed.extend_from_slice(&head);
    signed.extend_from_slice(body);
    keys.verify(&signed, header.has_tag().then_some(tag))?;
    let items = codec::decode_body(body)?;
    Ok(Some(ReceivedFrame {
        header,
        items,
        len: HEADER_LEN + rest.len(),
    }))
}

/// Encodes and signs one frame into `out`.
pub fn seal_frame(
    sender: PeerId,
    origin: Origin,
    frame_seq: u64,
    items: &[Item],
    keys: &Keyring,
    out: &mut Vec<u8>,
) {
    codec::encode_frame(sender, origin, frame_seq, items, !keys.is_insecure(), out);
    if let Some(tag) = keys.sign(out) {
        debug_assert_eq!(tag.as_ref().len(), TAG_LEN);
        out.extend_from_slice(tag.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(keys: &Keyring) -> Vec<u8> {
        let mut out = Vec::new();
        seal_frame(
            PeerId(1),
            Origin(2),
            3,
            &[Item::Prune, Item::Neighbor],
            keys,
            &mut out,
        );
        out
    }

    #[tokio::test]
    async fn a_sealed_frame_reads_back_with_the_same_key() {
        let keys = Keyring::new(b"k-0123456789abcdef", None);
        let bytes = sealed(&keys);
        let mut r = &bytes[..];
        let f = read_frame(&mut r, 1 << 20, &keys).await.unwrap().unwrap();
        assert_eq!(f.items, vec![Item::Prune, Item::Neighbor]);
        assert_eq!(f.len, bytes.len());
        assert_eq!(f.header.sender, PeerId(1));
        assert!(read_frame(&mut r, 1 << 20, &keys).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_frame_with_another_key_or_no_tag_is_rejected() {
        let keys = Keyring::new(b"k-0123456789abcdef", None);
        let other = Keyring::new(b"x-0123456789abcdef", None);
        let bytes = sealed(&other);
        let err = read_frame(&mut &bytes[..], 1 << 20, &keys)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "bad_tag");
        let bare = sealed(&Keyring::insecure());
        let err = read_frame(&mut &bare[..], 1 << 20, &keys)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "missing_tag");
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_reading_the_body() {
        let keys = Keyring::insecure();
        let mut bytes = sealed(&keys);
        bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = read_frame(&mut &bytes[..], 1 << 20, &keys)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "too_large");
    }

    #[tokio::test]
    async fn a_tampered_body_fails_the_tag_check() {
        let keys = Keyring::new(b"k-0123456789abcdef", None);
        let mut bytes = sealed(&keys);
        bytes[HEADER_LEN] ^= 0xff;
        let err = read_frame(&mut &bytes[..], 1 << 20, &keys)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "bad_tag");
    }
}

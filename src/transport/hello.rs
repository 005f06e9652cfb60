//! The hello: the first bytes a receiver writes back on a gossip connection
//! it admitted. It says which incarnation (origin) is listening and what the
//! receiver understands, so the sender can bind its frames to that
//! incarnation (`codec::FLAG_BOUND`).
//!
//! ```text
//! hello = magic "HR" | version u8 (1) | capabilities u8 (bound 0x01,
//!         confirmations 0x02)
//!       | receiver peer u64 BE | receiver origin u64 BE              (20 bytes)
//!       [tag]   HMAC-SHA256("hearsay hello" ‖ the 20 bytes), when keyed
//! ```
//!
//! Versions before the hello never read from a connection they opened, so
//! they ignore it; a sender that gets no hello within a short wait seals
//! frames as before (a receiver from before the hello). A hello whose tag
//! does not verify means the two sides hold different keys: the sender logs
//! it, counts it, and the peer shows `auth: failing`.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::keyring::{AuthError, Keyring};
use crate::gossip::codec::TAG_LEN;
use crate::gossip::{Origin, PeerId};

pub const MAGIC: [u8; 2] = *b"HR";
pub const VERSION: u8 = 1;
pub const LEN: usize = 20;
/// Capability: frames may be bound to the receiver's origin.
pub const CAP_BOUND: u8 = 0x01;
/// Capability: the receiver decodes confirmation items (`ConfirmWant`,
/// `ConfirmReport`); a version before them refuses a frame holding one.
pub const CAP_CONFIRM: u8 = 0x02;
/// What this version understands.
pub const CAPABILITIES: u8 = CAP_BOUND | CAP_CONFIRM;

const CONTEXT: &[u8] = b"hearsay hello";

/// What a receiver said about itself.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub peer: PeerId,
    pub origin: Origin,
    pub capabilities: u8,
}

impl Hello {
    pub fn binds(&self) -> bool {
        self.capabilities & CAP_BOUND != 0
    }

    pub fn confirms(&self) -> bool {
        self.capabilities & CAP_CONFIRM != 0
    }
}

#[derive(Debug, Error)]
pub enum HelloError {
    #[error("connection closed before a hello")]
    Closed,
    #[error("no hello within {0:?}")]
    Timeout(Duration),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a hello (magic {0:02x?})")]
    BadMagic([u8; 2]),
    #[error("hello version {0} is not understood")]
    UnknownVersion(u8),
    #[error("hello rejected: {0}")]
    Auth(#[from] AuthError),
}

/// The bytes of a hello, tagged when `keys` sign.
pub fn encode(hello: Hello, keys: &Keyring) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(hello.capabilities);
    out.extend_from_slice(&hello.peer.0.to_be_bytes());
    out.extend_from_slice(&hello.origin.0.to_be_bytes());
    if let Some(tag) = keys.sign(&[CONTEXT, &out]) {
        out.extend_from_slice(tag.as_ref());
    }
    out
}

/// Bytes of a hello on the wire with `keys` (the tag only when keyed).
pub fn wire_len(keys: &Keyring) -> usize {
    if keys.is_insecure() {
        LEN
    } else {
        LEN + TAG_LEN
    }
}

/// Checks and reads a hello from exactly [`wire_len`] bytes.
pub fn decode(bytes: &[u8], keys: &Keyring) -> Result<Hello, HelloError> {
    let head = &bytes[..LEN.min(bytes.len())];
    if head.len() < LEN {
        return Err(HelloError::Closed);
    }
    if head[0..2] != MAGIC {
        return Err(HelloError::BadMagic([head[0], head[1]]));
    }
    if head[2] != VERSION {
        return Err(HelloError::UnknownVersion(head[2]));
    }
    let tag = (!keys.is_insecure()).then(|| &bytes[LEN..]);
    let mut signed = Vec::with_capacity(CONTEXT.len() + LEN);
    signed.extend_from_slice(CONTEXT);
    signed.extend_from_slice(head);
    keys.verify(&signed, tag)?;
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[i..i + 8]);
        u64::from_be_bytes(b)
    };
    Ok(Hello {
        capabilities: head[3],
        peer: PeerId(u64_at(4)),
        origin: Origin(u64_at(12)),
    })
}

/// Reads one hello within `wait`, and checks its tag against `keys`.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    keys: &Keyring,
    wait: Duration,
) -> Result<Hello, HelloError> {
    let read = async {
        let mut buf = vec![0u8; wire_len(keys)];
        match r.read_exact(&mut buf[..LEN]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(HelloError::Closed);
            }
            Err(e) => return Err(e.into()),
        }
        // Refuse a stranger before waiting for a tag it may never send.
        if buf[0..2] != MAGIC {
            return Err(HelloError::BadMagic([buf[0], buf[1]]));
        }
        if buf[2] != VERSION {
            return Err(HelloError::UnknownVersion(buf[2]));
        }
        r.read_exact(&mut buf[LEN..]).await?;
        decode(&buf, keys)
    };
    tokio::time::timeout(wait, read)
        .await
        .map_err(|_| HelloError::Timeout(wait))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(1);

    fn hello() -> Hello {
        Hello {
            peer: PeerId(5),
            origin: Origin(6),
            capabilities: CAPABILITIES,
        }
    }

    #[tokio::test]
    async fn a_hello_reads_back_with_the_same_key() {
        let keys = Keyring::new(b"k-0123456789abcdef", None);
        let bytes = encode(hello(), &keys);
        assert_eq!(bytes.len(), LEN + TAG_LEN);
        let got = read(&mut &bytes[..], &keys, WAIT).await.unwrap();
        assert_eq!(got, hello());
        assert!(got.binds());
    }

    #[tokio::test]
    async fn a_hello_under_another_key_is_refused() {
        let keys = Keyring::new(b"k-0123456789abcdef", None);
        let other = Keyring::new(b"x-0123456789abcdef", None);
        let bytes = encode(hello(), &other);
        let err = read(&mut &bytes[..], &keys, WAIT).await.unwrap_err();
        assert!(matches!(err, HelloError::Auth(AuthError::BadTag)), "{err}");
    }

    #[tokio::test]
    async fn without_a_key_there_is_no_tag() {
        let keys = Keyring::insecure();
        let bytes = encode(hello(), &keys);
        assert_eq!(bytes.len(), LEN);
        assert_eq!(read(&mut &bytes[..], &keys, WAIT).await.unwrap(), hello());
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_a_timeout_and_garbage_is_refused() {
        let keys = Keyring::insecure();
        let (_w, mut r) = tokio::io::duplex(64);
        assert!(matches!(
            read(&mut r, &keys, WAIT).await,
            Err(HelloError::Timeout(_))
        ));
        let junk = [
            b'H', b'S', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(matches!(
            read(&mut &junk[..], &keys, WAIT).await,
            Err(HelloError::BadMagic(_))
        ));
    }
}

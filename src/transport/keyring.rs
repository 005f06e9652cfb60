//! Frame authentication: HMAC-SHA256 over header and body with a shared key.
//! A keyring holds a primary key (used to sign) and optionally a secondary
//! one (also accepted), so a key can be rotated without downtime: add the
//! new key as secondary everywhere, swap, then drop the old one.
//!
//! `ring` computes the MAC: it is maintained, constant-time on verify, and
//! already in the dependency tree through rustls.

use std::path::Path;
use std::sync::{Arc, RwLock};

use ring::hmac;
use thiserror::Error;

use crate::settings::{KeySource, MIN_KEY_LEN};

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    ReadFailed {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key in {path} is shorter than {MIN_KEY_LEN} bytes")]
    TooShort { path: String },
}

/// Why a tag did not check out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("frame has no authentication tag")]
    MissingTag,
    #[error("authentication tag matches no key")]
    BadTag,
}

pub struct Keyring {
    primary: Option<hmac::Key>,
    secondary: Option<hmac::Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary.is_some())
            .field("secondary", &self.secondary.is_some())
            .finish()
    }
}

fn key(bytes: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, bytes)
}

fn read_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let raw = std::fs::read(path).map_err(|source| KeyError::ReadFailed {
        path: path.display().to_string(),
        source,
    })?;
    // A Secret written by hand often ends in a newline; it is not key.
    let trimmed = raw.trim_ascii().to_vec();
    if trimmed.len() < MIN_KEY_LEN {
        return Err(KeyError::TooShort {
            path: path.display().to_string(),
        });
    }
    Ok(trimmed)
}

impl Keyring {
    /// No keys: frames go out untagged and are accepted untagged.
    pub fn insecure() -> Keyring {
        Keyring {
            primary: None,
            secondary: None,
        }
    }

    pub fn new(primary: &[u8], secondary: Option<&[u8]>) -> Keyring {
        Keyring {
            primary: Some(key(primary)),
            secondary: secondary.map(key),
        }
    }

    pub fn load(source: &KeySource) -> Result<Keyring, KeyError> {
        Ok(match source {
            KeySource::Insecure => Keyring::insecure(),
            KeySource::Inline(k) => Keyring::new(k, None),
            KeySource::Files { primary, secondary } => {
                let p = read_key(primary)?;
                // No secondary file: no rotation in progress.
                let s = secondary
                    .as_deref()
                    .filter(|path| path.exists())
                    .map(read_key)
                    .transpose()?;
                Keyring::new(&p, s.as_deref())
            }
        })
    }

    pub fn is_insecure(&self) -> bool {
        self.primary.is_none()
    }

    /// The tag for the concatenation of `parts`, if this keyring signs.
    pub fn sign(&self, parts: &[&[u8]]) -> Option<hmac::Tag> {
        self.primary.as_ref().map(|k| {
            let mut ctx = hmac::Context::with_key(k);
            for p in parts {
                ctx.update(p);
            }
            ctx.sign()
        })
    }

    /// Checks a frame's tag against the primary key, then the secondary.
    pub fn verify(&self, data: &[u8], tag: Option<&[u8]>) -> Result<(), AuthError> {
        let Some(primary) = &self.primary else {
            return Ok(());
        };
        let tag = tag.ok_or(AuthError::MissingTag)?;
        if hmac::verify(primary, data, tag).is_ok() {
            return Ok(());
        }
        match &self.secondary {
            Some(s) if hmac::verify(s, data, tag).is_ok() => Ok(()),
            _ => Err(AuthError::BadTag),
        }
    }
}

/// The keyring in use, swappable while running (for rotation).
#[derive(Clone, Debug)]
pub struct SharedKeyring(Arc<RwLock<Arc<Keyring>>>);

impl SharedKeyring {
    pub fn new(k: Keyring) -> SharedKeyring {
        SharedKeyring(Arc::new(RwLock::new(Arc::new(k))))
    }

    pub fn current(&self) -> Arc<Keyring> {
        // A poisoned lock only means a writer panicked mid-swap; the Arc
        // inside is still whole.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, k: Keyring) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_signed_with_either_key_of_the_ring_verifies() {
        let old = Keyring::new(b"old-key-0123456789", None);
        let rotating = Keyring::new(b"new-key-0123456789", Some(b"old-key-0123456789"));
        let data = b"header and body";
        let tag = old.sign(&[data]).unwrap();
        assert_eq!(rotating.verify(data, Some(tag.as_ref())), Ok(()));
        let new_tag = rotating.sign(&[&data[..6], &data[6..]]).unwrap();
        assert_eq!(
            old.verify(data, Some(new_tag.as_ref())),
            Err(AuthError::BadTag)
        );
    }

    #[test]
    fn a_missing_or_wrong_tag_is_refused_and_insecure_accepts_anything() {
        let k = Keyring::new(b"key-0123456789abcdef", None);
        assert_eq!(k.verify(b"x", None), Err(AuthError::MissingTag));
        assert_eq!(k.verify(b"x", Some(&[0u8; 32])), Err(AuthError::BadTag));
        let tag = k.sign(&[b"x"]).unwrap();
        assert_eq!(k.verify(b"y", Some(tag.as_ref())), Err(AuthError::BadTag));
        assert_eq!(Keyring::insecure().verify(b"x", None), Ok(()));
    }

    #[test]
    fn key_files_are_trimmed_and_must_be_long_enough() {
        let dir = std::env::temp_dir().join(format!("hearsay-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef\n").unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let ring = Keyring::load(&KeySource::Files {
            primary: good.clone(),
            secondary: None,
        })
        .unwrap();
        let direct = Keyring::new(b"0123456789abcdef", None);
        let tag = direct.sign(&[b"d"]).unwrap();
        assert!(ring.verify(b"d", Some(tag.as_ref())).is_ok());
        let err = Keyring::load(&KeySource::Files {
            primary: short,
            secondary: None,
        })
        .unwrap_err();
        assert!(matches!(err, KeyError::TooShort { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

use super::*;

const ME: Me = Me {
    peer: PeerId(42),
    origin: Origin(420),
};

fn limits() -> ReadLimits {
    ReadLimits {
        max_body: 1 << 20,
        idle: Duration::from_secs(5),
        frame: Duration::from_secs(5),
    }
}

fn sealed_for(receiver: PeerId, keys: &Keyring) -> Vec<u8> {
    sealed_bound(receiver, None, keys)
}

fn sealed_bound(receiver: PeerId, receiver_origin: Option<Origin>, keys: &Keyring) -> Vec<u8> {
    let mut out = Vec::new();
    let seal = Seal {
        receiver,
        receiver_origin,
        sender: PeerId(1),
        origin: Origin(2),
        frame_seq: 3,
        sent_at_ms: 4,
    };
    seal_frame(seal, &[Item::Prune, Item::Neighbor], keys, &mut out);
    out
}

fn sealed(keys: &Keyring) -> Vec<u8> {
    sealed_for(ME.peer, keys)
}

#[tokio::test]
async fn a_sealed_frame_reads_back_with_the_same_key() {
    let keys = Keyring::new(b"k-0123456789abcdef", None);
    let bytes = sealed(&keys);
    let mut r = &bytes[..];
    let f = read_frame(&mut r, limits(), &keys, ME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.items, vec![Item::Prune, Item::Neighbor]);
    assert_eq!(f.len, bytes.len());
    assert_eq!(f.header.sender, PeerId(1));
    assert_eq!((f.header.frame_seq, f.header.sent_at_ms), (3, 4));
    assert!(
        read_frame(&mut r, limits(), &keys, ME)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_frame_with_another_key_or_no_tag_is_rejected() {
    let keys = Keyring::new(b"k-0123456789abcdef", None);
    let other = Keyring::new(b"x-0123456789abcdef", None);
    let bytes = sealed(&other);
    let err = read_frame(&mut &bytes[..], limits(), &keys, ME)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "bad_tag");
    let bare = sealed(&Keyring::insecure());
    let err = read_frame(&mut &bare[..], limits(), &keys, ME)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "missing_tag");
}

#[tokio::test]
async fn a_frame_sealed_for_another_peer_does_not_verify_here() {
    let keys = Keyring::new(b"k-0123456789abcdef", None);
    let bytes = sealed_for(PeerId(7), &keys);
    let err = read_frame(&mut &bytes[..], limits(), &keys, ME)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "bad_tag");
}

#[tokio::test]
async fn a_bound_frame_verifies_only_at_the_incarnation_it_was_sealed_for() {
    let keys = Keyring::new(b"k-0123456789abcdef", None);
    let bytes = sealed_bound(ME.peer, Some(ME.origin), &keys);
    let f = read_frame(&mut &bytes[..], limits(), &keys, ME)
        .await
        .unwrap()
        .unwrap();
    assert!(f.header.is_bound());
    // The same peer, restarted as a new origin.
    let next = Me {
        origin: Origin(421),
        ..ME
    };
    let err = read_frame(&mut &bytes[..], limits(), &keys, next)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "bad_tag");
    // An unbound frame (an older sender) still verifies at either.
    let legacy = sealed(&keys);
    let f = read_frame(&mut &legacy[..], limits(), &keys, next)
        .await
        .unwrap()
        .unwrap();
    assert!(!f.header.is_bound());
}

#[tokio::test]
async fn unknown_header_flags_have_their_own_reason() {
    let keys = Keyring::new(b"k-0123456789abcdef", None);
    let mut bytes = sealed(&keys);
    bytes[3] |= 0x40;
    let err = read_frame(&mut &bytes[..], limits(), &keys, ME)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "unknown_flags");
}

#[tokio::test]
async fn an_oversized_length_is_refused_before_reading_the_body() {
    let keys = Keyring::insecure();
    let mut bytes = sealed(&keys);
    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = read_frame(&mut &bytes[..], limits(), &keys, ME)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "too_large");
}

#[tokio::test]
async fn a_tampered_body_fails_the_tag_check() {
    let keys = Keyring::new(b"k-0123456789abcdef", None);
    let mut bytes = sealed(&keys);
    bytes[HEADER_LEN] ^= 0xff;
    let err = read_frame(&mut &bytes[..], limits(), &keys, ME)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "bad_tag");
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_stalls_after_its_first_byte_is_cut_off() {
    let keys = Keyring::insecure();
    let bytes = sealed(&keys);
    let (mut client, mut server) = tokio::io::duplex(1024);
    use tokio::io::AsyncWriteExt;
    client.write_all(&bytes[..10]).await.unwrap();
    let err = read_frame(&mut server, limits(), &keys, ME)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "slow");
    // Silence between frames is only idleness.
    let (_c, mut s) = tokio::io::duplex(1024);
    let err = read_frame(&mut s, limits(), &keys, ME).await.unwrap_err();
    assert!(matches!(err, FrameError::Idle(_)));
}

/// A bounded fuzz run in the test suite: random bytes, and valid frames
/// with random corruption, through the whole read path. Nothing panics;
/// everything either reads or is refused with a reason.
#[tokio::test]
async fn one_hundred_thousand_hostile_inputs_are_refused_without_panicking() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    let keys = Keyring::new(b"k-0123456789abcdef", None);
    let valid = sealed(&keys);
    let mut refused = 0usize;
    for i in 0..100_000 {
        let input: Vec<u8> = if i % 2 == 0 {
            let len = rng.random_range(0..200);
            let mut v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if v.len() >= 3 && rng.random_bool(0.5) {
                // A plausible header start, so decoding goes further in.
                v[0] = b'H';
                v[1] = b'S';
                v[2] = 1;
            }
            v
        } else {
            let mut v = valid.clone();
            let flips = rng.random_range(1..4);
            for _ in 0..flips {
                let at = rng.random_range(0..v.len());
                v[at] = rng.random();
            }
            let cut = rng.random_range(0..=v.len());
            v.truncate(cut);
            v
        };
        match read_frame(&mut &input[..], limits(), &keys, ME).await {
            Ok(Some(_)) | Ok(None) => {}
            Err(e) => {
                assert!(!e.reason().is_empty());
                refused += 1;
            }
        }
    }
    assert!(refused > 90_000, "only {refused} refused");
}

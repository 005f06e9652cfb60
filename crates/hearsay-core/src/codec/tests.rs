use std::sync::Arc;

use super::decode::route_of;
use super::encode::{put_varint, route_flags};
use super::*;
use proptest::prelude::*;

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9:]{1,12}", "\\PC{0,6}"]
}

fn arb_event() -> impl Strategy<Value = Event> {
    let id = (any::<u64>(), 1..u64::MAX).prop_map(|(o, s)| EventId {
        origin: Origin(o),
        seq: s,
    });
    let version = (any::<u64>(), any::<u64>()).prop_map(|(h, o)| Version {
        hlc: h,
        origin: Origin(o),
    });
    let body = prop_oneof![
        (
            arb_string(),
            any::<bool>(),
            prop::collection::vec(arb_string(), 0..4),
            prop::collection::vec(arb_string(), 0..3),
            prop::collection::vec(arb_string(), 0..3),
        )
            .prop_map(|(cache, all, keys, prefixes, tags)| {
                EventBody::Invalidate(Invalidation {
                    cache,
                    keys,
                    prefixes,
                    tags,
                    all,
                })
            }),
        (arb_string(), arb_string(), version.clone()).prop_map(|(key, value, version)| {
            EventBody::Config {
                key,
                value,
                version,
            }
        }),
        (arb_string(), version).prop_map(|(key, version)| EventBody::ConfigDelete { key, version }),
    ];
    (id, any::<u64>(), body).prop_map(|(id, t, body)| Event {
        id,
        published_at: Time::from_micros(t),
        body,
    })
}

fn arb_route() -> impl Strategy<Value = Route> {
    prop_oneof![
        Just(Route::Push),
        Just(Route::TreeRelay),
        Just(Route::GraftAnswer),
        Just(Route::Repair),
        Just(Route::ConfigState),
    ]
}

fn arb_item() -> impl Strategy<Value = Item> {
    let id = (any::<u64>(), 1..u64::MAX).prop_map(|(o, s)| EventId {
        origin: Origin(o),
        seq: s,
    });
    prop_oneof![
        (arb_route(), any::<u8>(), arb_event()).prop_map(|(route, hop, e)| {
            Item::Event(EventItem {
                route,
                hop,
                event: Arc::new(e),
            })
        }),
        prop::collection::vec((id.clone(), any::<u8>()), 0..5).prop_map(|v| Item::IHave(
            v.into_iter()
                .map(|(id, hop)| Announcement { id, hop })
                .collect()
        )),
        prop::collection::vec(id, 0..5).prop_map(Item::Graft),
        Just(Item::Prune),
        Just(Item::Neighbor),
        Just(Item::Disconnect),
        (
            any::<bool>(),
            any::<u64>(),
            prop::collection::vec((any::<u64>(), any::<Option<u64>>(), any::<u64>()), 0..4),
            prop::collection::vec((arb_string(), any::<u64>(), any::<u64>()), 0..3),
        )
            .prop_map(|(reply_wanted, since, o, c)| Item::Digest(Digest {
                reply_wanted,
                since: Time::from_micros(since),
                origins: o
                    .into_iter()
                    .map(|(origin, member, watermark)| DigestEntry {
                        origin: Origin(origin),
                        member: member.map(PeerId),
                        watermark,
                    })
                    .collect(),
                config: c
                    .into_iter()
                    .map(|(k, hlc, origin)| (
                        k,
                        Version {
                            hlc,
                            origin: Origin(origin)
                        }
                    ))
                    .collect(),
            })),
        prop::collection::vec((any::<u64>(), any::<u64>(), any::<bool>()), 0..4).prop_map(|v| {
            Item::RepairInfo(
                v.into_iter()
                    .map(|(o, through, lost)| OriginRepair {
                        origin: Origin(o),
                        through,
                        lost,
                    })
                    .collect(),
            )
        }),
        (any::<u64>(), 0..u64::MAX / 2, 0..1000u64).prop_map(|(o, from, len)| {
            Item::ConfirmWant(ConfirmWant {
                origin: Origin(o),
                from,
                through: from + len,
            })
        }),
        (
            any::<u64>(),
            prop::collection::vec((1..1000u64, 0..1000u64, 0..3usize), 0..6)
        )
            .prop_map(|(o, spans)| {
                let mut next = 0;
                let ranges = spans
                    .into_iter()
                    .map(|(gap, len, k)| {
                        let first = next + gap;
                        next = first + len;
                        SettledRange {
                            first,
                            last: first + len,
                            outcome: Outcome::ALL[k],
                        }
                    })
                    .collect();
                Item::ConfirmReport(ConfirmReport {
                    origin: Origin(o),
                    ranges,
                })
            }),
    ]
}

fn frame(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        PeerId(7),
        Origin(9),
        3,
        1_700_000_000_000,
        items,
        0,
        &mut out,
    );
    out
}

fn decode_frame(bytes: &[u8]) -> Result<(FrameHeader, Vec<Item>), DecodeError> {
    let head: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(DecodeError::Truncated("header"))?;
    let header = FrameHeader::decode(head, DEFAULT_MAX_FRAME)?;
    let body = bytes
        .get(HEADER_LEN..HEADER_LEN + header.body_len as usize)
        .ok_or(DecodeError::Truncated("body"))?;
    Ok((header, decode_body(body)?))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(1), ..ProptestConfig::default() })]

    #[test]
    fn every_item_survives_an_encode_decode_round_trip(items in prop::collection::vec(arb_item(), 0..6)) {
        let bytes = frame(&items);
        let (header, decoded) = decode_frame(&bytes).unwrap();
        prop_assert_eq!(header.sender, PeerId(7));
        prop_assert_eq!(header.sender_origin, Origin(9));
        prop_assert_eq!(header.frame_seq, 3);
        prop_assert_eq!(header.sent_at_ms, 1_700_000_000_000);
        prop_assert_eq!(header.body_len as usize, bytes.len() - HEADER_LEN);
        prop_assert_eq!(&decoded, &items);
        let measured: usize = items.iter().map(item_len).sum();
        prop_assert_eq!(measured, bytes.len() - HEADER_LEN);
    }

    #[test]
    fn decoding_arbitrary_bytes_returns_an_error_or_items_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_body(&body);
    }

    #[test]
    fn corrupting_a_valid_frame_never_panics(items in prop::collection::vec(arb_item(), 1..4), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut bytes = frame(&items);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode_frame(&bytes);
        let c = cut.index(bytes.len());
        let _ = decode_frame(&bytes[..c]);
    }
}

#[test]
fn header_rejects_bad_magic_version_flags_and_oversized_bodies() {
    let good = FrameHeader {
        flags: FLAG_AUTH,
        body_len: 10,
        sender: PeerId(1),
        sender_origin: Origin(2),
        frame_seq: 3,
        sent_at_ms: 4,
    };
    let bytes = good.encode();
    assert_eq!(FrameHeader::decode(&bytes, 10), Ok(good));
    assert_eq!(good.remaining_len(), 10 + TAG_LEN);
    assert_eq!(
        FrameHeader::decode(&bytes, 9),
        Err(DecodeError::FrameTooLarge { len: 10, max: 9 })
    );
    let mut b = bytes;
    b[0] = b'X';
    assert!(matches!(
        FrameHeader::decode(&b, 100),
        Err(DecodeError::BadMagic(_))
    ));
    let mut b = bytes;
    b[2] = 99;
    assert_eq!(
        FrameHeader::decode(&b, 100),
        Err(DecodeError::UnsupportedVersion(99))
    );
    let mut b = bytes;
    b[3] = 0x80;
    assert_eq!(
        FrameHeader::decode(&b, 100),
        Err(DecodeError::UnknownFlags(0x80))
    );
}

#[test]
fn a_huge_count_is_refused_before_allocating() {
    // IHAVE claiming 2^62 announcements in a 12-byte body.
    let mut body = vec![ITEM_IHAVE];
    put_varint(&mut body, 1 << 62);
    body.extend_from_slice(&[0; 3]);
    assert!(matches!(
        decode_body(&body),
        Err(DecodeError::CountTooLarge { .. })
    ));
    // A cache name claiming more bytes than remain.
    let mut body = vec![ITEM_EVENT, 0, 1];
    body.extend_from_slice(&7u64.to_be_bytes());
    body.extend_from_slice(&[1, 0, BODY_INVALIDATE]);
    put_varint(&mut body, 200);
    body.extend_from_slice(b"abc");
    assert!(matches!(
        decode_body(&body),
        Err(DecodeError::CountTooLarge {
            what: "cache name",
            ..
        })
    ));
    // A fixed-size field cut short.
    assert_eq!(
        decode_body(&[ITEM_EVENT, 0]),
        Err(DecodeError::Truncated("hop"))
    );
    let mut body = vec![ITEM_REPAIR_INFO, 1];
    body.extend_from_slice(&[0; 9]);
    body.push(7); // lost flag must be 0 or 1
    assert_eq!(
        decode_body(&body),
        Err(DecodeError::InvalidValue("lost flag"))
    );
}

#[test]
fn overlong_varints_and_zero_sequence_numbers_are_rejected() {
    let mut body = vec![ITEM_GRAFT];
    body.extend_from_slice(&[0xff; 10]);
    body.push(0);
    assert_eq!(decode_body(&body), Err(DecodeError::VarintOverflow));
    let mut body = vec![ITEM_GRAFT, 1];
    body.extend_from_slice(&7u64.to_be_bytes());
    body.push(0); // seq 0
    assert_eq!(
        decode_body(&body),
        Err(DecodeError::InvalidValue("event seq"))
    );
}

#[test]
fn invalid_utf8_in_a_string_is_rejected() {
    let event = Event {
        id: EventId {
            origin: Origin(1),
            seq: 1,
        },
        published_at: Time::ZERO,
        body: EventBody::Invalidate(Invalidation {
            cache: "ab".into(),
            keys: vec!["k".into()],
            ..Default::default()
        }),
    };
    let item = Item::Event(EventItem {
        route: Route::Push,
        hop: 1,
        event: Arc::new(event),
    });
    let mut bytes = frame(&[item]);
    let pos = bytes.windows(2).position(|w| w == b"ab").unwrap();
    bytes[pos] = 0xff;
    assert_eq!(decode_frame(&bytes), Err(DecodeError::InvalidUtf8));
}

#[test]
fn one_hundred_thousand_random_bodies_decode_without_panicking() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(42);
    let valid = frame(&[Item::Prune, Item::Neighbor]);
    let mut accepted = 0;
    for _ in 0..100_000 {
        let len = rng.random_range(0..96);
        let mut body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Bias towards plausible item types so the decoder goes deep.
        if let Some(b) = body.first_mut() {
            *b %= 10;
        }
        if decode_body(&body).is_ok() {
            accepted += 1;
        }
    }
    // Mostly garbage is refused, but short well-formed bodies do occur.
    assert!(accepted < 100_000);
    assert!(decode_frame(&valid).is_ok());
}

#[test]
fn each_route_keeps_the_flag_byte_older_senders_use_and_other_bytes_are_refused() {
    // relay = 1, exact = 2, state = 4, as the wire has had them.
    let old = [
        (Route::Push, 0u8),
        (Route::TreeRelay, 1),
        (Route::GraftAnswer, 3),
        (Route::Repair, 2),
        (Route::ConfigState, 6),
    ];
    for (route, flags) in old {
        assert_eq!(route_flags(route), flags, "{route:?}");
        assert_eq!(route_of(flags), Some(route));
    }
    for flags in [4u8, 5, 7, 8, 0x80] {
        assert_eq!(route_of(flags), None, "flags {flags:#x}");
    }
}

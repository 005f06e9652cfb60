//! Node tests: authentic frames with hostile numbers. A key holder that is
//! buggy can send anything the codec can express; the node must not panic,
//! wrap or lock out a well-behaved origin.

use crate::message::Inbound;
use proptest::prelude::*;

use super::*;
use crate::message::{DigestEntry, OriginRepair, Route};
use crate::records::MAX_SEQ;

const HOSTILE: u64 = 1;
const HONEST: u64 = 2;

fn seq() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        Just(0),
        Just(1),
        Just(MAX_SEQ),
        Just(MAX_SEQ + 1),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        any::<u64>(),
        0u64..100,
    ]
}

fn origin() -> impl Strategy<Value = Origin> + Clone {
    // Anything but the honest peer's origin: a key holder can always forge
    // that one's events, which no numeric check can tell apart.
    prop_oneof![
        Just(origin_of(0)),
        Just(Origin(7)),
        any::<u64>().prop_map(Origin)
    ]
    .prop_filter("not the honest origin", |o| *o != origin_of(HONEST))
}

fn route() -> impl Strategy<Value = Route> {
    prop_oneof![
        Just(Route::Push),
        Just(Route::TreeRelay),
        Just(Route::GraftAnswer),
        Just(Route::Repair),
        Just(Route::ConfigState),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    let id = || (origin(), seq()).prop_map(|(origin, seq)| EventId { origin, seq });
    prop_oneof![
        (id(), any::<u8>(), route()).prop_map(|(id, hop, route)| {
            Item::Event(EventItem {
                route,
                hop,
                event: Arc::new(Event {
                    id,
                    published_at: T0,
                    body: EventBody::Invalidate(inv("h")),
                }),
            })
        }),
        prop::collection::vec((id(), any::<u8>()), 0..4).prop_map(|v| Item::IHave(
            v.into_iter()
                .map(|(id, hop)| Announcement { id, hop })
                .collect()
        )),
        prop::collection::vec(id(), 0..4).prop_map(Item::Graft),
        prop::collection::vec((origin(), seq(), any::<bool>()), 0..4).prop_map(|v| {
            Item::Digest(crate::message::Digest {
                reply_wanted: true,
                since: Time::ZERO,
                origins: v
                    .into_iter()
                    .map(|(origin, watermark, m)| DigestEntry {
                        origin,
                        member: m.then_some(PeerId(HOSTILE)),
                        watermark,
                    })
                    .collect(),
                config: Vec::new(),
            })
        }),
        prop::collection::vec((origin(), seq(), any::<bool>()), 0..4).prop_map(|v| {
            Item::RepairInfo(
                v.into_iter()
                    .map(|(origin, through, lost)| OriginRepair {
                        origin,
                        through,
                        lost,
                    })
                    .collect(),
            )
        }),
        Just(Item::Prune),
        Just(Item::Neighbor),
        Just(Item::Disconnect),
    ]
}

fn honest(seq: u64, now: Time) -> Item {
    direct(&event(
        origin_of(HONEST),
        seq,
        now,
        &format!("honest-{seq}"),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_numbers_neither_panic_nor_stop_an_honest_origin(
        frames in prop::collection::vec(prop::collection::vec(item(), 1..6), 1..8),
    ) {
        let mut n = node_at(0, config(), T0);
        let mut fx = Vec::new();
        n.apply_membership(T0, &members(&[0, HOSTILE, HONEST]), &mut fx);
        n.start(T0, &mut fx);
        n.receive(T0, Inbound { from: PeerId(HONEST), sender_origin: origin_of(HONEST), frame_len: 60, items: vec![honest(1, T0)] }, &mut fx);
        let mut now = T0;
        for items in frames {
            now = now + Duration::from_millis(10);
            n.receive(now, Inbound { from: PeerId(HOSTILE), sender_origin: Origin(0xbad), frame_len: 60, items }, &mut fx);
        }
        // Through gap timeouts and forgetting, then the honest origin goes on.
        for _ in 0..70 {
            now = now + Duration::from_secs(1);
            n.timer(now, Timer::SyncWithRandomPeer, &mut fx);
        }
        fx.clear();
        for s in 2..=4 {
            n.receive(now, Inbound { from: PeerId(HONEST), sender_origin: origin_of(HONEST), frame_len: 60, items: vec![honest(s, now)] }, &mut fx);
        }
        let got = delivered(&fx);
        prop_assert_eq!(got.len(), 3, "honest events delivered: {:?}", got);
        prop_assert!(n.stats().implausible_numbers <= 1_000);
    }
}

#[test]
fn numbers_above_max_seq_are_counted_and_ignored() {
    let mut n = node_at(0, config(), T0);
    let mut fx = Vec::new();
    n.apply_membership(T0, &members(&[0, 1]), &mut fx);
    let o = Origin(55);
    let huge = MAX_SEQ + 1;
    let items = vec![
        direct(&event(o, huge, T0, "k")),
        Item::IHave(vec![Announcement {
            id: EventId {
                origin: o,
                seq: huge,
            },
            hop: 1,
        }]),
        Item::Digest(crate::message::Digest {
            reply_wanted: false,
            since: Time::ZERO,
            origins: vec![DigestEntry {
                origin: o,
                member: None,
                watermark: u64::MAX,
            }],
            config: Vec::new(),
        }),
        Item::RepairInfo(vec![OriginRepair {
            origin: o,
            through: u64::MAX,
            lost: true,
        }]),
    ];
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: Origin(9),
            frame_len: 60,
            items,
        },
        &mut fx,
    );
    assert_eq!(n.stats().implausible_numbers, 4);
    assert_eq!(n.records.watermark(o), 0);
    assert!(n.records.get(o).is_none_or(|r| r.known_max() == 0));
    // Its first real event is delivered.
    fx.clear();
    n.receive(
        T0,
        Inbound {
            from: PeerId(1),
            sender_origin: Origin(9),
            frame_len: 60,
            items: vec![direct(&event(o, 1, T0, "k"))],
        },
        &mut fx,
    );
    assert_eq!(delivered(&fx).len(), 1);
}

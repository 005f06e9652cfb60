//! Arbitrary bytes through the whole inbound frame path: header bounds,
//! tag check and body decoding. Every input must be read or refused with a
//! reason; none may panic, hang or allocate past the frame bound.
#![no_main]

use std::time::Duration;

use hearsay::gossip::{Origin, PeerId};
use hearsay::gossip::codec::{self, FrameHeader, HEADER_LEN};
use hearsay::transport::frame::{Me, ReadLimits, read_frame};
use hearsay::transport::keyring::Keyring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The decoder alone, on bodies and headers.
    let _ = codec::decode_body(data);
    if let Some(h) = data.get(..HEADER_LEN) {
        let _ = FrameHeader::decode(h.try_into().unwrap(), 1 << 20);
    }
    // The reader as the listener runs it, with and without a key.
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let limits = ReadLimits {
        max_body: 1 << 20,
        idle: Duration::from_secs(1),
        frame: Duration::from_secs(1),
    };
    for keys in [Keyring::insecure(), Keyring::new(b"fuzz-key-0123456789", None)] {
        let mut r = data;
        let _ = rt.block_on(read_frame(&mut r, limits, &keys, Me { peer: PeerId(1), origin: Origin(2) }));
    }
});

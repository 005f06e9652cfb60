//! Encoding items into a frame body, or only measuring them.

use super::*;

/// Where encoded bytes go: a buffer, or a counter that only measures.
pub(super) trait Sink {
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

pub(super) struct Counter(pub(super) usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

pub(super) fn put_varint(s: &mut impl Sink, mut v: u64) {
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

pub(super) fn put_event(s: &mut impl Sink, e: &Event) {
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
pub(super) fn route_flags(route: Route) -> u8 {
    match route {
        Route::Push => 0,
        Route::TreeRelay => EV_RELAY,
        Route::GraftAnswer => EV_RELAY | EV_EXACT,
        Route::Repair => EV_EXACT,
        Route::ConfigState => EV_EXACT | EV_STATE,
    }
}

pub(super) fn put_item(s: &mut impl Sink, item: &Item) {
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
        Item::ConfirmWant(w) => {
            s.put_u8(ITEM_CONFIRM_WANT);
            put_u64(s, w.origin.0);
            put_varint(s, w.from);
            put_varint(s, w.through);
        }
        Item::ConfirmReport(r) => {
            s.put_u8(ITEM_CONFIRM_REPORT);
            put_u64(s, r.origin.0);
            put_varint(s, r.ranges.len() as u64);
            // Each range as (gap from the previous range's end, length - 1,
            // outcome): a run of acknowledged seqs costs three bytes or so.
            let mut prev_end = 0u64;
            for g in &r.ranges {
                put_varint(s, g.first.saturating_sub(prev_end));
                put_varint(s, g.last.saturating_sub(g.first));
                s.put_u8(outcome_code(g.outcome));
                prev_end = g.last;
            }
        }
    }
}

pub(super) fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Acknowledged => 0,
        Outcome::Flushed => 1,
        Outcome::Rejected => 2,
    }
}

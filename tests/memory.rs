//! The retention buffer's byte bound is a memory bound: what it counts
//! must be close to what it really holds on the heap, for small events and
//! large ones. Measured with a counting allocator (this test binary's
//! own), glibc's per-allocation overhead included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use hearsay::gossip::event::{Event, EventBody, EventId, Invalidation, Origin};
use hearsay::gossip::retention::Retention;
use hearsay::gossip::time::Time;

struct Counting;

static HEAP: AtomicIsize = AtomicIsize::new(0);

/// What glibc's malloc really takes for `size` bytes: an 8-byte header,
/// rounded up to 16, at least 32.
fn chunk(size: usize) -> isize {
    ((size + 8).div_ceil(16) * 16).max(32) as isize
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP.fetch_add(chunk(new_size) - chunk(layout.size()), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn invalidation(seq: u64, keys: usize, key_len: usize) -> Event {
    Event {
        id: EventId {
            origin: Origin(7),
            seq,
        },
        published_at: Time::from_millis(seq),
        body: EventBody::Invalidate(Invalidation {
            cache: "products".into(),
            keys: (0..keys)
                .map(|k| format!("{k:0>width$}", width = key_len))
                .collect(),
            prefixes: Vec::new(),
            tags: Vec::new(),
            all: false,
        }),
    }
}

/// Heap held per event, and what the buffer counts per event, after
/// `count` events made by `make`.
fn per_event(count: u64, make: impl Fn(u64) -> Event) -> (f64, f64) {
    let mut r = Retention::new(Duration::from_secs(3600), usize::MAX);
    let before = HEAP.load(Ordering::Relaxed);
    for seq in 1..=count {
        r.insert(Time::from_millis(seq), Arc::new(make(seq)), 1, None, false);
    }
    let held = (HEAP.load(Ordering::Relaxed) - before) as f64 / count as f64;
    let counted = r.bytes() as f64 / count as f64;
    (held, counted)
}

#[test]
fn the_byte_bound_counts_what_the_heap_holds() {
    // One event at a time per test thread would be disturbed by other
    // tests allocating; this binary holds just this test.
    for (what, keys, key_len) in [
        ("one short key", 1, 9),
        ("ten keys", 10, 24),
        ("a hundred long keys", 100, 200),
    ] {
        let (held, counted) = per_event(20_000, |seq| invalidation(seq, keys, key_len));
        let ratio = counted / held;
        eprintln!("{what}: heap {held:.0} B/event, counted {counted:.0} B/event ({ratio:.2})");
        assert!(
            (0.8..=1.25).contains(&ratio),
            "{what}: the buffer counts {counted:.0} B per event but holds {held:.0} B"
        );
    }
}

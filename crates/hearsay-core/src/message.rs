//! The protocol's vocabulary: the items a frame carries between two nodes.
//!
//! A frame is a batch of items for one peer; the core emits items, the
//! transport encodes whatever accumulated for a peer into one frame.

use std::sync::Arc;

use super::confirm::Outcome;
use super::event::{Event, EventId, Origin, Version};
use super::membership::PeerId;
use super::time::Time;

/// Why an event was sent, which decides how its receiver treats it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// The origin pushed it to every member directly (a small cluster): the
    /// receiver keeps it and sends it nowhere.
    Push,
    /// Forwarded along the broadcast tree: the receiver keeps it and
    /// forwards it to its own eager peers; a duplicate prunes the link.
    TreeRelay,
    /// The answer to the receiver's graft: forwarded on like a tree relay,
    /// but decided on the exact sequence record, not the bloom filter (how
    /// a bloom false positive is repaired), and never a reason to prune.
    GraftAnswer,
    /// Sent by anti-entropy: decided on the exact record, not forwarded.
    Repair,
    /// A config register sent by anti-entropy: applied by its version even
    /// if the event id was seen long ago.
    ConfigState,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 5] = [
        Route::Push,
        Route::TreeRelay,
        Route::GraftAnswer,
        Route::Repair,
        Route::ConfigState,
    ];

    /// Whether the receiver forwards it along the tree.
    pub fn relays(self) -> bool {
        matches!(self, Route::TreeRelay | Route::GraftAnswer)
    }
}

/// One event on the wire, with how the receiver must treat it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventItem {
    /// Why it was sent.
    pub route: Route,
    /// Hops from the origin to the receiver (the origin sends 1).
    pub hop: u8,
    /// The event itself.
    pub event: Arc<Event>,
}

/// A frame as the core receives it: decoded and authenticated by the
/// transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The sending peer.
    pub from: PeerId,
    /// The origin the sender's process publishes as.
    pub sender_origin: Origin,
    /// The frame's size on the wire, for the inbound byte limit.
    pub frame_len: usize,
    /// What it carries.
    pub items: Vec<Item>,
}

/// "I have this event" on a lazy link (Plumtree's IHAVE).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The announced event.
    pub id: EventId,
    /// Hops from the origin to the announcer.
    pub hop: u8,
}

/// One origin's line in an anti-entropy digest.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DigestEntry {
    /// The origin this line is about.
    pub origin: Origin,
    /// The peer that owns this origin, when known; lets every node retire an
    /// origin once its peer has left.
    pub member: Option<PeerId>,
    /// Highest seq such that the sender has every seq up to it.
    pub watermark: u64,
}

/// Anti-entropy summary of what the sender has.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Digest {
    /// Ask the receiver to send its own digest back if it lacks something
    /// the sender has (push-pull in one round).
    pub reply_wanted: bool,
    /// Events published before this time are of no use to the sender (its
    /// app did not exist yet): do not send them, just say they are skipped.
    pub since: Time,
    /// One line per origin the sender tracks.
    pub origins: Vec<DigestEntry>,
    /// Every config key the sender holds, with its version.
    pub config: Vec<(String, Version)>,
}

/// Sent with a repair: "every seq of `origin` up to `through` that I did not
/// send you is one you will never get from me". `lost` says whether some of
/// them were published after the asker's `since` (so the asker must flush)
/// or all predate it (so it may simply skip them).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OriginRepair {
    /// The origin.
    pub origin: Origin,
    /// The highest seq the statement covers.
    pub through: u64,
    /// Whether some of them matter to the asker (it must flush).
    pub lost: bool,
}

/// "Tell me what became of my events `from..=through` at your app, and
/// keep telling me as more of them settle": sent by an origin that tracks
/// events, beside the event and again to replicas still pending.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConfirmWant {
    /// The asking origin (the sender's own incarnation).
    pub origin: Origin,
    /// The lowest seq asked about.
    pub from: u64,
    /// The highest seq asked about.
    pub through: u64,
}

/// Seqs `first..=last` of one origin, all with the same outcome at the
/// reporting replica's app.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SettledRange {
    /// The first seq.
    pub first: u64,
    /// The last seq (at least `first`).
    pub last: u64,
    /// What became of them.
    pub outcome: Outcome,
}

/// A replica's answer to a [`ConfirmWant`]: what became of the asking
/// origin's events at its app, as ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmReport {
    /// The origin the seqs belong to (the receiver's incarnation).
    pub origin: Origin,
    /// The settled ranges, in seq order, not overlapping.
    pub ranges: Vec<SettledRange>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// One protocol message; a frame carries several.
pub enum Item {
    /// An event, pushed, relayed or sent in answer.
    Event(EventItem),
    /// Announcements on a lazy link (Plumtree's IHAVE).
    IHave(Vec<Announcement>),
    /// Make me an eager peer of yours, and send these events.
    Graft(Vec<EventId>),
    /// Stop eager-pushing to me; I got it from someone else first.
    Prune,
    /// Put me in your active view (a symmetric link of the overlay).
    Neighbor,
    /// Take me out of your active view.
    Disconnect,
    /// An anti-entropy digest.
    Digest(Digest),
    /// Sent with a repair: seqs the asker will not get from this sender.
    RepairInfo(Vec<OriginRepair>),
    /// An origin asks what became of its tracked events. Sent only to
    /// peers whose hello says they understand it.
    ConfirmWant(ConfirmWant),
    /// A replica's outcomes for an origin that asked. Likewise.
    ConfirmReport(ConfirmReport),
}

impl Item {
    /// Whether it carries an event (as opposed to control).
    pub fn is_payload(&self) -> bool {
        matches!(self, Item::Event(_))
    }

    /// Whether it belongs to confirmations, which a peer from before them
    /// cannot decode (the transport leaves these out for such a peer).
    pub fn is_confirmation(&self) -> bool {
        matches!(self, Item::ConfirmWant(_) | Item::ConfirmReport(_))
    }
}

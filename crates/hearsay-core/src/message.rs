//! The protocol's vocabulary: the items a frame carries between two nodes.
//!
//! A frame is a batch of items for one peer; the core emits items, the
//! transport encodes whatever accumulated for a peer into one frame.

use std::sync::Arc;

use super::event::{Event, EventId, Origin, Version};
use super::membership::PeerId;
use super::time::Time;

/// One event on the wire, with how the receiver must treat it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventItem {
    /// Forward along the broadcast tree (sent in tree mode). Without it the
    /// sender pushed to everyone directly and the receiver keeps it.
    pub relay: bool,
    /// The receiver asked for this one (graft or repair): decide on it with
    /// the exact sequence record, not the bloom filter.
    pub exact: bool,
    /// A config register transferred by anti-entropy: apply by version even
    /// if the event id was seen long ago.
    pub state: bool,
    /// Hops from the origin to the receiver (the origin sends 1).
    pub hop: u8,
    /// The event itself.
    pub event: Arc<Event>,
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
}

impl Item {
    /// Whether it carries an event (as opposed to control).
    pub fn is_payload(&self) -> bool {
        matches!(self, Item::Event(_))
    }
}

//! Confirmed invalidation (DESIGN §10a): a publisher may learn when every
//! replica's app has an event, or was told to flush it.
//!
//! Two halves, both sans-IO:
//!
//! - [`outcomes`], at every replica: what became of each origin's events at
//!   this replica's app ([`Outcome`]: acknowledged, flushed or rejected), as
//!   ranges of seqs, reported to an origin only while it asks.
//! - [`tracker`], at the origin: for each event published with tracking,
//!   the replicas that were members then, each [`ReplicaState`].
//!
//! On the wire (see `message`): the origin sends a `ConfirmWant` ("report
//! what became of my seqs `from..=through`") beside the event to every
//! peer it pushes to, and again, directly, to replicas still pending after
//! a while (a lost want, a lost report). A replica answers with a
//! `ConfirmReport`: ranges of seqs and their outcome, so a run of
//! acknowledged events is one range whatever its length, and it reports
//! again as more of the wanted seqs settle. Nothing is sent for events
//! published without tracking.

pub mod outcomes;
pub mod tracker;

use std::sync::Arc;

use super::event::EventId;
use super::membership::PeerId;
use super::time::Time;

/// What became of an event at one replica's app.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The app answered 2xx to a request holding it (or a merge standing
    /// for it); on a stream, it was written.
    Acknowledged,
    /// The app acknowledged a flush covering it, or it was never the app's
    /// to have (published before the replica started).
    Flushed,
    /// The app refused it permanently (a 4xx).
    Rejected,
}

impl Outcome {
    /// Every outcome, in wire order.
    pub const ALL: [Outcome; 3] = [Outcome::Acknowledged, Outcome::Flushed, Outcome::Rejected];

    /// The state a replica with this outcome is in.
    pub fn state(self) -> ReplicaState {
        match self {
            Outcome::Acknowledged => ReplicaState::Acknowledged,
            Outcome::Flushed => ReplicaState::Flushed,
            Outcome::Rejected => ReplicaState::Rejected,
        }
    }
}

/// One replica's part in a tracked event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaState {
    /// Not known to have it yet.
    Pending,
    /// See [`Outcome::Acknowledged`].
    Acknowledged,
    /// See [`Outcome::Flushed`].
    Flushed,
    /// See [`Outcome::Rejected`].
    Rejected,
    /// Left the membership before it confirmed: no longer waited for.
    Departed,
}

impl ReplicaState {
    /// The name the API and the CLI show.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Pending => "pending",
            ReplicaState::Acknowledged => "acknowledged",
            ReplicaState::Flushed => "flushed",
            ReplicaState::Rejected => "rejected",
            ReplicaState::Departed => "departed",
        }
    }

    /// Whether this replica no longer holds the wait up.
    pub fn is_settled(self) -> bool {
        self != ReplicaState::Pending
    }
}

/// One replica in a [`Confirmation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    /// The replica's peer id.
    pub peer: PeerId,
    /// Its discovery name (the pod's name in Kubernetes).
    pub name: Arc<str>,
    /// Where it stands.
    pub state: ReplicaState,
}

/// A tracked event as its origin sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmation {
    /// The event.
    pub id: EventId,
    /// When it was published.
    pub published_at: Time,
    /// When the last replica settled, or one rejected it.
    pub done_at: Option<Time>,
    /// Every replica that must confirm, by name.
    pub replicas: Vec<ReplicaView>,
}

impl Confirmation {
    /// Every replica acknowledged, flushed or departed.
    pub fn confirmed(&self) -> bool {
        self.replicas.iter().all(|r| {
            matches!(
                r.state,
                ReplicaState::Acknowledged | ReplicaState::Flushed | ReplicaState::Departed
            )
        })
    }

    /// Nothing more will change the answer: confirmed, or a replica
    /// rejected it.
    pub fn finished(&self) -> bool {
        self.done_at.is_some()
    }
}

//! What the rest of the sidecar asks of the owner task, and the answers.
//! Everything crosses a bounded channel; replies come back on oneshots.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::delivery::queue::AppMessage;
use crate::gossip::confirm::Confirmation;
use crate::gossip::{EventId, Invalidation, PublishError};

/// What a publish asks of the owner besides the event.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// Fire and forget (nothing is tracked).
    #[default]
    No,
    /// Track it, and hand back a receiver of its confirmation.
    Yes,
}

/// A publish the owner took.
#[derive(Debug)]
pub struct Published {
    pub id: EventId,
    /// With [`Wait::Yes`]: the confirmation, once every replica settled or
    /// one rejected it.
    pub confirmation: Option<oneshot::Receiver<Confirmation>>,
}

/// Why the owner did not publish.
#[derive(Debug)]
pub enum Refused {
    Publish(PublishError),
    /// As many publishers wait already as `--max-confirm-waits` allows.
    TooManyWaits(usize),
}

pub type PublishReply = oneshot::Sender<Result<Published, Refused>>;

pub enum Command {
    Publish {
        inv: Invalidation,
        wait: Wait,
        reply: PublishReply,
    },
    SetConfig {
        key: String,
        value: String,
        wait: Wait,
        reply: PublishReply,
    },
    DeleteConfig {
        key: String,
        wait: Wait,
        reply: PublishReply,
    },
    /// A scrape: copy the core's and the queues' counts into the metrics.
    SyncMetrics {
        reply: oneshot::Sender<()>,
    },
    /// A tracked event's confirmation as it stands.
    Confirmation {
        id: EventId,
        reply: oneshot::Sender<Option<Confirmation>>,
    },
    GetConfig {
        reply: oneshot::Sender<Vec<ConfigEntry>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    /// From a delivery worker: what its outlet (the webhook, the streams)
    /// takes next.
    NextBatch {
        outlet: usize,
        reply: oneshot::Sender<BatchAnswer>,
    },
    /// From a delivery worker: how its last batch went.
    BatchDone {
        outlet: usize,
        outcome: BatchOutcome,
    },
}

#[derive(Debug)]
pub enum BatchAnswer {
    Batch(Vec<AppMessage>),
    /// The app request rate limit: ask again after this.
    Wait(Duration),
    /// Nothing pending: wait for the notification.
    Empty,
    /// Shutting down and nothing is left: stop.
    Done,
}

#[derive(Debug)]
pub enum BatchOutcome {
    /// 2xx: delivered.
    Acknowledged(Vec<AppMessage>),
    /// Retryable failure (connect error, timeout, 429, 5xx): back to the
    /// front of the queue.
    Retry(Vec<AppMessage>),
    /// Retryable failure, and the retry budget is spent: the batch and
    /// everything pending become a flush.
    GiveUp(Vec<AppMessage>),
    /// 4xx other than 429: the app refuses these for good.
    Rejected(Vec<AppMessage>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    /// `<hybrid logical clock>-<origin>`; higher wins.
    pub version: String,
    /// When the version was written (from its clock).
    pub written_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: String,
    pub name: String,
    pub address: String,
    /// The outbound connection: `up`, `connecting`, `down`, or `idle` when
    /// nothing has been sent to this peer lately.
    pub state: String,
    /// Place in the broadcast tree (in tree mode): `eager`, `lazy`, or none.
    pub link: Option<String>,
    /// `failing` when this peer's frames (or its hello) failed
    /// authentication in the last minute: its gossip key differs. `ok`
    /// otherwise. Absent from sidecars before it was added.
    #[serde(default = "auth_ok")]
    pub auth: String,
}

fn auth_ok() -> String {
    "ok".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub node: String,
    pub peer_id: String,
    pub origin: String,
    pub uptime_seconds: f64,
    /// `direct` (push to every peer) or `tree`.
    pub mode: String,
    pub members: usize,
    pub connected: usize,
    pub published: u64,
    pub received: u64,
    pub delivered: u64,
    pub acknowledged: u64,
    pub delivery_queue: usize,
    pub config_keys: usize,
    pub origins: usize,
    pub shutting_down: bool,
    /// The app as the webhook worker sees it (absent from sidecars before
    /// it was added).
    #[serde(default)]
    pub webhook: Option<crate::delivery::health::WebhookStatus>,
}

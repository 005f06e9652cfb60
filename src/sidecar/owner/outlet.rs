//! One way events leave for the app — the webhook, or the subscription
//! streams — each with its own queue and its own worker, so that a slow
//! webhook does not hold back the streams or the other way round.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::commands::{BatchAnswer, BatchOutcome};
use crate::delivery::ledger::Mark;
use crate::delivery::queue::{AppQueue, AppQueueStats};
use crate::gossip::{FlushReason, Time};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OutletKind {
    Webhook,
    Streams,
}

impl OutletKind {
    /// Why everything pending becomes a flush when its worker gives up.
    fn give_up_reason(self) -> FlushReason {
        match self {
            OutletKind::Webhook => FlushReason::WebhookBudget,
            OutletKind::Streams => FlushReason::NoSubscriber,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutletKind::Webhook => "webhook",
            OutletKind::Streams => "streams",
        }
    }
}

pub struct Outlet {
    pub kind: OutletKind,
    pub queue: AppQueue,
    /// Wakes this outlet's worker when something is queued.
    pub notify: Arc<Notify>,
    pub(super) in_flight: bool,
    /// Where the batch in flight was taken, in the app ledger.
    pub(super) mark: Mark,
    pub(super) prev: AppQueueStats,
}

/// What a batch's outcome means for the counts.
pub(super) struct Settled {
    pub acknowledged: u64,
    pub rejected: u64,
}

impl Outlet {
    pub fn new(kind: OutletKind, queue: AppQueue) -> Outlet {
        Outlet {
            kind,
            queue,
            notify: Arc::new(Notify::new()),
            in_flight: false,
            mark: Mark::default(),
            prev: AppQueueStats::default(),
        }
    }

    /// Nothing queued and nothing out.
    pub(super) fn idle(&self) -> bool {
        self.queue.is_empty() && !self.in_flight
    }

    /// The worker's next batch: one in flight at a time.
    pub(super) fn next_batch(&mut self, now: Time, draining: bool, mark: Mark) -> BatchAnswer {
        if self.in_flight {
            // A confused worker simply waits.
            return BatchAnswer::Empty;
        }
        match self.queue.next_batch(now) {
            Ok(b) if b.is_empty() && draining => BatchAnswer::Done,
            Ok(b) if b.is_empty() => BatchAnswer::Empty,
            Ok(b) => {
                self.in_flight = true;
                self.mark = mark;
                BatchAnswer::Batch(b)
            }
            Err(wait) => BatchAnswer::Wait(wait),
        }
    }

    pub(super) fn batch_done(&mut self, outcome: BatchOutcome) -> Settled {
        self.in_flight = false;
        let count = |b: &[crate::delivery::queue::AppMessage]| -> u64 {
            b.iter().map(|m| m.event_count() as u64).sum()
        };
        let mut settled = Settled {
            acknowledged: 0,
            rejected: 0,
        };
        match outcome {
            BatchOutcome::Acknowledged(b) => settled.acknowledged = count(&b),
            BatchOutcome::Retry(b) => self.queue.requeue(b),
            BatchOutcome::GiveUp(b) => {
                self.queue.requeue(b);
                self.queue.give_up(self.kind.give_up_reason());
            }
            BatchOutcome::Rejected(b) => settled.rejected = count(&b),
        }
        if !self.queue.is_empty() {
            self.notify.notify_one();
        }
        settled
    }
}

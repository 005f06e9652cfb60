//! Confirmations at the owner: publishes that wait, the waiters, and what
//! the app settled going back into the core (see `delivery::ledger`).

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::*;
use crate::commands::{Published, Refused, Wait};
use crate::delivery::ledger::Ledger;
use crate::gossip::confirm::Confirmation;
use crate::gossip::{EventId, Settled};
use crate::metrics::WaitOutcome;

/// Entries the app ledger holds before dropping the oldest.
pub const LEDGER_MAX: usize = 200_000;

/// The owner's confirmation state besides the core's.
pub struct Confirmations {
    pub ledger: Ledger,
    waiters: HashMap<EventId, Vec<oneshot::Sender<Confirmation>>>,
    max_waits: usize,
    ledger_dropped_seen: u64,
}

/// What a call into the node left for the owner to do.
#[derive(Default)]
pub struct Aftermath {
    /// Tracked events whose confirmation finished.
    pub confirmed: Vec<EventId>,
    /// Settled without the app (not delivered), for the core.
    pub settled: Vec<Settled>,
}

impl Confirmations {
    pub fn new(outlets: usize, max_waits: usize) -> Confirmations {
        Confirmations {
            ledger: Ledger::new(outlets, LEDGER_MAX),
            waiters: HashMap::new(),
            max_waits: max_waits.max(1),
            ledger_dropped_seen: 0,
        }
    }

    fn waiting(&self) -> usize {
        self.waiters.values().map(Vec::len).sum()
    }
}

impl Owner {
    /// A publish from the API: the core's publish, tracked and with a
    /// waiter when asked, or refused before anything is published.
    pub(super) fn publish_with(
        &mut self,
        wait: Wait,
        publish: impl FnOnce(&mut Node, Time, &mut Effects<'_>) -> Result<EventId, PublishError>,
    ) -> Result<Published, Refused> {
        if wait == Wait::Yes {
            self.confirm.waiters.retain(|_, w| {
                w.retain(|tx| !tx.is_closed());
                !w.is_empty()
            });
            let waiting = self.confirm.waiting();
            if waiting >= self.confirm.max_waits {
                self.count_wait(WaitOutcome::Refused);
                return Err(Refused::TooManyWaits(self.confirm.max_waits));
            }
            self.node.track_next();
        }
        let id = self
            .with_node(|n, now, fx| publish(n, now, fx))
            .map_err(Refused::Publish)?;
        let confirmation = (wait == Wait::Yes).then(|| {
            let (tx, rx) = oneshot::channel();
            match self.node.confirmation(id).filter(Confirmation::finished) {
                // Nobody to wait for (a cluster of one).
                Some(c) => {
                    self.count_wait(outcome_of(&c));
                    let _ = tx.send(c);
                }
                None => self.confirm.waiters.entry(id).or_default().push(tx),
            }
            rx
        });
        self.metrics
            .confirm
            .waiting
            .set(self.confirm.waiting() as i64);
        Ok(Published { id, confirmation })
    }

    fn count_wait(&self, o: WaitOutcome) {
        self.metrics
            .confirm
            .waits
            .with_label_values(&[o.as_str()])
            .inc();
    }

    /// Handles what a call into the node left: finished confirmations go
    /// to their waiters, and what settled without the app goes back in.
    pub(super) fn after(&mut self, mut a: Aftermath) {
        loop {
            for id in a.confirmed.drain(..) {
                let Some(c) = self.node.confirmation(id) else {
                    continue;
                };
                if let Some(done) = c.done_at {
                    self.metrics
                        .confirm
                        .confirmation_seconds
                        .observe(done.since(c.published_at).as_secs_f64());
                }
                for tx in self.confirm.waiters.remove(&id).unwrap_or_default() {
                    if tx.send(c.clone()).is_ok() {
                        self.count_wait(outcome_of(&c));
                    }
                }
            }
            if a.settled.is_empty() {
                break;
            }
            let settled = std::mem::take(&mut a.settled);
            a = self
                .with_node_raw(|n, now, fx| n.settled(now, &settled, fx))
                .1;
        }
        self.metrics
            .confirm
            .waiting
            .set(self.confirm.waiting() as i64);
    }

    /// What the app settled of a batch, from the ledger into the core.
    pub(super) fn settle_batch(&mut self, settled: Vec<Settled>) {
        if settled.is_empty() {
            return;
        }
        self.with_node(|n, now, fx| n.settled(now, &settled, fx));
    }

    /// A tracked event's confirmation as it stands.
    pub(super) fn confirmation(&self, id: EventId) -> Option<Confirmation> {
        self.node.confirmation(id)
    }

    /// Gauges and drop counts of confirmations, for `sync_metrics`.
    pub(super) fn sync_confirm_metrics(&mut self) {
        let m = &self.metrics.confirm;
        m.tracked_now.set(self.node.tracked_len() as i64);
        let dropped = self.confirm.ledger.dropped;
        m.dropped
            .with_label_values(&["ledger"])
            .inc_by(dropped - self.confirm.ledger_dropped_seen);
        self.confirm.ledger_dropped_seen = dropped;
        self.confirm.waiters.retain(|_, w| {
            w.retain(|tx| !tx.is_closed());
            !w.is_empty()
        });
        m.waiting.set(self.confirm.waiting() as i64);
    }
}

fn outcome_of(c: &Confirmation) -> WaitOutcome {
    if c.confirmed() {
        WaitOutcome::Confirmed
    } else {
        WaitOutcome::Rejected
    }
}

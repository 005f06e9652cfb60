//! The stream outlet's worker: takes batches from the owner's queue for
//! this outlet and writes them into the hub, one at a time.
//!
//! With stream-only delivery a batch needs a subscriber. Until the first
//! one connects, events simply wait (readiness gating, as the webhook's
//! do); after that, a batch that finds no subscriber for longer than the
//! wait budget gives up: everything pending becomes a flush (reason
//! `no_subscriber`), written when a subscriber is back.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::Hub;
use crate::clock::Clock;
use crate::commands::{BatchAnswer, BatchOutcome, Command};

/// How often a batch with no subscriber is tried again (a subscriber
/// connecting wakes the worker sooner).
const RETRY: Duration = Duration::from_millis(250);

pub struct StreamWorker {
    pub hub: Arc<Hub>,
    /// This outlet's index in the owner.
    pub outlet: usize,
    pub cmd_tx: mpsc::Sender<Command>,
    pub notify: Arc<Notify>,
    pub clock: Clock,
    /// How long batches may find no subscriber, once one was seen.
    pub wait_budget: Duration,
}

impl StreamWorker {
    pub async fn run(self) {
        let mut waiting_since: Option<Instant> = None;
        loop {
            let (reply, answer) = oneshot::channel();
            let ask = Command::NextBatch {
                outlet: self.outlet,
                reply,
            };
            if self.cmd_tx.send(ask).await.is_err() {
                break;
            }
            let batch = match answer.await {
                Err(_) | Ok(BatchAnswer::Done) => break,
                Ok(BatchAnswer::Empty) => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.notify.notified()).await;
                    continue;
                }
                Ok(BatchAnswer::Wait(d)) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Ok(BatchAnswer::Batch(b)) => b,
            };
            let outcome = match self.hub.deliver(&batch, self.clock.now()) {
                Ok(()) => {
                    waiting_since = None;
                    BatchOutcome::Acknowledged(batch)
                }
                Err(_) if !self.hub.ever_subscribed() => BatchOutcome::Retry(batch),
                Err(_) => {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.wait_budget {
                        tracing::warn!(
                            waited = ?since.elapsed(),
                            "no subscriber came back within the wait budget; streams get a flush instead"
                        );
                        waiting_since = None;
                        BatchOutcome::GiveUp(batch)
                    } else {
                        BatchOutcome::Retry(batch)
                    }
                }
            };
            let retry = !matches!(outcome, BatchOutcome::Acknowledged(_));
            let done = Command::BatchDone {
                outlet: self.outlet,
                outcome,
            };
            if self.cmd_tx.send(done).await.is_err() {
                break;
            }
            if retry {
                let _ = tokio::time::timeout(RETRY, self.hub.subscribed.notified()).await;
            }
        }
        self.hub.close();
    }
}

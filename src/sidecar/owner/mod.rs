//! The one task that owns the protocol state: the gossip [`Node`], the app
//! queue, the transport's writers and the timers. It `select!`s over
//! shutdown, commands, frames, membership changes and timers, and is the
//! only place any of that state is touched, so nothing here needs a lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::clock::{Clock, rfc3339};
use crate::commands::{BatchAnswer, BatchOutcome, Command, ConfigEntry, PeerInfo, Status};
use crate::gossip::confirm::Outcome;
use crate::gossip::hlc::Hlc;
use crate::gossip::message::SettledRange;
use crate::gossip::tree::Link;
use crate::gossip::{
    Event, EventId, FlushReason, Inbound, Item, MembershipUpdate, Node, Origin, PeerId, PeerSet,
    PublishError, Runtime, Settled, Stats, Time, Timer, Version,
};
use crate::metrics::Metrics;
use crate::transport::Transport;
use crate::transport::listener::InboundFrame;

mod confirm;
mod outlet;
mod report;

use confirm::{Aftermath, Confirmations};
pub use outlet::{Outlet, OutletKind};

pub struct Owner {
    pub node: Node,
    /// Where events leave for the app: the webhook, the streams, or both
    /// (the first is the app's own: its acknowledgements are counted).
    pub outlets: Vec<Outlet>,
    pub transport: Transport,
    pub members: Arc<PeerSet>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub node_name: String,
    /// The webhook worker's view of the app, for the status.
    pub webhook: crate::delivery::health::Health,
    timers: BTreeMap<(Time, u64), Timer>,
    timer_seq: u64,
    prev_stats: Stats,
    draining: bool,
    acknowledged: u64,
    /// The app ledger and the publishers waiting for confirmations.
    confirm: Confirmations,
}

/// The owner's effects on the world, for one call into the node.
struct Effects<'a> {
    transport: &'a mut Transport,
    members: &'a PeerSet,
    outlets: &'a mut [Outlet],
    timers: &'a mut BTreeMap<(Time, u64), Timer>,
    timer_seq: &'a mut u64,
    metrics: &'a Metrics,
    ledger: &'a mut crate::delivery::ledger::Ledger,
    after: Aftermath,
    now: Time,
}

impl Runtime for Effects<'_> {
    fn send(&mut self, to: PeerId, items: Vec<Item>) {
        let addr = self.members.get(to).and_then(|p| p.addr);
        self.transport.send(to, addr, items);
    }

    fn deliver(&mut self, event: &Arc<Event>, _hop: u8) {
        let delay = self.now.since(event.published_at);
        self.metrics
            .events
            .propagation_delay
            .observe(delay.as_secs_f64());
        self.ledger.delivered(event);
        for o in self.outlets.iter_mut() {
            o.queue.push_event(event.clone());
            o.notify.notify_one();
        }
    }

    fn flush(&mut self, cache: Option<&str>, reason: FlushReason) {
        tracing::warn!(
            cache = cache.unwrap_or("*"),
            reason = reason.as_str(),
            "telling the app to flush"
        );
        for o in self.outlets.iter_mut() {
            o.queue.push_flush(cache, reason);
            o.notify.notify_one();
        }
    }

    fn config_evicted(&mut self, key: &str, version: Version) {
        tracing::error!(
            key,
            "config register cap reached: key evicted on this replica (the app is told)"
        );
        for o in self.outlets.iter_mut() {
            o.queue.push_config_evicted(key, version);
            o.notify.notify_one();
        }
    }

    fn schedule(&mut self, at: Time, timer: Timer) {
        *self.timer_seq += 1;
        self.timers.insert((at, *self.timer_seq), timer);
    }

    fn confirmed(&mut self, id: EventId) {
        self.after.confirmed.push(id);
    }

    fn lost(&mut self, origin: Origin, first: u64, last: u64) {
        self.ledger.lost(origin, first, last);
    }

    fn not_delivered(&mut self, origin: Origin, first: u64, last: u64) {
        let range = SettledRange {
            first,
            last,
            outcome: Outcome::Flushed,
        };
        self.after.settled.push(Settled { origin, range });
    }
}

impl Owner {
    pub fn new(
        node: Node,
        outlets: Vec<Outlet>,
        transport: Transport,
        clock: Clock,
        metrics: Arc<Metrics>,
        node_name: String,
        max_confirm_waits: usize,
    ) -> Owner {
        let webhook = crate::delivery::health::Health::new(clock.now());
        let confirm = Confirmations::new(outlets.len(), max_confirm_waits);
        Owner {
            node,
            outlets,
            transport,
            members: Arc::new(PeerSet::default()),
            clock,
            metrics,
            node_name,
            webhook,
            timers: BTreeMap::new(),
            timer_seq: 0,
            prev_stats: Stats::default(),
            draining: false,
            acknowledged: 0,
            confirm,
        }
    }

    /// Runs `f` against the node with this owner's effects, then handles
    /// what it left (confirmations to hand out, settlements to feed back).
    fn with_node<T>(&mut self, f: impl FnOnce(&mut Node, Time, &mut Effects<'_>) -> T) -> T {
        let (r, after) = self.with_node_raw(f);
        self.after(after);
        r
    }

    fn with_node_raw<T>(
        &mut self,
        f: impl FnOnce(&mut Node, Time, &mut Effects<'_>) -> T,
    ) -> (T, Aftermath) {
        let now = self.clock.now();
        let mut fx = Effects {
            transport: &mut self.transport,
            members: &self.members,
            outlets: &mut self.outlets,
            timers: &mut self.timers,
            timer_seq: &mut self.timer_seq,
            metrics: &self.metrics,
            ledger: &mut self.confirm.ledger,
            after: Aftermath::default(),
            now,
        };
        let r = f(&mut self.node, now, &mut fx);
        (r, fx.after)
    }

    pub fn start(&mut self) {
        self.with_node(|n, now, fx| n.start(now, fx));
    }

    fn next_timer(&self) -> Option<Instant> {
        self.timers
            .keys()
            .next()
            .map(|(t, _)| self.clock.instant(*t))
    }

    fn fire_due_timers(&mut self) {
        let now = self.clock.now();
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            if let Some(timer) = self.timers.remove(&(at, seq)) {
                self.with_node(|n, now, fx| n.timer(now, timer, fx));
            }
        }
    }

    fn on_frame(&mut self, f: InboundFrame) {
        self.with_node(|n, now, fx| {
            n.receive(
                now,
                Inbound {
                    from: f.from,
                    sender_origin: f.origin,
                    frame_len: f.len,
                    items: f.items,
                },
                fx,
            )
        });
    }

    fn on_membership(&mut self, members: Arc<PeerSet>) {
        let update = MembershipUpdate::between(&self.members, members.clone());
        for p in &update.joined {
            if let Some(peer) = members.get(*p) {
                tracing::info!(peer = %peer.name, addr = ?peer.addr, "peer joined");
            }
        }
        for p in &update.left {
            if let Some(peer) = self.members.get(*p) {
                tracing::info!(peer = %peer.name, "peer left");
            }
        }
        self.members = members;
        self.transport.retain_members(&self.members);
        self.with_node(|n, now, fx| n.apply_membership(now, &update, fx));
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            // Refusals are counted by the core (its stats reach the metrics).
            Command::Publish { inv, wait, reply } => {
                let r = self.publish_with(wait, |n, now, fx| n.publish(now, inv, fx));
                let _ = reply.send(r);
            }
            Command::SetConfig {
                key,
                value,
                wait,
                reply,
            } => {
                let r = self.publish_with(wait, |n, now, fx| n.set_config(now, key, value, fx));
                let _ = reply.send(r);
            }
            Command::DeleteConfig { key, wait, reply } => {
                let r = self.publish_with(wait, |n, now, fx| n.delete_config(now, key, fx));
                let _ = reply.send(r);
            }
            Command::SyncMetrics { reply } => {
                self.sync_metrics();
                let _ = reply.send(());
            }
            Command::Confirmation { id, reply } => {
                let _ = reply.send(self.confirmation(id));
            }
            Command::GetConfig { reply } => {
                let _ = reply.send(self.config_entries());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_infos());
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::NextBatch { outlet, reply } => {
                let (now, draining) = (self.clock.now(), self.draining);
                let mark = self.confirm.ledger.mark();
                let answer = match self.outlets.get_mut(outlet) {
                    Some(o) => o.next_batch(now, draining, mark),
                    None => BatchAnswer::Done,
                };
                if let (BatchAnswer::Wait(_), Some(o)) = (&answer, self.outlets.get(outlet)) {
                    self.metrics
                        .protocol
                        .rate_limited
                        .with_label_values(&[o.kind.as_str()])
                        .inc();
                }
                let _ = reply.send(answer);
            }
            Command::BatchDone { outlet, outcome } => {
                let Some(o) = self.outlets.get_mut(outlet) else {
                    return;
                };
                let mut app_settled = Vec::new();
                let ledger = &mut self.confirm.ledger;
                match &outcome {
                    BatchOutcome::Acknowledged(b) => {
                        ledger.acknowledged(outlet, b, o.mark, &mut app_settled)
                    }
                    BatchOutcome::Rejected(b) => {
                        ledger.rejected(outlet, b, o.mark, &mut app_settled)
                    }
                    BatchOutcome::Retry(_) | BatchOutcome::GiveUp(_) => {}
                }
                let settled = o.batch_done(outcome);
                // The first outlet is the app's own; a second (the streams
                // beside a webhook) is not counted twice.
                if outlet == 0 {
                    self.acknowledged += settled.acknowledged;
                    let events = &self.metrics.events;
                    events.acknowledged.inc_by(settled.acknowledged);
                    events.rejected_by_app.inc_by(settled.rejected);
                }
                self.settle_batch(app_settled);
            }
        }
    }

    /// Entries waiting in every outlet.
    pub(super) fn pending(&self) -> usize {
        self.outlets.iter().map(|o| o.queue.len()).sum()
    }

    fn idle(&self) -> bool {
        self.outlets.iter().all(Outlet::idle)
    }

    fn wake_workers(&self) {
        for o in &self.outlets {
            o.notify.notify_one();
        }
    }
}

/// Runs the owner until shutdown, then drains: the transport gets `grace` to
/// send what is queued, and the app gets what is pending until the queue
/// is empty or `grace` is up.
pub async fn run(
    mut owner: Owner,
    mut cmd_rx: mpsc::Receiver<Command>,
    mut frames_rx: mpsc::Receiver<InboundFrame>,
    mut members_rx: watch::Receiver<Arc<PeerSet>>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    owner.start();
    let far = || Instant::now() + Duration::from_secs(3600);
    loop {
        let next = owner.next_timer().unwrap_or_else(far);
        tokio::select! {
            _ = crate::shutdown::requested(&mut shutdown) => break,
            Some(cmd) = cmd_rx.recv() => owner.on_command(cmd),
            Some(frame) = frames_rx.recv() => owner.on_frame(frame),
            Ok(()) = members_rx.changed() => {
                let m = members_rx.borrow_and_update().clone();
                owner.on_membership(m);
            }
            _ = sleep_until(next) => owner.fire_due_timers(),
        }
    }
    tracing::info!(pending = owner.pending(), "shutting down: draining");
    owner.draining = true;
    owner.wake_workers();
    let deadline = Instant::now() + grace;
    let sending = tokio::spawn(owner.transport.close(grace));
    while !owner.idle() {
        tokio::select! {
            Some(cmd) = cmd_rx.recv() => owner.on_command(cmd),
            _ = sleep_until(deadline) => break,
        }
    }
    owner.sync_metrics();
    let _ = sending.await;
    if owner.pending() > 0 {
        tracing::warn!(
            pending = owner.pending(),
            "grace period over; undelivered events remain"
        );
    }
    // Tell waiting delivery workers there is nothing more.
    owner.wake_workers();
    while let Ok(cmd) = cmd_rx.try_recv() {
        if let Command::NextBatch { reply, .. } = cmd {
            let _ = reply.send(BatchAnswer::Done);
        }
    }
}

//! The one task that owns the protocol state: the gossip [`Node`], the app
//! queue, the transport's writers and the timers. It `select!`s over
//! shutdown, commands, frames, membership changes and timers, and is the
//! only place any of that state is touched, so nothing here needs a lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::clock::{Clock, rfc3339};
use crate::commands::{BatchAnswer, BatchOutcome, Command, ConfigEntry, PeerInfo, Status};
use crate::delivery::queue::{AppQueue, AppQueueStats};
use crate::gossip::hlc::Hlc;
use crate::gossip::tree::Link;
use crate::gossip::{
    Event, FlushReason, Inbound, Item, MembershipUpdate, Node, PeerId, PeerSet, Runtime, Stats,
    Time, Timer, Version,
};
use crate::metrics::Metrics;
use crate::transport::Transport;
use crate::transport::listener::InboundFrame;

mod report;

/// How often the core's counters are copied into the metrics.
const METRICS_EVERY: Duration = Duration::from_millis(250);

pub struct Owner {
    pub node: Node,
    pub queue: AppQueue,
    pub transport: Transport,
    pub members: Arc<PeerSet>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub delivery_notify: Arc<Notify>,
    pub node_name: String,
    /// The webhook worker's view of the app, for the status.
    pub webhook: crate::delivery::health::Health,
    timers: BTreeMap<(Time, u64), Timer>,
    timer_seq: u64,
    prev_stats: Stats,
    prev_queue: AppQueueStats,
    batch_in_flight: bool,
    draining: bool,
    acknowledged: u64,
}

/// The owner's effects on the world, for one call into the node.
struct Effects<'a> {
    transport: &'a mut Transport,
    members: &'a PeerSet,
    queue: &'a mut AppQueue,
    timers: &'a mut BTreeMap<(Time, u64), Timer>,
    timer_seq: &'a mut u64,
    metrics: &'a Metrics,
    now: Time,
    notify: &'a Notify,
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
        self.queue.push_event(event.clone());
        self.notify.notify_one();
    }

    fn flush(&mut self, cache: Option<&str>, reason: FlushReason) {
        tracing::warn!(
            cache = cache.unwrap_or("*"),
            reason = reason.as_str(),
            "telling the app to flush"
        );
        self.queue.push_flush(cache, reason);
        self.notify.notify_one();
    }

    fn config_evicted(&mut self, key: &str, version: Version) {
        tracing::error!(
            key,
            "config register cap reached: key evicted on this replica (the app is told)"
        );
        self.queue.push_config_evicted(key, version);
        self.notify.notify_one();
    }

    fn schedule(&mut self, at: Time, timer: Timer) {
        *self.timer_seq += 1;
        self.timers.insert((at, *self.timer_seq), timer);
    }
}

impl Owner {
    pub fn new(
        node: Node,
        queue: AppQueue,
        transport: Transport,
        clock: Clock,
        metrics: Arc<Metrics>,
        delivery_notify: Arc<Notify>,
        node_name: String,
    ) -> Owner {
        let webhook = crate::delivery::health::Health::new(clock.now());
        Owner {
            node,
            queue,
            transport,
            members: Arc::new(PeerSet::default()),
            clock,
            metrics,
            delivery_notify,
            node_name,
            webhook,
            timers: BTreeMap::new(),
            timer_seq: 0,
            prev_stats: Stats::default(),
            prev_queue: AppQueueStats::default(),
            batch_in_flight: false,
            draining: false,
            acknowledged: 0,
        }
    }

    /// Runs `f` against the node with this owner's effects.
    fn with_node<T>(&mut self, f: impl FnOnce(&mut Node, Time, &mut Effects<'_>) -> T) -> T {
        let now = self.clock.now();
        let mut fx = Effects {
            transport: &mut self.transport,
            members: &self.members,
            queue: &mut self.queue,
            timers: &mut self.timers,
            timer_seq: &mut self.timer_seq,
            metrics: &self.metrics,
            now,
            notify: &self.delivery_notify,
        };
        f(&mut self.node, now, &mut fx)
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
            Command::Publish { inv, reply } => {
                let r = self.with_node(|n, now, fx| n.publish(now, inv, fx));
                let _ = reply.send(r);
            }
            Command::SetConfig { key, value, reply } => {
                let r = self.with_node(|n, now, fx| n.set_config(now, key, value, fx));
                let _ = reply.send(r);
            }
            Command::DeleteConfig { key, reply } => {
                let r = self.with_node(|n, now, fx| n.delete_config(now, key, fx));
                let _ = reply.send(r);
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
            Command::NextBatch { reply } => {
                let answer = if self.batch_in_flight {
                    // One request in flight per app; a confused worker
                    // simply waits.
                    BatchAnswer::Empty
                } else {
                    match self.queue.next_batch(self.clock.now()) {
                        Ok(b) if b.is_empty() && self.draining => BatchAnswer::Done,
                        Ok(b) if b.is_empty() => BatchAnswer::Empty,
                        Ok(b) => {
                            self.batch_in_flight = true;
                            BatchAnswer::Batch(b)
                        }
                        Err(wait) => {
                            self.metrics
                                .protocol
                                .rate_limited
                                .with_label_values(&["webhook"])
                                .inc();
                            BatchAnswer::Wait(wait)
                        }
                    }
                };
                let _ = reply.send(answer);
            }
            Command::BatchDone(outcome) => {
                self.batch_in_flight = false;
                match outcome {
                    BatchOutcome::Acknowledged(b) => {
                        let n: usize = b.iter().map(|m| m.event_count()).sum();
                        self.acknowledged += n as u64;
                        self.metrics.events.acknowledged.inc_by(n as u64);
                    }
                    BatchOutcome::Retry(b) => self.queue.requeue(b),
                    BatchOutcome::GiveUp(b) => {
                        self.queue.requeue(b);
                        self.queue.give_up();
                    }
                    BatchOutcome::Rejected(b) => {
                        let n: usize = b.iter().map(|m| m.event_count()).sum();
                        self.metrics.events.rejected_by_app.inc_by(n as u64);
                    }
                }
                if !self.queue.is_empty() {
                    self.delivery_notify.notify_one();
                }
            }
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
    let mut metrics_tick = tokio::time::interval(METRICS_EVERY);
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
            _ = metrics_tick.tick() => owner.sync_metrics(),
        }
    }
    tracing::info!(pending = owner.queue.len(), "shutting down: draining");
    owner.draining = true;
    owner.delivery_notify.notify_one();
    let deadline = Instant::now() + grace;
    let sending = tokio::spawn(owner.transport.close(grace));
    while !owner.queue.is_empty() || owner.batch_in_flight {
        tokio::select! {
            Some(cmd) = cmd_rx.recv() => owner.on_command(cmd),
            _ = sleep_until(deadline) => break,
        }
    }
    owner.sync_metrics();
    let _ = sending.await;
    if !owner.queue.is_empty() {
        tracing::warn!(
            pending = owner.queue.len(),
            "grace period over; undelivered events remain"
        );
    }
    // Tell a waiting delivery worker there is nothing more.
    owner.delivery_notify.notify_one();
    while let Ok(cmd) = cmd_rx.try_recv() {
        if let Command::NextBatch { reply } = cmd {
            let _ = reply.send(BatchAnswer::Done);
        }
    }
}

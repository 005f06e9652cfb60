//! What the owner reports of its state: the status, the peers, the config
//! entries, and the metrics it copies from the core.

use super::*;

impl Owner {
    pub(super) fn config_entries(&self) -> Vec<ConfigEntry> {
        self.node
            .config_live()
            .map(|(k, r)| ConfigEntry {
                key: k.to_owned(),
                value: r.value.clone().unwrap_or_default(),
                version: crate::delivery::cloudevents::version_text(&r.version),
                written_at: rfc3339(Time::from_millis(Hlc::millis(r.version.hlc))),
            })
            .collect()
    }

    pub(super) fn peer_infos(&self) -> Vec<PeerInfo> {
        self.members
            .peers()
            .filter(|p| p.id != self.node.id())
            .map(|p| PeerInfo {
                id: p.id.to_string(),
                name: p.name.to_string(),
                address: p.addr.map(|a| a.to_string()).unwrap_or_default(),
                state: self
                    .transport
                    .state(p.id)
                    .map_or("idle", |s| s.as_str())
                    .to_owned(),
                link: self
                    .node
                    .link(p.id)
                    .filter(|_| !self.node.is_direct_mode())
                    .map(|l| match l {
                        Link::Eager => "eager".to_owned(),
                        Link::Lazy => "lazy".to_owned(),
                    }),
                auth: if self.transport.auth_failing(p.id) {
                    "failing"
                } else {
                    "ok"
                }
                .to_owned(),
            })
            .collect()
    }

    pub(super) fn status(&self) -> Status {
        let s = self.node.stats();
        Status {
            node: self.node_name.clone(),
            peer_id: self.node.id().to_string(),
            origin: self.node.origin().to_string(),
            uptime_seconds: self.clock.now().since(self.node.started()).as_secs_f64(),
            mode: if self.node.is_direct_mode() {
                "direct"
            } else {
                "tree"
            }
            .to_owned(),
            members: self.members.len(),
            connected: self.transport.connected(),
            published: s.published,
            received: s.events_received,
            delivered: s.events_delivered,
            acknowledged: self.acknowledged,
            delivery_queue: self.pending(),
            config_keys: self.node.config_live_len(),
            origins: self.node.origins_known(),
            shutting_down: self.draining,
            webhook: Some(self.webhook.status()),
        }
    }

    /// Copies the core's and the queue's counts into the metrics.
    pub(super) fn sync_metrics(&mut self) {
        self.sync_confirm_metrics();
        let m = &self.metrics;
        m.observe_core(self.node.stats(), &mut self.prev_stats);
        for o in self.outlets.iter_mut() {
            let q = o.queue.stats().clone();
            m.delivery
                .delivery_coalesced
                .inc_by(q.coalesced.saturating_sub(o.prev.coalesced));
            m.observe_queue_flushes(&q.flushes, &o.prev.flushes);
            o.prev = q;
        }
        m.delivery.delivery_queue_depth.set(self.pending() as i64);
        m.protocol
            .bloom_fill_ratio
            .set(self.node.bloom().fill_ratio());
        m.protocol
            .bloom_fp_rate
            .set(self.node.bloom().estimated_fp_rate());
        let rotations = self.node.bloom().rotations();
        m.protocol
            .bloom_rotations
            .inc_by(rotations.saturating_sub(m.protocol.bloom_rotations.get()));
        m.state.origins.set(self.node.origins_known() as i64);
        m.state
            .retention_events
            .set(self.node.retention().len() as i64);
        m.state
            .retention_bytes
            .set(self.node.retention().bytes() as i64);
        m.state.config_keys.set(self.node.config_live_len() as i64);
        let members = self
            .members
            .peers()
            .filter(|p| p.id != self.node.id())
            .count();
        m.membership
            .peers
            .with_label_values(&["member"])
            .set(members as i64);
        m.membership
            .peers
            .with_label_values(&["connected"])
            .set(self.transport.connected() as i64);
        m.membership
            .peers
            .with_label_values(&["eager"])
            .set(self.node.eager_peers().len() as i64);
        m.membership
            .peers
            .with_label_values(&["lazy"])
            .set(self.node.lazy_peers().len() as i64);
    }
}

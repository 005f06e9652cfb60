//! Driving a simulation from a test, and looking into it: publish, crash,
//! restart, partition and heal at will; each node's state, deliveries,
//! flushes and the shape of the broadcast tree.

use super::*;

impl Sim {
    /// Publishes an invalidation at node `i` now, and tracks its delivery.
    pub fn publish(&mut self, i: usize, inv: Invalidation) -> Result<EventId, PublishError> {
        let now = self.world.now;
        let Some(node) = self.nodes[i].as_mut() else {
            return Err(PublishError::RateLimited {
                retry_after: Duration::from_secs(1),
            });
        };
        let mut rt = SimRuntime {
            world: &mut self.world,
            node: i,
            me: node.id(),
            origin: node.origin(),
        };
        let id = node.publish(now, inv, &mut rt)?;
        if let Some(stored) = node.retention().get(&id) {
            let event = stored.event.clone();
            self.world.track(&event, i, self.cfg.nodes);
        }
        Ok(id)
    }

    /// Sets a config value at node `i` now.
    pub fn set_config(
        &mut self,
        i: usize,
        key: &str,
        value: &str,
    ) -> Result<EventId, PublishError> {
        let now = self.world.now;
        let node = self.nodes[i].as_mut().expect("node is up");
        let mut rt = SimRuntime {
            world: &mut self.world,
            node: i,
            me: node.id(),
            origin: node.origin(),
        };
        node.set_config(now, key.to_owned(), value.to_owned(), &mut rt)
    }

    /// Crashes node `i` now (all its state is lost).
    pub fn crash(&mut self, i: usize) {
        self.dispatch(Action::Crash(i));
    }

    /// Starts node `i` again now, as a new incarnation.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    /// Cuts the given nodes off from the rest until [`Sim::heal`].
    pub fn cut_off(&mut self, nodes: &[usize]) {
        let mut side = vec![false; self.cfg.nodes];
        for &i in nodes {
            side[i] = true;
        }
        self.world.net.cut_off = Some(side);
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.world.net.cut_off = None;
    }

    /// Sets the frame loss probability from now on.
    pub fn set_loss(&mut self, loss: f64) {
        self.world.net.loss = loss;
    }

    /// Node `i`, unless it is down.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].as_ref()
    }

    /// Counts of every node, live and crashed, added up.
    pub fn total_stats(&self) -> Stats {
        let mut total = self.dead_stats.clone();
        for node in self.nodes.iter().flatten() {
            total.merge(node.stats());
        }
        total
    }

    /// First-delivery time at node `i` of a tracked event, if any.
    pub fn delivered_at(&self, i: usize, id: EventId) -> Option<Time> {
        let t = &self.world.tracked[*self.world.index.get(&id)?];
        let inc = self.world.incarnation[i];
        t.delivered[i].filter(|d| d.0 == inc).map(|d| d.1)
    }

    /// Flushes node `i`'s current incarnation was told to do.
    pub fn flushes(&self, i: usize) -> usize {
        let inc = self.world.incarnation[i];
        self.world.flushes[i]
            .iter()
            .filter(|f| f.incarnation == inc)
            .count()
    }

    /// Sizes of the connected components of the broadcast tree (the graph
    /// of links both ends consider eager, over the nodes that are up),
    /// largest first. A healthy tree has one.
    pub fn eager_components(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let mut seen = vec![false; n];
        let mut components = Vec::new();
        for start in 0..n {
            if seen[start] || self.nodes[start].is_none() {
                continue;
            }
            let mut size = 0;
            seen[start] = true;
            let mut stack = vec![start];
            while let Some(x) = stack.pop() {
                size += 1;
                let Some(node) = &self.nodes[x] else { continue };
                for &p in node.eager_peers() {
                    let Some(y) = crate::sim::world::node_of(p).filter(|y| *y < n) else {
                        continue;
                    };
                    let both = self.nodes[y]
                        .as_ref()
                        .is_some_and(|o| o.link(peer_of(x)) == Some(crate::tree::Link::Eager));
                    if both && !seen[y] {
                        seen[y] = true;
                        stack.push(y);
                    }
                }
            }
            components.push(size);
        }
        components.sort_unstable_by(|a, b| b.cmp(a));
        components
    }

    /// What the run measured so far.
    pub fn report(&self, wall: Duration) -> Report {
        Report::build(
            &self.cfg,
            &self.world,
            &self.total_stats(),
            self.crashes,
            self.partitioned,
            wall,
        )
    }
}

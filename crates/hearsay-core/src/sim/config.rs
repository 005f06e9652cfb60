//! What a simulated run looks like: size, network, faults, and the node
//! settings (production defaults, with the dedup filter sized to the run).

use std::time::Duration;

use thiserror::Error;

use crate::NodeConfig;

/// A part of the cluster cut off from the rest for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    /// Share of nodes on the small side.
    pub fraction: f64,
    /// When it starts, from the beginning of the run.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
}

/// Nodes that crash (losing all state) and restart as a new incarnation, as
/// a container restarting in place does.
#[derive(Clone, Debug, PartialEq)]
pub struct Churn {
    /// Share of nodes that crash once, at a random time while publishing.
    pub fraction: f64,
    /// How long each stays down.
    pub downtime: Duration,
}

#[derive(Clone, Debug, PartialEq)]
/// A simulation scenario.
pub struct SimConfig {
    /// Nodes to simulate.
    pub nodes: usize,
    /// Events to publish.
    pub events: usize,
    /// Probability that any one frame is lost.
    pub loss: f64,
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// Publishes per virtual second, at random live nodes.
    pub rate: f64,
    /// One-way link latency, and the uniform jitter around it.
    pub latency: Duration,
    /// Uniform jitter around the latency.
    pub jitter: Duration,
    /// How long the run goes on after the last publish or fault.
    pub settle: Duration,
    /// A partition during the run, if any.
    pub partition: Option<Partition>,
    /// Crashes and restarts during the run, if any.
    pub churn: Option<Churn>,
    /// Publish every event with tracking; each app acknowledges what it is
    /// handed at once, and the report gives confirmation times and
    /// messages.
    pub track: bool,
    /// Settings of every node's core.
    pub node: NodeConfig,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid simulation setting {setting}: {reason}")]
/// A scenario setting out of range.
pub struct SimConfigError {
    /// The setting's name.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl SimConfig {
    /// A scenario with the defaults for everything but these.
    pub fn new(nodes: usize, events: usize, loss: f64, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            events,
            loss,
            seed,
            rate: 100.0,
            latency: Duration::from_micros(500),
            jitter: Duration::from_micros(100),
            settle: Duration::from_secs(10),
            partition: None,
            churn: None,
            track: false,
            node: Self::node_config(events),
        }
    }

    /// Production defaults, except the dedup filter: sized to hold the whole
    /// run in one generation, so 10,000 nodes do not each carry a filter
    /// sized for a production stream.
    pub fn node_config(events: usize) -> NodeConfig {
        let mut node = NodeConfig::default();
        node.bloom.capacity = events.max(64);
        node.skew_margin = Duration::ZERO;
        node
    }

    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        let bad = |setting, reason| Err(SimConfigError { setting, reason });
        if self.nodes < 2 {
            return bad("nodes", "at least 2");
        }
        if !(0.0..1.0).contains(&self.loss) {
            return bad("loss", "from 0 up to (not including) 1");
        }
        if self.rate.is_nan() || self.rate <= 0.0 {
            return bad("rate", "must be positive");
        }
        if self.jitter > self.latency {
            return bad("jitter", "cannot exceed the latency");
        }
        if let Some(p) = &self.partition
            && !(p.fraction > 0.0 && p.fraction < 1.0)
        {
            return bad("partition", "fraction between 0 and 1");
        }
        if let Some(c) = &self.churn
            && !(c.fraction > 0.0 && c.fraction <= 1.0)
        {
            return bad("churn", "fraction in (0, 1]");
        }
        if self.node.validate().is_err() {
            return bad("node", "node settings are invalid");
        }
        Ok(())
    }
}

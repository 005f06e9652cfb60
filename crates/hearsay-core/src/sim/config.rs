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
pub struct SimConfig {
    pub nodes: usize,
    pub events: usize,
    /// Probability that any one frame is lost.
    pub loss: f64,
    pub seed: u64,
    /// Publishes per virtual second, at random live nodes.
    pub rate: f64,
    /// One-way link latency, and the uniform jitter around it.
    pub latency: Duration,
    pub jitter: Duration,
    /// How long the run goes on after the last publish or fault.
    pub settle: Duration,
    pub partition: Option<Partition>,
    pub churn: Option<Churn>,
    pub node: NodeConfig,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid simulation setting {setting}: {reason}")]
pub struct SimConfigError {
    pub setting: &'static str,
    pub reason: &'static str,
}

impl SimConfig {
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

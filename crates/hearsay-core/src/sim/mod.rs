//! A deterministic discrete-event simulator for the gossip core.
//!
//! It runs the real [`crate::Node`] for every node, on one thread,
//! against a virtual clock: links with latency, jitter and loss, partitions
//! that heal, nodes that crash and restart. The same arguments give the same
//! report, bit for bit, except the wall-clock time it took.
//!
//! - [`config`]: the scenario.
//! - `world`: the network, the action queue and each node's runtime.
//! - [`engine`]: the loop, and a small API for scripted tests.
//! - [`report`]: delivery, redundancy, hops and time-to-all.

pub mod config;
pub mod engine;
pub mod report;
mod world;

pub use config::{Churn, Partition, SimConfig};
pub use engine::Sim;
pub use report::Report;

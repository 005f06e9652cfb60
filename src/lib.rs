//! hearsay: a Kubernetes-native cache-invalidation sidecar.
//!
//! A sidecar runs next to each replica of an app, finds its peers, and
//! gossips cache invalidations and config values to them, so that every
//! replica's app gets every invalidation or is told to flush.
//!
//! # Layout
//!
//! - [`gossip`]: the pure protocol core (no I/O): events, wire codec, dedup,
//!   rate limits, membership, broadcast tree, anti-entropy, config.
//! - [`sim`]: a deterministic discrete-event simulator that drives the same
//!   core for thousands of nodes on one thread (`hearsay simulate`).
#![forbid(unsafe_code)]

pub mod cli;
pub mod gossip;
pub mod sim;

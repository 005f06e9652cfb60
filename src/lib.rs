//! hearsay: a Kubernetes-native cache-invalidation sidecar.
//!
//! A sidecar runs next to each replica of an app, finds its peers, and
//! gossips cache invalidations and config values to them, so that every
//! replica's app gets every invalidation or is told to flush.
//!
//! # Layout
//!
//! - [`gossip`]: the pure protocol core, the `hearsay-core` crate (no I/O):
//!   events, wire codec, dedup, rate limits, membership, broadcast tree,
//!   anti-entropy, config.
//! - [`sim`]: the core's deterministic simulator (`hearsay simulate`).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod delivery;
pub mod demo;
pub mod discovery;
pub use hearsay_core as gossip;
pub mod http;
pub mod metrics;
pub mod receiver;
pub mod settings;
pub mod shutdown;
pub mod sidecar;
pub use hearsay_core::sim;
pub mod transport;

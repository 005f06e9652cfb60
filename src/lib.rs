//! hearsay: a Kubernetes-native cache-invalidation sidecar.
//!
//! A sidecar runs next to each replica of an app, finds its peers, and
//! gossips cache invalidations and config values to them, so that every
//! replica's app gets every invalidation or is told to flush.
//!
//! # Layout
//!
//! From the bottom up: a module uses those above it, not below, except
//! that `settings` builds each subsystem's config type (the core's, the app
//! queue's) and `commands` carries the delivery queue's messages.
//!
//! - [`gossip`]: the pure protocol core, the `hearsay-core` crate (no I/O):
//!   events, wire codec, dedup, rate limits, membership, broadcast tree,
//!   anti-entropy, config. [`sim`]: its deterministic simulator
//!   (`hearsay simulate`).
//! - [`clock`]: the core's time from the process clocks.
//! - [`commands`]: what the other tasks ask of the owner task, and the
//!   answers (the contract between `sidecar` and `api`, `delivery`, `cli`).
//! - [`shutdown`]: signals, the shutdown watch, dying with the parent.
//! - [`http`]: serving HTTP with limits, bodies, JSON errors.
//! - [`settings`]: every setting of `hearsay run`, declared once
//!   (`declared`), resolved from flag, env, file and default (`layers`),
//!   checked by area (`sections`), printed (`print`).
//! - [`metrics`]: one metric group per subsystem, the core-counter export,
//!   and the `/metrics` `/healthz` `/readyz` server.
//! - [`transport`]: gossip over TCP: keys, frames, the hello, replay
//!   windows, connection slots, a writer per peer, the listener.
//! - [`discovery`]: peer sources (a static list and file, Kubernetes),
//!   publishing peer sets through a [`discovery::Publisher`].
//! - [`delivery`]: the app queue (sans-IO), the CloudEvents payload, the
//!   webhook worker and its health, the subscription streams.
//! - [`api`]: the local JSON API, a thin layer over `commands`.
//! - [`sidecar`]: `hearsay run`, the composition root: bind, identify,
//!   spawn the tasks, wait for a signal, drain; and the owner task.
//! - [`client`]: the local API's client, for the CLI and the demo;
//!   [`subscriber`]: a subscription stream's client and parser.
//! - [`receiver`]: a recording webhook receiver (`hearsay receiver`, the
//!   demo, the tests).
//! - [`demo`]: `hearsay demo` and its local cluster of processes (also the
//!   integration tests' harness).
//! - [`cli`]: the command line, one file per group of subcommands.
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
pub mod subscriber;
pub use hearsay_core::sim;
pub mod transport;

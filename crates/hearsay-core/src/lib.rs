//! hearsay's gossip core: a sans-IO state machine. Its dependencies hold no
//! tokio, hyper, kube, k8s-openapi or prometheus, so it cannot do I/O. It takes inputs — a frame from a peer, a local publish, a timer, a
//! membership change, always with the current time — and emits effects
//! through a [`Runtime`]: send items to a peer, deliver an event to the app,
//! flush a cache, schedule a timer. The same core runs in the sidecar, in
//! tests and in the simulator.
//!
//! # Layout
//!
//! - [`node`]: the state machine itself, tying the parts below together.
//! - [`event`]: what is published, its id and its limits.
//! - [`message`] and [`codec`]: the protocol's items and their wire format.
//! - [`bloom`] and [`records`]: dedup, fast and exact.
//! - [`tree`]: Plumtree's eager/lazy links and missing announcements.
//! - [`retention`]: recent events kept for grafts and repairs.
//! - [`registers`] and [`hlc`]: config as last-writer-wins registers.
//! - [`confirm`]: confirmed invalidation, the origin's tracker and each
//!   replica's outcomes.
//! - [`ratelimit`]: token buckets with injected time.
//! - [`membership`]: peer ids and peer sets from discovery.
//! - [`runtime`], [`settings`], [`stats`], [`time`]: the edges of the core.
//! - [`sim`]: a deterministic discrete-event simulator that drives this
//!   core for thousands of nodes on one thread (`hearsay simulate`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bloom;
pub mod codec;
pub mod confirm;
pub mod event;
pub mod hlc;
pub mod membership;
pub mod message;
pub mod node;
pub mod ratelimit;
pub mod records;
pub mod registers;
pub mod retention;
pub mod runtime;
pub mod settings;
pub mod sim;
pub mod stats;
pub mod time;
pub mod tree;

pub use event::{Event, EventBody, EventError, EventId, Invalidation, Limits, Origin, Version};
pub use membership::{MembershipUpdate, Peer, PeerId, PeerSet};
pub use message::{Inbound, Item};
pub use node::{Node, PublishError, Settled};
pub use runtime::{Effect, FlushReason, Runtime, Timer};
pub use settings::NodeConfig;
pub use stats::Stats;
pub use time::Time;

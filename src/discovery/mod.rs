//! Finding peers (DESIGN §9). Each source publishes its current peer set on
//! a watch channel; the owner task and the transport's admission read it.
//! While a source fails, the last known set stays in use.

pub mod kubernetes;
pub mod static_peers;

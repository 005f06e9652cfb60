//! Small HTTP plumbing shared by the local API, the metrics listener and
//! the demo's receivers: serving with limits, and building responses.

mod body;
mod server;

pub use body::{BodyError, error, json, read_body, text};
pub use server::{ServerLimits, serve};

/// The response body type every handler returns.
pub type Body = http_body_util::Full<bytes::Bytes>;

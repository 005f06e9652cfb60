//! Small HTTP plumbing shared by the local API, the metrics listener and
//! the demo's receivers: serving with limits, and building responses.

mod body;
mod server;

pub use body::{BodyError, error, json, read_body, text};
pub use server::{ServerLimits, serve};

/// The response body type every handler returns: whole (see [`full`]) or
/// a stream (a subscription).
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::convert::Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<bytes::Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into()).boxed_unsync()
}

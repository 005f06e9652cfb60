//! Delivery to the local app (DESIGN §10): the webhook worker, and the
//! CloudEvents payload it sends, and the queue of what is pending ([`queue`],
//! sans-IO, held by the owner task). The worker is the I/O around it. The
//! subscription streams ([`stream`], DESIGN §10a) are a second way out.
//! What the app has settled, for confirmations, is the [`ledger`]'s.

pub mod cloudevents;
pub mod health;
pub mod ledger;
pub mod queue;
pub mod stream;
pub mod webhook;

//! Delivery to the local app (DESIGN §10): the webhook worker, and the
//! CloudEvents payload it sends. What is pending lives in the owner task's
//! [`crate::gossip::app_queue::AppQueue`]; this is the I/O around it.

pub mod cloudevents;
pub mod health;
pub mod webhook;

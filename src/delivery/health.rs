//! How the app looks from the webhook worker: `ready`, `waiting` (not
//! answered yet: readiness gating) or `failing` (answered once, failing
//! since), with the last error and when the state began. `GET /v1/status`
//! and `hearsay status` show it, and a WARN names the URL and the error at
//! most every [`WARN_EVERY`] while the app cannot be reached.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::clock::rfc3339;
use crate::gossip::Time;

/// At most one WARN per this while the app keeps failing.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ready,
    Waiting,
    Failing,
}

/// What `GET /v1/status` says about the webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookStatus {
    pub state: State,
    /// The last failed attempt's error, whole chain; `null` if none yet.
    pub last_error: Option<String>,
    /// When the current state began (RFC 3339).
    pub since: String,
}

struct Inner {
    state: State,
    last_error: Option<String>,
    since: Time,
    last_warn: Option<Instant>,
    unwarned: u64,
}

/// Shared between the worker (writes) and the status route (reads).
#[derive(Clone)]
pub struct Health(Arc<Mutex<Inner>>);

/// A failure the worker should log at WARN now: how many failed attempts
/// it stands for.
pub struct Warn {
    pub attempts: u64,
}

impl Health {
    pub fn new(now: Time) -> Health {
        Health(Arc::new(Mutex::new(Inner {
            state: State::Waiting,
            last_error: None,
            since: now,
            last_warn: None,
            unwarned: 0,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Held to copy a few fields, never across an await.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn succeeded(&self, now: Time) {
        let mut h = self.lock();
        if h.state != State::Ready {
            h.state = State::Ready;
            h.since = now;
        }
        h.last_warn = None;
        h.unwarned = 0;
    }

    /// A failed attempt: `waiting` before the app ever answered, `failing`
    /// after. Returns a [`Warn`] when this one should be logged.
    pub fn failed(&self, error: String, answered_before: bool, now: Time) -> Option<Warn> {
        let mut h = self.lock();
        let state = if answered_before {
            State::Failing
        } else {
            State::Waiting
        };
        if h.state != state {
            h.state = state;
            h.since = now;
        }
        h.last_error = Some(error);
        h.unwarned += 1;
        let due = h.last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        due.then(|| {
            h.last_warn = Some(Instant::now());
            Warn {
                attempts: std::mem::take(&mut h.unwarned),
            }
        })
    }

    /// An answer that refused the batch (4xx): the app is up, but say why.
    pub fn rejected(&self, error: String) {
        self.lock().last_error = Some(error);
    }

    pub fn status(&self) -> WebhookStatus {
        let h = self.lock();
        WebhookStatus {
            state: h.state,
            last_error: h.last_error.clone(),
            since: rfc3339(h.since),
        }
    }
}

/// An error with every cause behind it: `client error (Connect): tcp
/// connect error: Connection refused (os error 111)`, not just the first.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_answers_and_warnings_are_rate_limited() {
        let t = Time::from_millis(1_000);
        let h = Health::new(t);
        assert_eq!(h.status().state, State::Waiting);
        assert!(
            h.failed("refused".into(), false, t).is_some(),
            "the first warns"
        );
        assert!(
            h.failed("refused".into(), false, t).is_none(),
            "the next do not"
        );
        assert_eq!(h.status().last_error.as_deref(), Some("refused"));
        h.succeeded(Time::from_millis(2_000));
        let s = h.status();
        assert_eq!(s.state, State::Ready);
        assert_eq!(s.since, rfc3339(Time::from_millis(2_000)));
        let w = h.failed("500".into(), true, Time::from_millis(3_000));
        assert_eq!(w.map(|w| w.attempts), Some(1), "success resets the limit");
        assert_eq!(h.status().state, State::Failing);
    }

    #[test]
    fn the_chain_names_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(error_chain(&Outer(io)), "client error (Connect): refused");
    }
}

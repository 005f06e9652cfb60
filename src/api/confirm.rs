//! Confirmed publishes (DESIGN §10a): `?wait=3s` on `POST /v1/invalidate`
//! and `PUT`/`DELETE /v1/config/{key}`, and `GET /v1/events/{id}`.
//!
//! A publish with `wait` is tracked: every member but this node (and this
//! node too with `--deliver-own`) must confirm. The answer is `200` with
//! the confirmation once every replica acknowledged, flushed or departed,
//! or one rejected it (`"confirmed": false`); `202` with the same document
//! as it stands when the wait ran out (the event is still on its way).

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use serde::Serialize;

use super::{ApiCtx, ask, publish_error};
use crate::commands::{Command, PublishReply, Refused, Wait};
use crate::gossip::EventId;
use crate::gossip::confirm::Confirmation;
use crate::gossip::time::Time;
use crate::http::{self, Body};
use crate::metrics::WaitOutcome;

/// The longest wait a publisher may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A confirmation as the API shows it.
#[derive(Debug, Serialize)]
pub struct ConfirmationDoc {
    pub id: String,
    /// Every replica acknowledged, flushed or departed.
    pub confirmed: bool,
    /// From the publish to the last confirmation (or a rejection), or to
    /// now while replicas are pending.
    pub elapsed_ms: f64,
    pub replicas: Vec<ReplicaDoc>,
}

#[derive(Debug, Serialize)]
pub struct ReplicaDoc {
    pub name: String,
    pub state: &'static str,
}

impl ConfirmationDoc {
    pub fn of(c: &Confirmation, now: Time) -> ConfirmationDoc {
        let end = c.done_at.unwrap_or(now);
        ConfirmationDoc {
            id: c.id.to_string(),
            confirmed: c.confirmed() && c.finished(),
            elapsed_ms: (end.since(c.published_at).as_secs_f64() * 1e6).round() / 1e3,
            replicas: c
                .replicas
                .iter()
                .map(|r| ReplicaDoc {
                    name: r.name.to_string(),
                    state: r.state.as_str(),
                })
                .collect(),
        }
    }
}

/// The query of a publish: only `wait` (a duration such as `3s`, `500ms`,
/// at most [`MAX_WAIT`]; `0s` tracks without waiting).
pub fn wait_of(req: &Request<Incoming>) -> Result<Option<Duration>, String> {
    let bad = |msg: String| msg;
    let mut wait = None;
    for pair in req.uri().query().unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "wait" {
            return Err(bad(format!("unknown parameter {k:?} (wait)")));
        }
        let v = super::routes::percent_decode(v)
            .ok_or_else(|| bad("wait: not valid percent-encoded UTF-8".into()))?;
        let d = parse_wait(&v).ok_or_else(|| {
            bad(format!(
                "wait: {v:?} is not seconds (up to three decimals) or whole milliseconds of at most 60s, such as 3s, 1.5s or 500ms"
            ))
        })?;
        wait = Some(d);
    }
    Ok(wait)
}

#[derive(Serialize)]
struct Accepted {
    id: String,
}

/// `3s`, `1.5s`, `500ms`: at most [`MAX_WAIT`], in exactly the forms the
/// OpenAPI document's pattern allows.
fn parse_wait(v: &str) -> Option<Duration> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let lead_1_to_5 = |s: &str| (b'1'..=b'5').contains(&s.as_bytes()[0]);
    let d = if let Some(n) = v.strip_suffix("ms") {
        let ok = digits(n) && (n.len() <= 4 || (n.len() == 5 && lead_1_to_5(n)) || n == "60000");
        ok.then(|| n.parse().ok().map(Duration::from_millis))??
    } else {
        let n = v.strip_suffix('s')?;
        let (int, frac) = n.split_once('.').map_or((n, None), |(i, f)| (i, Some(f)));
        let int_ok =
            digits(int) && (int.len() == 1 || (int.len() == 2 && lead_1_to_5(int)) || int == "60");
        let frac_ok = frac.is_none_or(|f| {
            (1..=3).contains(&f.len()) && digits(f) && (int != "60" || f.bytes().all(|b| b == b'0'))
        });
        (int_ok && frac_ok).then(|| n.parse::<f64>().ok().map(Duration::from_secs_f64))??
    };
    (d <= MAX_WAIT).then_some(d)
}

/// The answer to a query [`wait_of`] refused.
pub fn bad_query(why: &str) -> Response<Body> {
    http::error(StatusCode::BAD_REQUEST, "invalid_query", why)
}

/// Publishes through `make` and answers: `202 {"id"}` without `wait`;
/// with one, the confirmation (`200`), or what stands when it ran out
/// (`202`).
pub async fn publish(
    ctx: &ApiCtx,
    wait: Option<Duration>,
    make: impl FnOnce(Wait, PublishReply) -> Command,
) -> Response<Body> {
    let w = if wait.is_some() { Wait::Yes } else { Wait::No };
    let published = match ask(ctx, |reply| make(w, reply)).await {
        Ok(Ok(p)) => p,
        Ok(Err(Refused::Publish(e))) => return publish_error(&e),
        Ok(Err(Refused::TooManyWaits(n))) => {
            let mut r = http::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_waits",
                &format!(
                    "{n} publishers are waiting already (--max-confirm-waits); nothing was published"
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return r;
        }
        Err(r) => return r,
    };
    let id = published.id;
    let (Some(wait), Some(rx)) = (wait, published.confirmation) else {
        return http::json(StatusCode::ACCEPTED, &Accepted { id: id.to_string() });
    };
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(c)) => http::json(StatusCode::OK, &ConfirmationDoc::of(&c, ctx.clock.now())),
        // The wait ran out (or the owner went away): what stands now.
        _ => {
            if !wait.is_zero() {
                ctx.waits
                    .with_label_values(&[WaitOutcome::TimedOut.as_str()])
                    .inc();
            }
            current(ctx, id, StatusCode::ACCEPTED).await
        }
    }
}

/// The confirmation of `id` as it stands, with `status`, or 404.
async fn current(ctx: &ApiCtx, id: EventId, status: StatusCode) -> Response<Body> {
    match ask(ctx, |reply| Command::Confirmation { id, reply }).await {
        Ok(Some(c)) => {
            let status = if c.finished() { StatusCode::OK } else { status };
            http::json(status, &ConfirmationDoc::of(&c, ctx.clock.now()))
        }
        Ok(None) => http::error(
            StatusCode::NOT_FOUND,
            "not_tracked",
            &format!(
                "event {id} is not tracked here: only events this sidecar published with ?wait= are, for the retention"
            ),
        ),
        Err(r) => r,
    }
}

/// `GET /v1/events/{id}`: `200` with the confirmation (finished or not),
/// `404` when this sidecar does not track it.
pub async fn event(ctx: &ApiCtx, id: &str) -> Response<Body> {
    match id.parse::<EventId>() {
        Ok(id) => current(ctx, id, StatusCode::OK).await,
        Err(_) => http::error(
            StatusCode::BAD_REQUEST,
            "invalid_event_id",
            "an event id is 32 hexadecimal digits, as a publish returns it",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_seconds_or_milliseconds_up_to_a_minute() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("3s", Some(ms(3000))),
            ("0s", Some(ms(0))),
            ("1.5s", Some(ms(1500))),
            ("60s", Some(ms(60_000))),
            ("60.000s", Some(ms(60_000))),
            ("500ms", Some(ms(500))),
            ("60000ms", Some(ms(60_000))),
            ("61s", None),
            ("60.5s", None),
            ("60001ms", None),
            ("0", None),
            ("1m", None),
            ("1.2345s", None),
            ("1.5ms", None),
            ("s", None),
            ("-1s", None),
        ] {
            assert_eq!(parse_wait(text), want, "{text}");
        }
    }
}

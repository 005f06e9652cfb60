//! The fake's HTTP side: routes, lists, watch streams, Status errors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use super::selector::Selector;
use super::store::{Kind, Snapshot};
use super::{Control, Shared};

type Body = BoxBody<Bytes, std::io::Error>;

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(req, shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

fn full(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(v.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap()
}

/// A `metav1.Status` failure, as the API server answers errors.
fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    full(
        StatusCode::from_u16(code).unwrap(),
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        }),
    )
}

fn injected(code: u16) -> Response<Body> {
    match code {
        403 => status(
            403,
            "Forbidden",
            "pods is forbidden: User \"system:serviceaccount:shop:hearsay\" cannot list resource \"pods\"",
        ),
        500 => status(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
        ),
        other => status(other, "Unknown", "injected failure"),
    }
}

struct Route {
    kind: Kind,
    ns: Option<String>,
    name: Option<String>,
}

fn route(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (Kind::Pod, rest),
        ["apis", "discovery.k8s.io", "v1", rest @ ..] => (Kind::EndpointSlice, rest),
        _ => return None,
    };
    let plural = match kind {
        Kind::Pod => "pods",
        Kind::EndpointSlice => "endpointslices",
    };
    match rest {
        [p] if *p == plural => Some(Route {
            kind,
            ns: None,
            name: None,
        }),
        ["namespaces", ns, p] if *p == plural => Some(Route {
            kind,
            ns: Some(ns.to_string()),
            name: None,
        }),
        ["namespaces", ns, p, name] if *p == plural => Some(Route {
            kind,
            ns: Some(ns.to_string()),
            name: Some(name.to_string()),
        }),
        _ => None,
    }
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    if req.method() != Method::GET {
        return status(405, "MethodNotAllowed", "this fake only reads");
    }
    let Some(r) = route(req.uri().path()) else {
        return status(
            404,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({})",
                req.uri().path()
            ),
        );
    };
    let q: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let verb = if r.name.is_some() {
        "get"
    } else if q.get("watch").map(String::as_str) == Some("true") {
        "watch"
    } else {
        "list"
    };
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refused = shared
        .rbac
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|p| p.check(auth, verb, r.kind, r.ns.as_deref()).err());
    if let Some((code, reason, message)) = refused {
        shared.forbidden.fetch_add(1, Ordering::Relaxed);
        return status(code, reason, &message);
    }
    if let (Some(ns), Some(name)) = (&r.ns, &r.name) {
        return match shared.store.lock().unwrap().get(r.kind, ns, name) {
            Some(obj) => full(StatusCode::OK, &obj),
            None => status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", r.kind.kind().to_lowercase()),
            ),
        };
    }
    let sel = match Selector::parse(q.get("labelSelector").map(String::as_str).unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return status(400, "BadRequest", &e),
    };
    if q.get("watch").map(String::as_str) == Some("true") {
        watch(&shared, r, sel, &q)
    } else {
        list(&shared, r, sel, &q)
    }
}

fn strip_type_meta(mut v: Value) -> Value {
    // A list's items carry no kind or apiVersion; the list does.
    if let Some(m) = v.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    v
}

fn list(shared: &Shared, r: Route, sel: Selector, q: &HashMap<String, String>) -> Response<Body> {
    shared.lists.fetch_add(1, Ordering::Relaxed);
    let mut faults = shared.faults.lock().unwrap();
    if let Some(code) = faults.list {
        return injected(code);
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut store = shared.store.lock().unwrap();
    let snap = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            shared.continues.fetch_add(1, Ordering::Relaxed);
            match store.take_snapshot(token) {
                Some(s) => s,
                None => {
                    return status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    );
                }
            }
        }
        None => {
            let (items, rv) = store.list(r.kind, r.ns.as_deref(), &sel);
            Snapshot { rest: items, rv }
        }
    };
    let Snapshot { mut rest, rv } = snap;
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = limit
        && rest.len() > limit
    {
        let remaining = rest.split_off(limit);
        meta["remainingItemCount"] = json!(remaining.len());
        let token = store.save_snapshot(Snapshot {
            rest: remaining,
            rv,
        });
        if faults.expire_next_continue {
            faults.expire_next_continue = false;
            store.take_snapshot(&token);
        }
        meta["continue"] = json!(token);
    }
    let items: Vec<Value> = rest.into_iter().map(strip_type_meta).collect();
    full(
        StatusCode::OK,
        &json!({"kind": r.kind.list_kind(), "apiVersion": r.kind.api_version(), "metadata": meta, "items": items}),
    )
}

fn line(v: &Value) -> Result<Frame<Bytes>, std::io::Error> {
    let mut bytes = v.to_string().into_bytes();
    bytes.push(b'\n');
    Ok(Frame::data(Bytes::from(bytes)))
}

fn watch(
    shared: &Arc<Shared>,
    r: Route,
    sel: Selector,
    q: &HashMap<String, String>,
) -> Response<Body> {
    shared.watches.fetch_add(1, Ordering::Relaxed);
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    shared.watch_from.lock().unwrap().push(from);
    if let Some(code) = shared.faults.lock().unwrap().watch {
        return injected(code);
    }
    let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1800),
    );
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(256);
    // Subscribe before reading the store, so no write falls in between.
    let mut changed = shared.changed.subscribe();
    let mut control = shared.control.subscribe();
    let shared = shared.clone();
    tokio::spawn(async move {
        let (compacted, current) = {
            let s = shared.store.lock().unwrap();
            (s.compacted, s.rv)
        };
        if from != 0 && from < compacted {
            let gone = json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from} ({compacted})"),
                "reason": "Expired", "code": 410
            }});
            let _ = tx.send(line(&gone)).await;
            return;
        }
        let mut last = from;
        if from == 0 {
            let items = shared
                .store
                .lock()
                .unwrap()
                .list(r.kind, r.ns.as_deref(), &sel)
                .0;
            for o in items {
                if tx
                    .send(line(&json!({"type": "ADDED", "object": o})))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            last = current;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut bookmark_due = false;
        loop {
            let (events, now_rv) = {
                let s = shared.store.lock().unwrap();
                (s.events_after(r.kind, r.ns.as_deref(), &sel, last), s.rv)
            };
            for (rv, kind, obj) in events {
                if tx
                    .send(line(&json!({"type": kind, "object": obj})))
                    .await
                    .is_err()
                {
                    return;
                }
                last = rv;
            }
            if bookmark_due {
                bookmark_due = false;
                last = last.max(now_rv);
                let bm = json!({"type": "BOOKMARK", "object": {
                    "kind": r.kind.kind(), "apiVersion": r.kind.api_version(),
                    "metadata": {"resourceVersion": last.to_string()}
                }});
                if tx.send(line(&bm)).await.is_err() {
                    return;
                }
                shared.bookmarks.fetch_add(1, Ordering::Relaxed);
            }
            tokio::select! {
                c = changed.recv() => if matches!(c, Err(broadcast::error::RecvError::Closed)) { return },
                c = control.recv() => match c {
                    Ok(Control::Bookmark) => bookmark_due = bookmarks,
                    Ok(Control::End) => return,
                    Ok(Control::Cut) => {
                        let _ = tx.send(Err(std::io::Error::other("connection cut"))).await;
                        return;
                    }
                    Err(_) => {}
                },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

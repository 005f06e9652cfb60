//! Subscription streams (`GET /v1/subscribe`) end to end: real sidecars in
//! `--delivery stream` or `both` mode on 127.0.0.1, and subscribers that
//! read the streams over HTTP as an app process would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hearsay::demo::cluster::LocalCluster;
use hearsay::subscriber::{StreamRecord, SubscribeOptions, Subscriber};

const WAIT: Duration = Duration::from_secs(15);

/// A subscriber reading its stream into a list in the background.
struct Collector {
    records: Arc<Mutex<Vec<StreamRecord>>>,
    task: tokio::task::JoinHandle<()>,
    opened: String,
}

impl Collector {
    async fn start(addr: SocketAddr, opts: SubscribeOptions) -> Collector {
        let mut sub = Subscriber::open(addr, &opts).await.unwrap();
        let opened = sub.opened.clone();
        let records = Arc::new(Mutex::new(Vec::new()));
        let into = records.clone();
        let task = tokio::spawn(async move {
            while let Some(r) = sub.next().await {
                into.lock()
                    .unwrap()
                    .push(r.expect("every record is a CloudEvent"));
            }
        });
        Collector {
            records,
            task,
            opened,
        }
    }

    fn records(&self) -> Vec<StreamRecord> {
        self.records.lock().unwrap().clone()
    }

    fn count(&self, id: &str) -> usize {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.id == id)
            .count()
    }

    /// How many records each id had, all at once.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.records.lock().unwrap().iter() {
            *m.entry(r.id.clone()).or_default() += 1;
        }
        m
    }

    fn last_id(&self) -> String {
        self.records().last().unwrap().id.clone()
    }

    /// Closes the stream (the connection goes away with the task).
    async fn stop(self) -> Vec<StreamRecord> {
        self.task.abort();
        let _ = self.task.await;
        self.records.lock().unwrap().clone()
    }
}

fn all_caches() -> SubscribeOptions {
    SubscribeOptions::default()
}

fn flush_reason(r: &StreamRecord) -> Option<&str> {
    (r.kind == "dev.hearsay.flush").then(|| r.event["data"]["reason"].as_str().unwrap())
}

async fn publish_to(c: &LocalCluster, i: usize, cache: &str, key: &str) -> String {
    c.api(i)
        .invalidate(&serde_json::json!({"cache": cache, "keys": [key]}))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_on_every_other_node_gets_every_event_exactly_once() {
    let (c, recv) = cluster("streams-every", 3, &["--delivery", "stream"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    // Two worker processes per pod: one reads SSE, the other NDJSON.
    let mut subs = Vec::new();
    for i in 0..3 {
        let addr = c.node(i).unwrap().ready.api;
        let sse = Collector::start(addr, all_caches()).await;
        let nd = SubscribeOptions {
            ndjson: true,
            ..all_caches()
        };
        let ndjson = Collector::start(addr, nd).await;
        subs.push((i, sse));
        subs.push((i, ndjson));
    }
    let mut ids = Vec::new();
    for round in 0..5 {
        for i in 0..3 {
            ids.push((
                i,
                publish_to(&c, i, "products", &format!("k{round}-{i}")).await,
            ));
        }
    }
    eventually(
        WAIT,
        "every event at every subscriber of every other node",
        || async {
            ids.iter().all(|(origin, id)| {
                subs.iter()
                    .all(|(node, s)| node == origin || s.count(id) >= 1)
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (node, s) in &subs {
        assert_eq!(s.opened, "new");
        let records = s.records();
        assert_eq!(
            flush_reason(&records[0]),
            Some("subscribe"),
            "a new stream opens with a flush: {:?}",
            records[0]
        );
        assert!(
            records[0].event["data"]["cache"].is_null(),
            "of every cache"
        );
        let flushes = records.iter().filter(|r| flush_reason(r).is_some()).count();
        assert_eq!(flushes, 1, "node {node}: only the opening flush");
        for (origin, id) in &ids {
            let want = usize::from(node != origin);
            assert_eq!(s.count(id), want, "event {id} from {origin} at node {node}");
        }
        let one = records.iter().find(|r| r.kind == "dev.hearsay.invalidate");
        let one = one.expect("an invalidation");
        assert_eq!(one.event["specversion"], "1.0");
        assert_eq!(one.event["data"]["cache"], "products");
        assert_eq!(
            one.event["id"],
            one.id.as_str(),
            "the SSE id is the event's id"
        );
    }
    for r in &recv {
        assert_eq!(r.count(), 0, "stream mode sends nothing to a webhook");
    }
    for (_, s) in subs {
        s.stop().await;
    }
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_filtered_by_cache_gets_that_cache_and_every_flush_of_all() {
    let (c, _recv) = cluster("streams-filter", 2, &["--delivery", "stream"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let addr = c.node(1).unwrap().ready.api;
    let opts = SubscribeOptions {
        caches: vec!["users".into()],
        ..all_caches()
    };
    let users = Collector::start(addr, opts).await;
    let products = publish_to(&c, 0, "products", "1").await;
    let user = publish_to(&c, 0, "users", "7").await;
    let config = c
        .api(0)
        .call(
            hyper::Method::PUT,
            "/v1/config/color",
            Some(b"blue".to_vec()),
        )
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let config = config["id"].as_str().unwrap().to_owned();
    eventually(WAIT, "the users event and the config", || async {
        users.count(&user) == 1 && users.count(&config) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        users.count(&products),
        0,
        "another cache's event is filtered"
    );
    let records = users.stop().await;
    assert_eq!(flush_reason(&records[0]), Some("subscribe"));
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumed_with_last_event_id_misses_nothing_and_gets_no_flush() {
    let (c, _recv) = cluster("streams-resume", 2, &["--delivery", "stream"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let addr = c.node(1).unwrap().ready.api;
    let first = Collector::start(addr, all_caches()).await;
    let before: Vec<String> = futures_ids(&c, 0, "before", 3).await;
    eventually(WAIT, "the first events", || async {
        before.iter().all(|id| first.count(id) == 1)
    })
    .await;
    let last = first.last_id();
    assert_eq!(last, *before.last().unwrap());
    first.stop().await;

    // While this worker is away (say, restarting), events keep coming: a
    // second subscriber keeps the sidecar delivering to the log.
    let keeper = Collector::start(addr, all_caches()).await;
    let missed = futures_ids(&c, 0, "missed", 5).await;
    eventually(WAIT, "the missed events reach the log", || async {
        missed.iter().all(|id| keeper.count(id) == 1)
    })
    .await;

    let opts = SubscribeOptions {
        last_event_id: Some(last),
        ..all_caches()
    };
    let resumed = Collector::start(addr, opts).await;
    assert_eq!(resumed.opened, "resumed");
    let after = futures_ids(&c, 0, "after", 2).await;
    eventually(WAIT, "the missed and the new events", || async {
        missed.iter().chain(&after).all(|id| resumed.count(id) == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = resumed.stop().await;
    let got: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let want: Vec<&str> = missed.iter().chain(&after).map(String::as_str).collect();
    assert_eq!(
        got, want,
        "exactly what came after, in order, with no flush"
    );
    assert_eq!(
        c.metric(1, "hearsay_stream_opened_total{outcome=\"resumed\"}")
            .await
            .unwrap(),
        1.0
    );
    keeper.stop().await;
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resuming_after_its_id_left_the_log_gets_a_flush_first() {
    let extra = ["--delivery", "stream", "--stream-log-entries", "4"];
    let (c, _recv) = cluster("streams-gap", 2, &extra).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let addr = c.node(1).unwrap().ready.api;
    let first = Collector::start(addr, all_caches()).await;
    let early = futures_ids(&c, 0, "early", 2).await;
    eventually(WAIT, "the early events", || async {
        early.iter().all(|id| first.count(id) == 1)
    })
    .await;
    let last = first.last_id();
    // The same subscriber keeps reading while ten more pass through a log
    // of four: its old id leaves the log.
    let later = futures_ids(&c, 0, "later", 10).await;
    eventually(WAIT, "the later events", || async {
        later.iter().all(|id| first.count(id) == 1)
    })
    .await;
    first.stop().await;

    let opts = SubscribeOptions {
        last_event_id: Some(last),
        ..all_caches()
    };
    let s = Collector::start(addr, opts).await;
    assert_eq!(s.opened, "gap");
    let next = publish_to(&c, 0, "products", "next").await;
    eventually(WAIT, "the next event", || async { s.count(&next) == 1 }).await;
    let records = s.stop().await;
    assert_eq!(flush_reason(&records[0]), Some("resume_gap"), "{records:?}");
    assert!(records[0].event["data"]["cache"].is_null());
    assert_eq!(records.last().unwrap().id, next);
    let gap = "hearsay_flushes_total{reason=\"resume_gap\"}";
    assert_eq!(c.metric(1, gap).await.unwrap(), 1.0);
    finish(c).await;
}

/// Publishes `n` invalidations of `products` at node `i`, keys `{tag}-k`.
async fn futures_ids(c: &LocalCluster, i: usize, tag: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for k in 0..n {
        ids.push(publish_to(c, i, "products", &format!("{tag}-{k}")).await);
    }
    ids
}

/// One event of two keys of about 400 bytes each.
fn big_event(cache: &str, n: usize) -> serde_json::Value {
    let keys: Vec<String> = (0..2)
        .map(|k| format!("{n:06}-{k}-{}", "x".repeat(390)))
        .collect();
    serde_json::json!({"cache": cache, "keys": keys})
}

/// Publishes rounds of 25 events at node 0 (a pause between rounds lets
/// a reading subscriber keep up) until `metric` at node 1 rises above
/// `from`; bounded in count and time. `cache` names each event's cache.
async fn publish_until(
    c: &LocalCluster,
    metric: &str,
    published: &mut Vec<String>,
    cache: impl Fn(usize) -> String,
) {
    let api = c.api(0);
    let from = c.metric(1, metric).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while c.metric(1, metric).await.unwrap() <= from {
        assert!(
            n < 30_000 && tokio::time::Instant::now() < deadline,
            "{metric} did not rise after {n} events"
        );
        for _ in 0..25 {
            let id = api.invalidate(&big_event(&cache(n), n)).await.unwrap();
            published.push(id);
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{metric} rose after {n} events");
}

/// Reads `sub` until a record is, or coalesces, event `id`.
async fn read_until(sub: &mut Subscriber, id: &str) -> Vec<StreamRecord> {
    let mut records = Vec::new();
    let read = async {
        while let Some(r) = sub.next().await {
            let r = r.unwrap();
            let done = r.id == id || ids_in(&r).iter().any(|i| i == id);
            records.push(r);
            if done {
                return;
            }
        }
        panic!("the stream ended before {id}");
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap_or_else(|_| panic!("{id} not read within 30 s"));
    records
}

/// The events a record stands for: itself, or what it coalesced.
fn ids_in(r: &StreamRecord) -> Vec<String> {
    match r.event["data"]["coalesced"].as_array() {
        Some(ids) => ids.iter().map(|i| i.as_str().unwrap().to_owned()).collect(),
        None => vec![r.id.clone()],
    }
}

fn is_flush_of_all(r: &StreamRecord) -> bool {
    flush_reason(r).is_some() && r.event["data"]["cache"].is_null()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_gets_coalesced_events_then_a_flush_and_others_are_unaffected() {
    let extra = [
        "--delivery",
        "stream",
        "--stream-buffer",
        "100",
        "--webhook-max-batch",
        "25",
    ];
    let (c, _recv) = cluster("streams-slow", 2, &extra).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let addr = c.node(1).unwrap().ready.api;
    let fast = Collector::start(addr, all_caches()).await;
    // The slow one opens its stream and then reads nothing: the kernel's
    // socket buffers fill, then its buffer in the sidecar.
    let mut slow = Subscriber::open(addr, &all_caches()).await.unwrap();
    let mut published = Vec::new();

    // One cache: the slow stream's pending events merge.
    publish_until(&c, "hearsay_stream_coalesced_total", &mut published, |_| {
        "a".into()
    })
    .await;
    let mut records = read_until(&mut slow, published.last().unwrap()).await;
    assert_eq!(flush_reason(&records[0]), Some("subscribe"));
    assert!(
        records
            .iter()
            .any(|r| r.event["data"]["coalesced"].is_array()),
        "some events arrived coalesced"
    );
    assert_eq!(
        records.iter().filter(|r| flush_reason(r).is_some()).count(),
        1,
        "merging needed no flush"
    );
    let mut stood_for: Vec<String> = records.iter().skip(1).flat_map(ids_in).collect();
    assert_eq!(stood_for, published, "every event once, in order");

    // Distinct caches: merging cannot help, everything becomes a flush.
    let phase2 = published.len();
    publish_until(
        &c,
        "hearsay_flushes_total{reason=\"slow_subscriber\"}",
        &mut published,
        |n| format!("c{n}"),
    )
    .await;
    let after = publish_to(&c, 0, "products", "after").await;
    published.push(after.clone());
    let more = read_until(&mut slow, &after).await;
    let flush_at = more
        .iter()
        .position(|r| flush_reason(r) == Some("slow_subscriber"))
        .expect("a slow_subscriber flush");
    assert!(is_flush_of_all(&more[flush_at]));
    records.extend(more.iter().cloned());
    // Nothing silently lost: an event that did not arrive has a flush of
    // everything after the last record published before it.
    let pos: BTreeMap<String, usize> = more
        .iter()
        .enumerate()
        .flat_map(|(at, r)| ids_in(r).into_iter().map(move |id| (id, at)))
        .collect();
    let mut last_before = None::<usize>;
    let mut flushed = 0;
    for id in &published[phase2..] {
        match pos.get(id) {
            Some(&at) => last_before = Some(at),
            None => {
                flushed += 1;
                let from = last_before.map_or(0, |a| a + 1);
                assert!(
                    more[from..].iter().any(is_flush_of_all),
                    "event {id} was neither written nor flushed"
                );
            }
        }
    }
    assert!(flushed > 0, "the flush stood for some events");
    stood_for.extend(more.iter().flat_map(ids_in));
    let unique: BTreeSet<&String> = stood_for.iter().collect();
    assert_eq!(unique.len(), stood_for.len(), "nothing came twice");

    // The fast one saw each event once and only its opening flush.
    eventually(WAIT, "every event at the fast subscriber", || async {
        let counts = fast.counts();
        published.iter().all(|id| counts.get(id) == Some(&1))
    })
    .await;
    drop(slow);
    let fast_records = fast.stop().await;
    let flushes: Vec<_> = fast_records.iter().filter_map(flush_reason).collect();
    assert_eq!(flushes, ["subscribe"]);
    let fast_ids: Vec<String> = fast_records.iter().skip(1).map(|r| r.id.clone()).collect();
    assert_eq!(
        fast_ids, published,
        "nothing coalesced, nothing twice, in order"
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_only_delivery_holds_events_until_a_first_subscriber_connects() {
    let (c, _recv) = cluster("streams-first", 2, &["--delivery", "stream"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let early = publish_to(&c, 0, "products", "early").await;
    eventually(WAIT, "node 1 received it", || async {
        c.metric(1, "hearsay_events_delivered_total").await.unwrap() >= 1.0
    })
    .await;
    let addr = c.node(1).unwrap().ready.api;
    let s = Collector::start(addr, all_caches()).await;
    eventually(WAIT, "the early event", || async { s.count(&early) == 1 }).await;
    let records = s.stop().await;
    assert_eq!(flush_reason(&records[0]), Some("subscribe"));
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_mode_delivers_to_the_webhook_and_to_the_streams() {
    let (c, recv) = cluster("streams-both", 3, &["--delivery", "both"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let mut subs = Vec::new();
    for i in 0..3 {
        subs.push(Collector::start(c.node(i).unwrap().ready.api, all_caches()).await);
    }
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push((i, publish_to(&c, i, "products", &format!("both-{i}")).await));
    }
    eventually(
        WAIT,
        "every event at every other webhook and stream",
        || async {
            ids.iter().all(|(o, id)| {
                (0..3).all(|n| n == *o || (count(&recv[n], id) == 1 && subs[n].count(id) == 1))
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (n, r) in recv.iter().enumerate() {
        for (o, id) in &ids {
            let want = usize::from(n != *o);
            assert_eq!(count(r, id), want, "webhook {n}, event from {o}");
            assert_eq!(subs[n].count(id), want, "stream {n}, event from {o}");
        }
        let starts: Vec<_> = r
            .events()
            .into_iter()
            .filter(|e| e.kind == "dev.hearsay.flush")
            .map(|e| e.data["reason"].clone())
            .collect();
        assert_eq!(starts, ["sidecar_start"], "the webhook's flushes");
    }
    for s in subs {
        s.stop().await;
    }
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_without_streams_says_how_to_turn_them_on() {
    let (c, _recv) = cluster("streams-off", 1, &[]).await;
    let addr = c.node(0).unwrap().ready.api;
    let err = Subscriber::open(addr, &all_caches()).await.err().unwrap();
    let text = err.to_string();
    assert!(text.contains("--delivery stream"), "{text}");
    finish(c).await;
}

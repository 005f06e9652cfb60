//! `hearsay subscribe`: prints a running sidecar's events as they arrive,
//! one line each (the debugging tool for `kubectl exec`). It keeps the last
//! event id and, when the stream breaks, reconnects with it.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::client_cmds::ApiArgs;
use crate::client::ClientError;
use crate::subscriber::{StreamRecord, SubscribeOptions, Subscriber};

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only this cache's invalidations and flushes (repeat for more);
    /// flushes of every cache and config always pass
    #[arg(long = "cache")]
    pub caches: Vec<String>,
    /// Print each CloudEvent as one line of JSON
    #[arg(long)]
    pub json: bool,
    /// Resume right after this event instead of opening with a flush
    #[arg(long)]
    pub last_event_id: Option<String>,
    /// Stop after this many records (default: run until interrupted)
    #[arg(long)]
    pub count: Option<u64>,
}

pub async fn run(a: &SubscribeArgs) -> Result<(), ClientError> {
    let mut opts = SubscribeOptions {
        caches: a.caches.clone(),
        ndjson: true,
        last_event_id: a.last_event_id.clone(),
        token: a.api.api_token.clone(),
    };
    let mut printed = 0u64;
    let mut first = true;
    loop {
        let mut sub = match Subscriber::open(a.api.api_addr, &opts).await {
            Ok(s) => s,
            // The first attempt says why it failed; later ones retry.
            Err(e) if first => return Err(e),
            Err(e) => {
                eprintln!("hearsay subscribe: {e}; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        first = false;
        eprintln!(
            "hearsay subscribe: stream open at {} ({})",
            a.api.api_addr, sub.opened
        );
        while let Some(r) = sub.next().await {
            match r {
                Ok(rec) => {
                    print_record(&rec, a.json);
                    opts.last_event_id = Some(rec.id);
                    printed += 1;
                    if a.count.is_some_and(|n| printed >= n) {
                        return Ok(());
                    }
                }
                Err(e) => eprintln!("hearsay subscribe: {e}"),
            }
        }
        eprintln!("hearsay subscribe: the stream ended; reconnecting with the last id");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_record(r: &StreamRecord, json: bool) {
    let line = if json {
        r.event.to_string()
    } else {
        summary(r)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `invalidate products keys=[42]  id=…`, one line for a person.
fn summary(r: &StreamRecord) -> String {
    let d = &r.event["data"];
    let kind = r.kind.strip_prefix("dev.hearsay.").unwrap_or(&r.kind);
    let list = |f: &str| {
        d[f].as_array()
            .filter(|a| !a.is_empty())
            .map(|a| {
                let items: Vec<String> = a
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect();
                format!(" {f}=[{}]", items.join(","))
            })
            .unwrap_or_default()
    };
    let what = match kind {
        "invalidate" => format!(
            "{}{}{}{}{}{}",
            d["cache"].as_str().unwrap_or("?"),
            list("keys"),
            list("prefixes"),
            list("tags"),
            if d["all"] == true { " all" } else { "" },
            d["coalesced"]
                .as_array()
                .map(|c| format!(" (coalesced {})", c.len()))
                .unwrap_or_default(),
        ),
        "flush" => format!(
            "{} reason={}",
            d["cache"].as_str().unwrap_or("*"),
            d["reason"].as_str().unwrap_or("?")
        ),
        "config" => match d["value"].as_str() {
            Some(v) => format!("{}={v}", d["key"].as_str().unwrap_or("?")),
            None => format!("{} deleted", d["key"].as_str().unwrap_or("?")),
        },
        _ => String::new(),
    };
    let time = r.event["time"].as_str().unwrap_or_default();
    format!("{time} {kind} {what}  id={}", r.id)
}

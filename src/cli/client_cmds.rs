//! The client commands: `publish`, `config`, `peers`, `status`. Each talks
//! to the local API of a running sidecar.

use std::net::SocketAddr;

use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{ApiClient, ClientError, encode_key};
use crate::commands::{ConfigEntry, PeerInfo};

#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The sidecar's local API: host:port or http://host:port (as the demo
    /// prints it)
    #[arg(
        long,
        global = true,
        env = "HEARSAY_API_ADDR",
        default_value = "127.0.0.1:7070",
        value_parser = parse_api_addr
    )]
    pub api_addr: SocketAddr,
    /// Bearer token, if the API requires one
    #[arg(long, global = true, env = "HEARSAY_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

/// `127.0.0.1:7070`, `localhost:7070`, `http://127.0.0.1:46169/`.
pub fn parse_api_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let bare = s.trim();
    let bare = bare.strip_prefix("http://").unwrap_or(bare);
    let bare = bare.trim_end_matches('/');
    if bare.contains('/') || bare.starts_with("https://") {
        return Err(format!(
            "{s:?}: give host:port or http://host:port, no path"
        ));
    }
    let mut addrs = bare.to_socket_addrs().map_err(|e| format!("{s:?}: {e}"))?;
    // `localhost` may resolve to ::1 first; the API listens on 127.0.0.1.
    let all: Vec<SocketAddr> = addrs.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("{s:?}: no address"))
}

impl ApiArgs {
    fn client(&self) -> ApiClient {
        ApiClient::new(self.api_addr, self.api_token.clone())
    }
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The cache to invalidate in
    #[arg(long)]
    pub cache: String,
    /// A key to drop (repeat for more)
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Drop every key with this prefix (repeat for more)
    #[arg(long = "prefix")]
    pub prefixes: Vec<String>,
    /// Drop every entry with this tag (repeat for more)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Drop the whole cache
    #[arg(long)]
    pub all: bool,
    /// Wait up to this long (e.g. 3s, at most 60s) until every replica's app
    /// has it; exit 75 if some have not
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,
}

/// How a waited publish ended, for the exit code.
pub enum Waited {
    NotAsked,
    Confirmed,
    /// Replicas still pending, or one rejected it: the summary.
    Unconfirmed(String),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print one value, or all with their versions
    Get {
        key: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Set a value across the cluster (last writer wins)
    Set { key: String, value: String },
    /// Delete a value across the cluster
    Delete { key: String },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub async fn publish(a: &PublishArgs) -> Result<Waited, ClientError> {
    let body = serde_json::json!({
        "cache": a.cache,
        "keys": a.keys,
        "prefixes": a.prefixes,
        "tags": a.tags,
        "all": a.all,
    });
    let Some(wait) = a.wait else {
        let id = a.api.client().invalidate(&body).await?;
        println!("published {id}");
        return Ok(Waited::NotAsked);
    };
    let mut c = a.api.client();
    c.set_timeout(wait + std::time::Duration::from_secs(10));
    // Whole milliseconds, the API's form (humantime would say `1s 500ms`).
    let path = format!("/v1/invalidate?wait={}ms", wait.as_millis());
    let doc: serde_json::Value = c
        .json(Method::POST, &path, Some(body.to_string().into_bytes()))
        .await?;
    println!("published {}", doc["id"].as_str().unwrap_or("?"));
    Ok(summarize(&doc, wait))
}

/// `confirmed by 9/9 replicas in 3.1 ms`, or who is pending or rejected.
pub fn summarize(doc: &serde_json::Value, wait: std::time::Duration) -> Waited {
    let replicas = doc["replicas"].as_array().cloned().unwrap_or_default();
    let with = |state: &str| -> Vec<String> {
        replicas
            .iter()
            .filter(|r| r["state"] == state)
            .map(|r| r["name"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let settled = replicas
        .iter()
        .filter(|r| r["state"] == "acknowledged" || r["state"] == "flushed")
        .count();
    let elapsed = doc["elapsed_ms"].as_f64().unwrap_or(f64::NAN);
    let departed = with("departed");
    let gone = if departed.is_empty() {
        String::new()
    } else {
        format!(" ({} departed: {})", departed.len(), departed.join(", "))
    };
    if doc["confirmed"] == true {
        println!(
            "confirmed by {settled}/{} replicas in {elapsed} ms{gone}",
            replicas.len()
        );
        return Waited::Confirmed;
    }
    let (pending, rejected) = (with("pending"), with("rejected"));
    let mut line = format!(
        "not confirmed: {settled}/{} replicas after {elapsed} ms",
        replicas.len()
    );
    if !rejected.is_empty() {
        line.push_str(&format!("; rejected by {}", rejected.join(", ")));
    }
    if !pending.is_empty() {
        line.push_str(&format!(
            "; pending after the {} wait: {}",
            humantime::format_duration(wait),
            pending.join(", ")
        ));
    }
    line.push_str(&gone);
    println!("{line}");
    Waited::Unconfirmed(line)
}

pub async fn config(a: &ConfigArgs) -> Result<(), ClientError> {
    let c = a.api.client();
    match &a.action {
        ConfigAction::Get { key: None, json } => {
            let entries: Vec<ConfigEntry> = c.json(Method::GET, "/v1/config", None).await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).unwrap_or_default()
                );
            } else if entries.is_empty() {
                println!("(no config values)");
            } else {
                for e in entries {
                    println!(
                        "{} = {}    (version {}, written {})",
                        e.key, e.value, e.version, e.written_at
                    );
                }
            }
        }
        ConfigAction::Get { key: Some(k), json } => {
            let e: ConfigEntry = c
                .json(Method::GET, &format!("/v1/config/{}", encode_key(k)), None)
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
            } else {
                println!("{}", e.value);
            }
        }
        ConfigAction::Set { key, value } => {
            c.call(
                Method::PUT,
                &format!("/v1/config/{}", encode_key(key)),
                Some(value.clone().into_bytes()),
            )
            .await?;
            println!("set {key}");
        }
        ConfigAction::Delete { key } => {
            c.call(
                Method::DELETE,
                &format!("/v1/config/{}", encode_key(key)),
                None,
            )
            .await?;
            println!("deleted {key}");
        }
    }
    Ok(())
}

pub async fn peers(a: &ListArgs) -> Result<(), ClientError> {
    let peers: Vec<PeerInfo> = a.api.client().json(Method::GET, "/v1/peers", None).await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&peers).unwrap_or_default()
        );
        return Ok(());
    }
    if peers.is_empty() {
        println!("(no peers)");
        return Ok(());
    }
    println!(
        "{:<28} {:<24} {:<11} {:<8} LINK",
        "NAME", "ADDRESS", "STATE", "AUTH"
    );
    let failing = peers.iter().filter(|p| p.auth == "failing").count();
    for p in peers {
        println!(
            "{:<28} {:<24} {:<11} {:<8} {}",
            p.name,
            p.address,
            p.state,
            p.auth,
            p.link.as_deref().unwrap_or("-")
        );
    }
    if failing > 0 {
        println!(
            "hint: {failing} peer(s) failed authentication in the last minute: check that every pod mounts the same gossip key (hearsay_auth_failures_total counts the frames)"
        );
    }
    Ok(())
}

pub async fn status(a: &ListArgs) -> Result<(), ClientError> {
    let v: serde_json::Value = a.api.client().json(Method::GET, "/v1/status", None).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if let Some(map) = v.as_object() {
        for (k, v) in map {
            match v.as_object() {
                // One level down, dotted: webhook.state, webhook.last_error.
                Some(inner) => {
                    for (k2, v2) in inner {
                        let v2 = v2.as_str().map_or_else(|| v2.to_string(), str::to_owned);
                        println!("{:<19} {v2}", format!("{k}.{k2}"));
                    }
                }
                None => println!("{k:<19} {v}"),
            }
        }
    }
    Ok(())
}

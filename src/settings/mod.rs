//! `hearsay run`'s settings: declared once in [`declared`], given by a
//! flag, else the environment (`HEARSAY_*`), else an optional file, else
//! the default, and validated before anything starts. Every bad value is a
//! [`SettingError`] naming the setting as it was given; all of them are
//! reported together ([`SettingErrors`]) and `main` exits 64.
//!
//! The environment is passed in as a lookup function, so tests never touch
//! the process environment.

mod args;
pub mod declared;
mod file;
mod layers;
pub mod print;
mod sources;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use args::RunArgs;
use declared::*;
pub use file::FileValues;
use layers::Layers;
pub use layers::{Resolved, Source};
use sources::{resolve_k8s, resolve_keys};
pub use values::{DiscoveryMode, HumanDuration, K8sSettings, K8sSource, KeySource, LogFormat};

use crate::delivery::queue::AppQueueConfig;
use crate::gossip::NodeConfig;
use crate::gossip::ratelimit::RateSpec;
/// A setting that cannot be used, and why.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid setting {setting}: {reason}")]
pub struct SettingError {
    /// The flag, environment variable or file key at fault.
    pub setting: String,
    pub reason: String,
}

/// Every setting that cannot be used (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingErrors(pub Vec<SettingError>);

impl SettingErrors {
    /// The names at fault, in the order found.
    pub fn settings(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.setting.as_str()).collect()
    }
}

impl fmt::Display for SettingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [one] = self.0.as_slice() {
            return write!(f, "{one}");
        }
        write!(f, "{} invalid settings:", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingErrors {}

/// Everything `hearsay run` needs, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub node_name: String,
    pub gossip_addr: SocketAddr,
    pub advertise_addr: Option<SocketAddr>,
    pub api_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub webhook_url: hyper::Uri,
    pub webhook_probe_path: Option<String>,
    pub webhook_timeout: Duration,
    pub webhook_retry_budget: Duration,
    pub discovery: DiscoveryMode,
    pub k8s: Option<K8sSettings>,
    pub peers: Vec<String>,
    pub peers_file: Option<PathBuf>,
    pub keys: KeySource,
    pub api_token: Option<String>,
    pub log_format: LogFormat,
    pub allow_unknown_peers: bool,
    pub shutdown_grace: Duration,
    pub max_frame_bytes: usize,
    pub ready_file: Option<PathBuf>,
    /// Flush the app once at start (it may have missed events while this
    /// sidecar was down).
    pub flush_on_start: bool,
    /// Frames sent longer ago than this (by the sender's clock) are refused.
    pub replay_window: Duration,
    pub max_gossip_connections: usize,
    pub fault_drop_frames: f64,
    pub fault_block_file: Option<PathBuf>,
    pub node: NodeConfig,
    pub app_queue: AppQueueConfig,
    /// What each setting resolved to and from where (`--print-settings`).
    pub resolved: BTreeMap<&'static str, Resolved>,
    /// Deprecated file keys that were used; logged at start.
    pub warnings: Vec<String>,
}

/// The shortest key accepted: HMAC-SHA256 wants at least 16 random bytes.
pub const MIN_KEY_LEN: usize = 16;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The listeners and identity.
struct Network {
    node_name: String,
    gossip_addr: SocketAddr,
    advertise_addr: Option<SocketAddr>,
    api_addr: SocketAddr,
    metrics_addr: SocketAddr,
}

impl Settings {
    /// Resolves the settings from flags, `env` and the settings file,
    /// reporting every bad one.
    pub fn resolve(args: &RunArgs, env: Env<'_>) -> Result<Settings, SettingErrors> {
        let config = args
            .flags
            .get(CONFIG.name)
            .cloned()
            .or_else(|| env(&CONFIG.env()).filter(|v| !v.is_empty()));
        let file = match &config {
            Some(p) => FileValues::load(std::path::Path::new(p)),
            None => FileValues::default(),
        };
        let mut l = Layers::gather(&args.flags, env, file);
        l.path(&CONFIG);
        let net = network(&mut l, env);
        let (webhook_url, webhook_probe_path) = webhook(&mut l);
        let discovery = match l.choice(&DISCOVERY).as_deref() {
            Some("kubernetes") => DiscoveryMode::Kubernetes,
            _ => DiscoveryMode::Static,
        };
        let k8s = match discovery {
            DiscoveryMode::Static => {
                // Read (and checked) only so that --print-settings shows them.
                for s in [
                    &K8S_MODE,
                    &K8S_SERVICE,
                    &K8S_SELECTOR,
                    &K8S_NAMESPACE,
                    &K8S_GOSSIP_PORT_NAME,
                ] {
                    l.text(s);
                }
                None
            }
            DiscoveryMode::Kubernetes => resolve_k8s(&mut l, env),
        };
        if discovery == DiscoveryMode::Kubernetes && net.advertise_addr.is_none() {
            l.fail(
                ADVERTISE_ADDR.flag(),
                "Kubernetes discovery needs this pod's IP: set POD_IP from the downward API (or --advertise-addr)",
            );
        }
        let peers = l.list(&PEERS, validate_host_port);
        let peers_file = l.path(&PEERS_FILE);
        let insecure = l.bool(&INSECURE);
        let keys = resolve_keys(&mut l, insecure);
        let api_token = l.text(&API_TOKEN).filter(|t| !t.is_empty());
        let log_format = match l.choice(&LOG_FORMAT).as_deref() {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let allow_unknown_peers = l.bool(&ALLOW_UNKNOWN_PEERS);
        let webhook_timeout = l.duration(&WEBHOOK_TIMEOUT).unwrap_or_default();
        let webhook_retry_budget = l.duration(&WEBHOOK_RETRY_BUDGET).unwrap_or_default();
        let shutdown_grace = l.duration(&SHUTDOWN_GRACE).unwrap_or_default();
        let max_frame_bytes = l.count_usize(&MAX_FRAME_BYTES).unwrap_or(1 << 20);
        let ready_file = l.path(&READY_FILE);
        let flush_on_start = l.bool(&FLUSH_ON_START);
        let replay_window = l.duration(&REPLAY_WINDOW).unwrap_or_default();
        let max_gossip_connections = l.count_usize(&MAX_GOSSIP_CONNECTIONS).unwrap_or(1);
        let fault_drop_frames = l.ratio(&FAULT_DROP_FRAMES).unwrap_or(0.0);
        let fault_block_file = l.path(&FAULT_BLOCK_FILE);
        let node = node_config(&mut l, max_frame_bytes);
        let app_queue = app_queue(&mut l);
        if !l.errors.is_empty() {
            return Err(SettingErrors(l.errors));
        }
        Ok(Settings {
            node_name: net.node_name,
            gossip_addr: net.gossip_addr,
            advertise_addr: net.advertise_addr,
            api_addr: net.api_addr,
            metrics_addr: net.metrics_addr,
            webhook_url: webhook_url.expect("checked: no errors"),
            webhook_probe_path,
            webhook_timeout,
            webhook_retry_budget,
            discovery,
            k8s,
            peers,
            peers_file,
            keys: keys.expect("checked: no errors"),
            api_token,
            log_format,
            allow_unknown_peers,
            shutdown_grace,
            max_frame_bytes,
            ready_file,
            flush_on_start,
            replay_window,
            max_gossip_connections,
            fault_drop_frames,
            fault_block_file,
            node,
            app_queue,
            resolved: l.resolved,
            warnings: l.warnings,
        })
    }
}

fn network(l: &mut Layers, env: Env<'_>) -> Network {
    let any: SocketAddr = "0.0.0.0:0".parse().expect("literal");
    let node_name = match l.text(&NODE_NAME).filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => {
            let (name, source) = match env("POD_NAME").filter(|n| !n.is_empty()) {
                Some(n) => (n, Source::Env),
                None => (
                    env("HOSTNAME")
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(read_hostname),
                    Source::Default,
                ),
            };
            l.record(&NODE_NAME, Some(name.clone()), source);
            name
        }
    };
    let gossip_addr = l.addr(&GOSSIP_ADDR).unwrap_or(any);
    let advertise_addr = match l.addr(&ADVERTISE_ADDR) {
        Some(a) => Some(a),
        None => {
            let derived = pod_ip_advertise(l, env, gossip_addr);
            l.record(
                &ADVERTISE_ADDR,
                derived.map(|a| a.to_string()),
                Source::Default,
            );
            derived
        }
    };
    Network {
        node_name,
        gossip_addr,
        advertise_addr,
        api_addr: l.addr(&API_ADDR).unwrap_or(any),
        metrics_addr: l.addr(&METRICS_ADDR).unwrap_or(any),
    }
}

fn webhook(l: &mut Layers) -> (Option<hyper::Uri>, Option<String>) {
    let url = l.text(&WEBHOOK_URL).unwrap_or_default();
    let url = match parse_webhook_url(&url) {
        Ok(u) => Some(u),
        Err(reason) => {
            let who = l.blame(&WEBHOOK_URL);
            l.fail(who, reason);
            None
        }
    };
    let probe = l.text(&WEBHOOK_PROBE_PATH).filter(|p| !p.is_empty());
    if let Some(p) = &probe
        && !p.starts_with('/')
    {
        let who = l.blame(&WEBHOOK_PROBE_PATH);
        l.fail(who, format!("{p:?} must start with /"));
    }
    (url, probe)
}

/// A token bucket of `rate` per second whose burst is a quarter second,
/// but at least one whole frame.
fn bytes_rate(rate: u32, max_frame_bytes: usize) -> Option<RateSpec> {
    let frame = u32::try_from(max_frame_bytes).unwrap_or(u32::MAX);
    RateSpec::new(rate, (rate / 4).max(frame))
}

fn node_config(l: &mut Layers, max_frame_bytes: usize) -> NodeConfig {
    let mut node = NodeConfig {
        deliver_own: l.bool(&DELIVER_OWN),
        ..NodeConfig::default()
    };
    if let Some(n) = l.count_u32(&INBOUND_FRAMES_PER_SECOND) {
        node.inbound_frames_per_peer = RateSpec::new(n, n.div_ceil(5).max(1));
    }
    if let Some(b) = l.count_u32(&INBOUND_BYTES_PER_SECOND) {
        node.inbound_bytes_per_peer = bytes_rate(b, max_frame_bytes);
    }
    node.outbound_bytes = l
        .count_u32(&OUTBOUND_BYTES_PER_SECOND)
        .and_then(|b| bytes_rate(b, max_frame_bytes));
    let rate = l.count_u32(&PUBLISH_RATE).unwrap_or(1);
    let burst = match l.count_u32(&PUBLISH_BURST) {
        Some(b) => b,
        None => {
            let b = rate.div_ceil(5).max(1);
            l.record(&PUBLISH_BURST, Some(b.to_string()), Source::Default);
            b
        }
    };
    node.publish_rate = RateSpec::new(rate, burst);
    if let Some(n) = l.count_usize(&DIRECT_PUSH_MAX_PEERS) {
        node.direct_push_max_peers = n;
    }
    if let Some(d) = l.duration(&ANTI_ENTROPY_INTERVAL) {
        node.anti_entropy_interval = d;
    }
    if let Some(d) = l.duration(&RETENTION) {
        node.retention = d;
    }
    node.gap_flush_after = match l.duration(&GAP_FLUSH_AFTER) {
        Some(d) => d,
        None => {
            let text = humantime::format_duration(node.retention).to_string();
            l.record(&GAP_FLUSH_AFTER, Some(text), Source::Default);
            node.retention
        }
    };
    if let Some(n) = l.count_usize(&RETENTION_BYTES) {
        node.retention_bytes = n;
    }
    limits(l, &mut node, max_frame_bytes);
    for e in node.problems() {
        let who = declared::find(e.setting).map_or(e.setting.to_owned(), |s| l.blame(s));
        l.fail(who, e.reason);
    }
    node
}

fn limits(l: &mut Layers, node: &mut NodeConfig, max_frame_bytes: usize) {
    let limits = &mut node.limits;
    for (s, field) in [
        (&MAX_KEY_LEN, &mut limits.max_key_len),
        (&MAX_KEYS_PER_EVENT, &mut limits.max_keys_per_event),
        (&MAX_EVENT_BYTES, &mut limits.max_event_bytes),
        (&MAX_CONFIG_VALUE_BYTES, &mut limits.max_config_value_bytes),
        (&MAX_CONFIG_KEYS, &mut limits.max_config_keys),
    ] {
        if let Some(n) = l.count_usize(s) {
            *field = n;
        }
    }
    if limits.max_event_bytes + 1024 > max_frame_bytes {
        let who = l.blame(&MAX_EVENT_BYTES);
        l.fail(
            who,
            format!("must leave room in a frame ({max_frame_bytes} bytes)"),
        );
    }
}

fn app_queue(l: &mut Layers) -> AppQueueConfig {
    let mut q = AppQueueConfig::default();
    if let Some(n) = l.count_usize(&WEBHOOK_MAX_BATCH) {
        q.max_batch = n;
    }
    if let Some(n) = l.count_usize(&DELIVERY_QUEUE_MAX) {
        q.max_pending = n;
    }
    if let Some(n) = l.count_u32(&WEBHOOK_REQUESTS_PER_SECOND) {
        q.requests = RateSpec::new(n, n.div_ceil(4).max(1));
    }
    q
}

fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "hearsay".to_owned())
}

/// The address peers know this node by when none is given: the gossip
/// address if it names an IP, else in a pod `POD_IP` (downward API) with
/// the gossip port. A port of 0 is filled in once the listener is bound.
fn pod_ip_advertise(l: &mut Layers, env: Env<'_>, gossip: SocketAddr) -> Option<SocketAddr> {
    if !gossip.ip().is_unspecified() {
        return Some(gossip);
    }
    let ip = env("POD_IP").filter(|v| !v.is_empty())?;
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => Some(SocketAddr::new(ip, gossip.port())),
        Err(e) => {
            l.fail("POD_IP", format!("{ip:?}: {e}"));
            None
        }
    }
}

/// `host:port`, with a port, the host a name or an IP (IPv6 in brackets).
pub fn validate_host_port(p: &str) -> Result<(), String> {
    if p.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = p.rsplit_once(':') else {
        return Err(format!("{p:?} is not host:port"));
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!("{p:?} has no valid host"));
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| format!("{p:?} has no valid port"))
}

fn parse_webhook_url(s: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{s:?}: only http:// is supported (the app is on localhost)"
        ));
    }
    if uri.host().is_none() {
        return Err(format!("{s:?} has no host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;

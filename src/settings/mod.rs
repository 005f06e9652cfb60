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
mod sections;
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
pub use sections::validate_host_port;
use sections::{app_queue, discovery, network, node_config, streams, webhook};
use sources::resolve_keys;
pub use values::{
    DeliveryMode, DiscoveryMode, HumanDuration, K8sSettings, K8sSource, KeySource, LogFormat,
};

use crate::delivery::queue::AppQueueConfig;
use crate::delivery::stream::StreamConfig;
use crate::gossip::NodeConfig;
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
    pub delivery: DeliveryMode,
    pub streams: StreamConfig,
    /// Stream-only delivery: how long events may find no subscriber.
    pub stream_wait: Duration,
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
    /// Publishers waiting for confirmations at once.
    pub max_confirm_waits: usize,
    /// A gossip connection whose peer leaves data unacknowledged (or an
    /// idle connection's keepalives unanswered) this long is given up.
    pub peer_timeout: Duration,
    pub fault_drop_frames: f64,
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
        let (discovery, k8s) = discovery(&mut l, env, net.advertise_addr.is_some());
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
        let max_confirm_waits = l.count_usize(&MAX_CONFIRM_WAITS).unwrap_or(1);
        let peer_timeout = l.duration(&PEER_TIMEOUT).unwrap_or_default();
        let fault_drop_frames = l.ratio(&FAULT_DROP_FRAMES).unwrap_or(0.0);
        let node = node_config(&mut l, max_frame_bytes);
        let app_queue = app_queue(&mut l);
        let (delivery, streams, stream_wait) = streams(&mut l, &node, &app_queue);
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
            delivery,
            streams,
            stream_wait,
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
            max_confirm_waits,
            peer_timeout,
            fault_drop_frames,
            node,
            app_queue,
            resolved: l.resolved,
            warnings: l.warnings,
        })
    }
}

#[cfg(test)]
mod tests;

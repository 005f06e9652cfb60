//! `hearsay run`'s settings: one typed struct, resolved from flags, then the
//! environment (`HEARSAY_*`), then an optional file, then defaults, and
//! validated before anything starts. A bad value is a [`SettingError`] that
//! names the setting; `main` turns it into exit code 64.
//!
//! The environment is passed in as a lookup function, so tests never touch
//! the process environment.

mod args;
mod file;
mod sources;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

pub use args::RunArgs;
pub use file::FileSettings;
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
}

/// The shortest key accepted: HMAC-SHA256 wants at least 16 random bytes.
pub const MIN_KEY_LEN: usize = 16;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_value<T: FromStr>(env: Env<'_>, name: &str) -> Result<Option<T>, SettingError>
where
    T::Err: fmt::Display,
{
    match env(name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e| SettingError {
            setting: name.to_owned(),
            reason: format!("{v:?}: {e}"),
        }),
    }
}

fn file_value<T: FromStr>(value: Option<&String>, key: &str) -> Result<Option<T>, SettingError>
where
    T::Err: fmt::Display,
{
    match value {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e| SettingError {
            setting: format!("{key} (settings file)"),
            reason: format!("{v:?}: {e}"),
        }),
    }
}

fn bad(setting: &str, reason: impl Into<String>) -> SettingError {
    SettingError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// Picks flag, then environment, then file, then default, for one setting.
macro_rules! pick {
    ($args:expr, $env:expr, $file:expr, $field:ident, $var:literal, $default:expr) => {
        match $args.$field.clone() {
            Some(v) => v,
            None => match env_value($env, $var)? {
                Some(v) => v,
                None => match file_value($file.$field.as_ref(), stringify!($field))? {
                    Some(v) => v,
                    None => $default,
                },
            },
        }
    };
}

impl Settings {
    /// Resolves the settings from flags, `env` and the settings file.
    pub fn resolve(args: &RunArgs, env: Env<'_>) -> Result<Settings, SettingError> {
        let config_path = args.config.clone().or_else(|| {
            env("HEARSAY_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let file = match &config_path {
            Some(p) => FileSettings::load(p)?,
            None => FileSettings::default(),
        };
        let dur = |d: Option<u64>| d.map(|ms| HumanDuration(Duration::from_millis(ms)).to_string());
        // Durations in the file are written as milliseconds.
        let file_durations = FileDurations {
            webhook_timeout: dur(file.webhook_timeout_ms),
            webhook_retry_budget: dur(file.webhook_retry_budget_ms),
            shutdown_grace: dur(file.shutdown_grace_ms),
            anti_entropy_interval: dur(file.anti_entropy_interval_ms),
            retention: dur(file.retention_ms),
            gap_flush_after: dur(file.gap_flush_after_ms),
        };

        let node_name = match args.node_name.clone() {
            Some(n) => n,
            None => env("HEARSAY_NODE_NAME")
                .or_else(|| env("POD_NAME"))
                .or_else(|| file.node_name.clone())
                .or_else(|| env("HOSTNAME"))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(read_hostname),
        };
        let gossip_addr: SocketAddr = pick!(
            args,
            env,
            file,
            gossip_addr,
            "HEARSAY_GOSSIP_ADDR",
            "0.0.0.0:7946".parse().expect("literal")
        );
        let advertise_addr: Option<SocketAddr> = match args.advertise_addr {
            Some(a) => Some(a),
            None => match env_value(env, "HEARSAY_ADVERTISE_ADDR")? {
                Some(a) => Some(a),
                None => match file_value(file.advertise_addr.as_ref(), "advertise_addr")? {
                    Some(a) => Some(a),
                    None => pod_ip_advertise(env, gossip_addr)?,
                },
            },
        };
        let api_addr: SocketAddr = pick!(
            args,
            env,
            file,
            api_addr,
            "HEARSAY_API_ADDR",
            "127.0.0.1:7070".parse().expect("literal")
        );
        let metrics_addr: SocketAddr = pick!(
            args,
            env,
            file,
            metrics_addr,
            "HEARSAY_METRICS_ADDR",
            "0.0.0.0:9464".parse().expect("literal")
        );
        let webhook_url: String = pick!(
            args,
            env,
            file,
            webhook_url,
            "HEARSAY_WEBHOOK_URL",
            "http://127.0.0.1:8080/hearsay".to_owned()
        );
        let webhook_url = parse_webhook_url(&webhook_url)?;
        let webhook_probe_path: Option<String> = match args.webhook_probe_path.clone() {
            Some(p) => Some(p),
            None => env("HEARSAY_WEBHOOK_PROBE_PATH")
                .filter(|p| !p.is_empty())
                .or_else(|| file.webhook_probe_path.clone()),
        };
        if let Some(p) = &webhook_probe_path
            && !p.starts_with('/')
        {
            return Err(bad(
                "--webhook-probe-path",
                format!("{p:?} must start with /"),
            ));
        }
        let webhook_timeout: HumanDuration = pick!(
            args,
            env,
            file_durations,
            webhook_timeout,
            "HEARSAY_WEBHOOK_TIMEOUT",
            HumanDuration(Duration::from_secs(5))
        );
        let webhook_retry_budget: HumanDuration = pick!(
            args,
            env,
            file_durations,
            webhook_retry_budget,
            "HEARSAY_WEBHOOK_RETRY_BUDGET",
            HumanDuration(Duration::from_secs(60))
        );
        let discovery: DiscoveryMode = pick!(
            args,
            env,
            file,
            discovery,
            "HEARSAY_DISCOVERY",
            DiscoveryMode::Static
        );
        let k8s = match discovery {
            DiscoveryMode::Static => None,
            DiscoveryMode::Kubernetes => Some(resolve_k8s(args, env, &file)?),
        };
        if discovery == DiscoveryMode::Kubernetes && advertise_addr.is_none() {
            return Err(bad(
                "--advertise-addr",
                "Kubernetes discovery needs this pod's IP: set POD_IP from the downward API (or --advertise-addr)",
            ));
        }
        let peers: Vec<String> = match &args.peers {
            Some(p) => split_list(p),
            None => match env("HEARSAY_PEERS").filter(|v| !v.is_empty()) {
                Some(p) => split_list(&p),
                None => file.peers.clone().unwrap_or_default(),
            },
        };
        for p in &peers {
            validate_host_port(p).map_err(|r| bad("--peers / HEARSAY_PEERS", r))?;
        }
        let peers_file: Option<PathBuf> = match args.peers_file.clone() {
            Some(p) => Some(p),
            None => env("HEARSAY_PEERS_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| file.peers_file.clone().map(PathBuf::from)),
        };
        let insecure = args.insecure
            || env_value::<bool>(env, "HEARSAY_INSECURE")?.unwrap_or(false)
            || file.insecure.unwrap_or(false);
        let keys = resolve_keys(args, env, &file, insecure)?;
        let api_token = args
            .api_token
            .clone()
            .or_else(|| env("HEARSAY_API_TOKEN"))
            .or_else(|| file.api_token.clone())
            .filter(|t| !t.is_empty());
        let log_format: LogFormat = pick!(
            args,
            env,
            file,
            log_format,
            "HEARSAY_LOG_FORMAT",
            LogFormat::Text
        );
        let deliver_own = args.deliver_own
            || env_value::<bool>(env, "HEARSAY_DELIVER_OWN")?.unwrap_or(false)
            || file.deliver_own.unwrap_or(false);
        let allow_unknown_peers = args.allow_unknown_peers
            || env_value::<bool>(env, "HEARSAY_ALLOW_UNKNOWN_PEERS")?.unwrap_or(false)
            || file.allow_unknown_peers.unwrap_or(false);
        let shutdown_grace: HumanDuration = pick!(
            args,
            env,
            file_durations,
            shutdown_grace,
            "HEARSAY_SHUTDOWN_GRACE",
            HumanDuration(Duration::from_secs(10))
        );
        let max_frame_bytes: usize = pick_number(
            args.max_frame_bytes,
            env,
            "HEARSAY_MAX_FRAME_BYTES",
            file.max_frame_bytes,
            crate::gossip::codec::DEFAULT_MAX_FRAME,
        )?;
        if !(64 * 1024..=64 * 1024 * 1024).contains(&max_frame_bytes) {
            return Err(bad(
                "--max-frame-bytes",
                "must be between 64 KiB and 64 MiB",
            ));
        }
        let ready_file = args.ready_file.clone().or_else(|| {
            env("HEARSAY_READY_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });

        let flush_on_start = match args.flush_on_start {
            Some(v) => v,
            None => env_value::<bool>(env, "HEARSAY_FLUSH_ON_START")?
                .or(file.flush_on_start)
                .unwrap_or(true),
        };
        let replay_window = Duration::from_millis(file.replay_window_ms.unwrap_or(300_000));
        if replay_window < Duration::from_secs(10) {
            return Err(bad(
                "replay_window_ms",
                "must be at least 10000 (clock skew between nodes)",
            ));
        }
        let max_gossip_connections = file.max_gossip_connections.unwrap_or(4096);
        if max_gossip_connections == 0 {
            return Err(bad("max_gossip_connections", "must be at least 1"));
        }
        let fault_drop_frames = match args.fault_drop_frames {
            Some(v) => v,
            None => env_value::<f64>(env, "HEARSAY_FAULT_DROP_FRAMES")?.unwrap_or(0.0),
        };
        if !(0.0..1.0).contains(&fault_drop_frames) {
            return Err(bad(
                "--fault-drop-frames",
                "must be from 0 up to (not including) 1",
            ));
        }
        let fault_block_file = args.fault_block_file.clone().or_else(|| {
            env("HEARSAY_FAULT_BLOCK_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });

        let mut node = NodeConfig {
            deliver_own,
            ..NodeConfig::default()
        };
        let inbound_frames: u32 = pick_number(
            args.inbound_frames_per_second,
            env,
            "HEARSAY_INBOUND_FRAMES_PER_SECOND",
            file.inbound_frames_per_second,
            50_000,
        )?;
        node.inbound_frames_per_peer =
            RateSpec::new(inbound_frames, inbound_frames.div_ceil(5).max(1));
        if node.inbound_frames_per_peer.is_none() {
            return Err(bad("--inbound-frames-per-second", "must be at least 1"));
        }
        if let Some(b) = file.inbound_bytes_per_second {
            node.inbound_bytes_per_peer = RateSpec::new(b, b.max(max_frame_bytes as u32));
            if node.inbound_bytes_per_peer.is_none() {
                return Err(bad("inbound_bytes_per_second", "must be at least 1"));
            }
        }
        let publish_rate: u32 = pick_number(
            args.publish_rate,
            env,
            "HEARSAY_PUBLISH_RATE",
            file.publish_rate,
            50_000,
        )?;
        let publish_burst = file
            .publish_burst
            .unwrap_or(publish_rate.div_ceil(5).max(1));
        node.publish_rate = RateSpec::new(publish_rate, publish_burst);
        if node.publish_rate.is_none() {
            return Err(bad("--publish-rate", "must be at least 1"));
        }
        node.direct_push_max_peers = pick_number(
            args.direct_push_max_peers,
            env,
            "HEARSAY_DIRECT_PUSH_MAX_PEERS",
            file.direct_push_max_peers,
            node.direct_push_max_peers,
        )?;
        node.anti_entropy_interval = pick!(
            args,
            env,
            file_durations,
            anti_entropy_interval,
            "HEARSAY_ANTI_ENTROPY_INTERVAL",
            HumanDuration(node.anti_entropy_interval)
        )
        .0;
        node.retention = pick!(
            args,
            env,
            file_durations,
            retention,
            "HEARSAY_RETENTION",
            HumanDuration(node.retention)
        )
        .0;
        node.gap_flush_after = pick!(
            args,
            env,
            file_durations,
            gap_flush_after,
            "HEARSAY_GAP_FLUSH_AFTER",
            HumanDuration(node.retention)
        )
        .0;
        if let Some(b) = file.retention_bytes {
            node.retention_bytes = b;
        }
        let limits = &mut node.limits;
        if let Some(v) = file.max_key_len {
            limits.max_key_len = v;
        }
        if let Some(v) = file.max_keys_per_event {
            limits.max_keys_per_event = v;
        }
        if let Some(v) = file.max_event_bytes {
            limits.max_event_bytes = v;
        }
        if let Some(v) = file.max_config_value_bytes {
            limits.max_config_value_bytes = v;
        }
        if let Some(v) = file.max_config_keys {
            limits.max_config_keys = v;
        }
        if node.limits.max_event_bytes + 1024 > max_frame_bytes {
            return Err(bad(
                "max_event_bytes",
                format!("must leave room in a frame ({max_frame_bytes} bytes)"),
            ));
        }
        node.validate().map_err(|e| bad(e.setting, e.reason))?;

        let mut app_queue = AppQueueConfig::default();
        if let Some(v) = file.webhook_max_batch {
            app_queue.max_batch = v;
        }
        if let Some(v) = file.delivery_queue_max {
            app_queue.max_pending = v;
        }
        if let Some(v) = file.webhook_requests_per_second {
            app_queue.requests = RateSpec::new(v, v.div_ceil(4).max(1));
        }
        if app_queue.max_batch == 0 || app_queue.max_pending == 0 {
            return Err(bad(
                "webhook_max_batch / delivery_queue_max",
                "must be at least 1",
            ));
        }

        Ok(Settings {
            node_name,
            gossip_addr,
            advertise_addr,
            api_addr,
            metrics_addr,
            webhook_url,
            webhook_probe_path,
            webhook_timeout: webhook_timeout.0,
            webhook_retry_budget: webhook_retry_budget.0,
            discovery,
            k8s,
            peers,
            peers_file,
            keys,
            api_token,
            log_format,
            allow_unknown_peers,
            shutdown_grace: shutdown_grace.0,
            max_frame_bytes,
            ready_file,
            flush_on_start,
            replay_window,
            max_gossip_connections,
            fault_drop_frames,
            fault_block_file,
            node,
            app_queue,
        })
    }
}

/// File durations, already rendered as strings so `pick!` parses them like
/// any other source.
struct FileDurations {
    webhook_timeout: Option<String>,
    webhook_retry_budget: Option<String>,
    shutdown_grace: Option<String>,
    anti_entropy_interval: Option<String>,
    retention: Option<String>,
    gap_flush_after: Option<String>,
}

fn pick_number<T: FromStr + Copy>(
    flag: Option<T>,
    env: Env<'_>,
    var: &str,
    file: Option<T>,
    default: T,
) -> Result<T, SettingError>
where
    T::Err: fmt::Display,
{
    Ok(match flag {
        Some(v) => v,
        None => env_value(env, var)?.or(file).unwrap_or(default),
    })
}

fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "hearsay".to_owned())
}

/// The address peers know this node by when none is given: the gossip
/// address if it names an IP, else in a pod `POD_IP` (downward API) with
/// the gossip port. A port of 0 is filled in once the listener is bound.
fn pod_ip_advertise(env: Env<'_>, gossip: SocketAddr) -> Result<Option<SocketAddr>, SettingError> {
    if !gossip.ip().is_unspecified() {
        return Ok(Some(gossip));
    }
    Ok(env_value::<std::net::IpAddr>(env, "POD_IP")?.map(|ip| SocketAddr::new(ip, gossip.port())))
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
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

fn parse_webhook_url(s: &str) -> Result<hyper::Uri, SettingError> {
    let uri: hyper::Uri = s
        .parse()
        .map_err(|e| bad("--webhook-url", format!("{s:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "--webhook-url",
            format!("{s:?}: only http:// is supported (the app is on localhost)"),
        ));
    }
    if uri.host().is_none() {
        return Err(bad("--webhook-url", format!("{s:?} has no host")));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;

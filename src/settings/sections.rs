//! The settings of one area each (network, webhook, discovery, the core's
//! limits, the app queue), read from the layers and checked.

use std::net::SocketAddr;
use std::time::Duration;

use super::Env;
use super::declared::{self, *};
use super::layers::{Layers, Source};
use super::sources::resolve_k8s;
use super::values::{DeliveryMode, DiscoveryMode, K8sSettings};
use crate::delivery::queue::AppQueueConfig;
use crate::delivery::stream::StreamConfig;
use crate::gossip::NodeConfig;
use crate::gossip::ratelimit::RateSpec;

/// The listeners and identity.
pub(super) struct Network {
    pub(super) node_name: String,
    pub(super) gossip_addr: SocketAddr,
    pub(super) advertise_addr: Option<SocketAddr>,
    pub(super) api_addr: SocketAddr,
    pub(super) metrics_addr: SocketAddr,
}

/// The discovery mode and, for Kubernetes, its settings (which need this
/// pod's IP as the advertised address).
pub(super) fn discovery(
    l: &mut Layers,
    env: Env<'_>,
    advertised: bool,
) -> (DiscoveryMode, Option<K8sSettings>) {
    let mode = match l.choice(&DISCOVERY).as_deref() {
        Some("kubernetes") => DiscoveryMode::Kubernetes,
        _ => DiscoveryMode::Static,
    };
    if mode == DiscoveryMode::Static {
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
        return (mode, None);
    }
    let k8s = resolve_k8s(l, env);
    if !advertised {
        l.fail(
            ADVERTISE_ADDR.flag(),
            "Kubernetes discovery needs this pod's IP: set POD_IP from the downward API (or --advertise-addr)",
        );
    }
    (mode, k8s)
}

pub(super) fn network(l: &mut Layers, env: Env<'_>) -> Network {
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

pub(super) fn webhook(l: &mut Layers) -> (Option<hyper::Uri>, Option<String>) {
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
pub(super) fn bytes_rate(rate: u32, max_frame_bytes: usize) -> Option<RateSpec> {
    let frame = u32::try_from(max_frame_bytes).unwrap_or(u32::MAX);
    RateSpec::new(rate, (rate / 4).max(frame))
}

pub(super) fn node_config(l: &mut Layers, max_frame_bytes: usize) -> NodeConfig {
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
    if let Some(n) = l.count_usize(&MAX_TRACKED) {
        node.max_tracked = n;
    }
    if let Some(d) = l.duration(&CONFIRM_RETRY) {
        node.confirm_retry = d;
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

pub(super) fn limits(l: &mut Layers, node: &mut NodeConfig, max_frame_bytes: usize) {
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

pub(super) fn app_queue(l: &mut Layers) -> AppQueueConfig {
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

/// How the app receives events, and the streams' settings.
pub(super) fn streams(
    l: &mut Layers,
    node: &NodeConfig,
    queue: &AppQueueConfig,
) -> (DeliveryMode, StreamConfig, Duration) {
    let delivery = match l.choice(&DELIVERY).as_deref() {
        Some("stream") => DeliveryMode::Stream,
        Some("both") => DeliveryMode::Both,
        _ => DeliveryMode::Webhook,
    };
    let log_age = match l.duration(&STREAM_LOG) {
        Some(d) => d,
        None => {
            let text = humantime::format_duration(node.retention).to_string();
            l.record(&STREAM_LOG, Some(text), Source::Default);
            node.retention
        }
    };
    let cfg = StreamConfig {
        buffer: l.count_usize(&STREAM_BUFFER).unwrap_or(1000),
        log_age,
        log_entries: l.count_usize(&STREAM_LOG_ENTRIES).unwrap_or(10_000),
        keepalive: l
            .duration(&STREAM_KEEPALIVE)
            .unwrap_or(Duration::from_secs(15)),
        max_subscribers: l.count_usize(&STREAM_MAX_SUBSCRIBERS).unwrap_or(64),
        max_merged_keys: queue.max_merged_keys,
        need_subscriber: delivery == DeliveryMode::Stream,
    };
    let wait = l.duration(&STREAM_WAIT).unwrap_or(Duration::from_secs(60));
    (delivery, cfg, wait)
}

pub(super) fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "hearsay".to_owned())
}

/// The address peers know this node by when none is given: the gossip
/// address if it names an IP, else in a pod `POD_IP` (downward API) with
/// the gossip port. A port of 0 is filled in once the listener is bound.
pub(super) fn pod_ip_advertise(
    l: &mut Layers,
    env: Env<'_>,
    gossip: SocketAddr,
) -> Option<SocketAddr> {
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

pub(super) fn parse_webhook_url(s: &str) -> Result<hyper::Uri, String> {
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

//! Every setting of `hearsay run`, declared once: name, kind (its type and
//! range), default, one-line doc, where it may come from. The flag
//! (`--replay-window`), the variable (`HEARSAY_REPLAY_WINDOW`), the file
//! key (`replay_window`), `--help`, `--print-settings` and the settings
//! table in `docs/settings.md` are all derived from this list.

use std::time::Duration;

/// What a setting holds, and the range it must be in.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Kind {
    /// `500ms`, `5s`, `2m` everywhere; at least `min`.
    Duration { min: Duration },
    /// `true` or `false`; a bare flag means `true`.
    Bool,
    /// A whole number in `min..=max`.
    Count { min: u64, max: u64 },
    /// `ip:port`.
    Addr,
    /// Free text (checked where it is used).
    Text,
    /// A file path.
    Path,
    /// `host:port` items, comma- or space-separated (a list in the file).
    List,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A share from 0 up to (not including) 1.
    Ratio,
}

/// Where a setting may be given.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sources {
    /// Flag, environment and file.
    All,
    /// Flag and environment: the file cannot name itself.
    NotFile,
    /// Environment only: a secret on the command line shows in `ps`.
    EnvOnly,
}

/// A file key of the previous release, still read with a warning.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OldKey {
    pub key: &'static str,
    /// The old key held milliseconds as a bare number.
    pub millis: bool,
}

/// One setting.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Setting {
    /// snake_case: the file key; the flag and the variable derive from it.
    pub name: &'static str,
    pub kind: Kind,
    /// The default as it would be written, if there is a literal one.
    pub default: Option<&'static str>,
    /// When there is no literal default: what is used instead.
    pub otherwise: &'static str,
    pub doc: &'static str,
    pub sources: Sources,
    /// Redacted in `--print-settings` and `--help`.
    pub secret: bool,
    /// A test aid, left out of `--help` and the docs.
    pub hidden: bool,
    pub old_key: Option<OldKey>,
}

impl Setting {
    const fn new(name: &'static str, kind: Kind, doc: &'static str) -> Setting {
        Setting {
            name,
            kind,
            default: None,
            otherwise: "none",
            doc,
            sources: Sources::All,
            secret: false,
            hidden: false,
            old_key: None,
        }
    }
    const fn default(mut self, value: &'static str) -> Setting {
        self.default = Some(value);
        self
    }
    const fn otherwise(mut self, text: &'static str) -> Setting {
        self.otherwise = text;
        self
    }
    const fn sources(mut self, sources: Sources) -> Setting {
        self.sources = sources;
        self
    }
    const fn secret(mut self) -> Setting {
        self.secret = true;
        self
    }
    const fn hidden(mut self) -> Setting {
        self.hidden = true;
        self
    }
    const fn was_millis(mut self, key: &'static str) -> Setting {
        self.old_key = Some(OldKey { key, millis: true });
        self
    }

    /// `--replay-window`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
    /// `HEARSAY_REPLAY_WINDOW`.
    pub fn env(&self) -> String {
        format!("HEARSAY_{}", self.name.to_ascii_uppercase())
    }
    pub fn has_flag(&self) -> bool {
        self.sources != Sources::EnvOnly
    }
    pub fn has_file_key(&self) -> bool {
        self.sources == Sources::All
    }
    /// What `--help` and the docs say about the default.
    pub fn default_text(&self) -> String {
        match self.default {
            Some(d) => format!("`{d}`"),
            None => self.otherwise.to_owned(),
        }
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn count(min: u64, max: u64) -> Kind {
    Kind::Count { min, max }
}
const fn duration(min: Duration) -> Kind {
    Kind::Duration { min }
}
const U32: u64 = u32::MAX as u64;
const MIB: u64 = 1 << 20;

macro_rules! declare {
    ($($id:ident = $def:expr;)*) => {
        $(pub const $id: Setting = $def;)*
        /// Every setting, in the order of `--help` and the docs.
        pub const ALL: &[Setting] = &[$($id),*];
    };
}

declare! {
    NODE_NAME = Setting::new("node_name", Kind::Text, "This node's name in logs and the API")
        .otherwise("`POD_NAME`, else the hostname");
    GOSSIP_ADDR = Setting::new("gossip_addr", Kind::Addr, "Gossip listener").default("0.0.0.0:7946");
    ADVERTISE_ADDR = Setting::new("advertise_addr", Kind::Addr, "Address peers reach this node at")
        .otherwise("`POD_IP` and the gossip port; else the gossip address if it names an IP; else the listed peer this host can bind");
    API_ADDR = Setting::new("api_addr", Kind::Addr, "Local API listener").default("127.0.0.1:7070");
    METRICS_ADDR = Setting::new("metrics_addr", Kind::Addr, "Metrics and probes listener").default("0.0.0.0:9464");
    WEBHOOK_URL = Setting::new("webhook_url", Kind::Text, "Where the app receives events (http:// only)")
        .default("http://127.0.0.1:8080/hearsay");
    WEBHOOK_PROBE_PATH = Setting::new("webhook_probe_path", Kind::Text, "App path that answers 2xx once it is ready; until then events wait")
        .otherwise("none: the first successful delivery marks the app ready");
    WEBHOOK_TIMEOUT = Setting::new("webhook_timeout", duration(ms(1)), "Timeout of one webhook request")
        .default("5s").was_millis("webhook_timeout_ms");
    WEBHOOK_RETRY_BUDGET = Setting::new("webhook_retry_budget", duration(ms(1)), "How long a ready app may keep failing before pending events become a flush")
        .default("60s").was_millis("webhook_retry_budget_ms");
    WEBHOOK_MAX_BATCH = Setting::new("webhook_max_batch", count(1, 100_000), "Entries in one webhook request").default("500");
    WEBHOOK_REQUESTS_PER_SECOND = Setting::new("webhook_requests_per_second", count(1, U32), "Webhook requests per second (burst a quarter)").default("1000");
    DELIVERY_QUEUE_MAX = Setting::new("delivery_queue_max", count(1, 10_000_000), "Entries waiting for the app before they are coalesced").default("10000");
    DELIVERY = Setting::new("delivery", Kind::Choice(&["webhook", "stream", "both"]), "How the app receives events: the webhook, subscription streams (GET /v1/subscribe), or both").default("webhook");
    STREAM_BUFFER = Setting::new("stream_buffer", count(1, 1_000_000), "Entries pending for one subscriber before they are coalesced").default("1000");
    STREAM_LOG = Setting::new("stream_log", duration(ms(0)), "How long written events stay resumable with Last-Event-ID")
        .otherwise("the retention");
    STREAM_LOG_ENTRIES = Setting::new("stream_log_entries", count(1, 10_000_000), "The most entries kept resumable").default("10000");
    STREAM_KEEPALIVE = Setting::new("stream_keepalive", duration(ms(100)), "An idle stream sends a keepalive this often").default("15s");
    STREAM_MAX_SUBSCRIBERS = Setting::new("stream_max_subscribers", count(1, 200), "Streams open at once (each holds one of the local API's 256 connections)").default("64");
    STREAM_WAIT = Setting::new("stream_wait", duration(ms(1)), "With --delivery stream: how long events may find no subscriber, once one has connected, before they become a flush").default("60s");
    DISCOVERY = Setting::new("discovery", Kind::Choice(&["static", "kubernetes"]), "How peers are found").default("static");
    K8S_SELECTOR = Setting::new("k8s_selector", Kind::Text, "Label selector of the app's pods, e.g. app=orders")
        .otherwise("none; required by Kubernetes discovery of pods");
    K8S_NAMESPACE = Setting::new("k8s_namespace", Kind::Text, "Namespace to watch")
        .otherwise("`POD_NAMESPACE`, then the service account's namespace");
    K8S_GOSSIP_PORT_NAME = Setting::new("k8s_gossip_port_name", Kind::Text, "Name of the container port peers gossip on").default("gossip");
    K8S_MODE = Setting::new("k8s_mode", Kind::Choice(&["pods", "endpointslices"]), "Watch pods, or the EndpointSlices of --k8s-service").default("pods");
    K8S_SERVICE = Setting::new("k8s_service", Kind::Text, "The headless Service whose EndpointSlices list the peers")
        .otherwise("none; required by the endpointslices mode");
    PEERS = Setting::new("peers", Kind::List, "host:port of the peers, comma-separated (a list in the file); may include this node");
    PEERS_FILE = Setting::new("peers_file", Kind::Path, "File of host:port lines (# comments), re-read when it changes");
    GOSSIP_KEY_FILE = Setting::new("gossip_key_file", Kind::Path, "File holding the gossip key (a mounted Secret), at least 16 bytes")
        .otherwise("required, unless HEARSAY_GOSSIP_KEY or --insecure");
    GOSSIP_SECONDARY_KEY_FILE = Setting::new("gossip_secondary_key_file", Kind::Path, "A second accepted key, for rotation; absent is fine");
    GOSSIP_KEY = Setting::new("gossip_key", Kind::Text, "The gossip key itself, instead of a file")
        .sources(Sources::EnvOnly).secret();
    INSECURE = Setting::new("insecure", Kind::Bool, "Run without a gossip key (local experiments only)").default("false");
    API_TOKEN = Setting::new("api_token", Kind::Text, "Bearer token the local API requires")
        .otherwise("none: no token needed").secret();
    CONFIG = Setting::new("config", Kind::Path, "Settings file, TOML or YAML (keys are the setting names)")
        .sources(Sources::NotFile);
    LOG_FORMAT = Setting::new("log_format", Kind::Choice(&["text", "json"]), "Log format; the level comes from RUST_LOG (default info)").default("text");
    DELIVER_OWN = Setting::new("deliver_own", Kind::Bool, "Also deliver this node's own publications to its app").default("false");
    ALLOW_UNKNOWN_PEERS = Setting::new("allow_unknown_peers", Kind::Bool, "Accept frames from peers outside the discovered membership").default("false");
    SHUTDOWN_GRACE = Setting::new("shutdown_grace", duration(ms(0)), "How long shutdown may take to send and deliver what is queued")
        .default("10s").was_millis("shutdown_grace_ms");
    MAX_FRAME_BYTES = Setting::new("max_frame_bytes", count(64 * 1024, 64 * MIB), "Largest gossip frame accepted or sent").default("1048576");
    PUBLISH_RATE = Setting::new("publish_rate", count(1, U32), "Local publishes per second").default("50000");
    PUBLISH_BURST = Setting::new("publish_burst", count(1, U32), "Publishes allowed at once above the rate")
        .otherwise("a fifth of the publish rate");
    DIRECT_PUSH_MAX_PEERS = Setting::new("direct_push_max_peers", count(0, 100_000), "Up to this many peers events are pushed directly; above, the tree").default("64");
    ANTI_ENTROPY_INTERVAL = Setting::new("anti_entropy_interval", duration(ms(1)), "Anti-entropy period")
        .default("1s").was_millis("anti_entropy_interval_ms");
    RETENTION = Setting::new("retention", duration(ms(1)), "How long events are kept for repairs")
        .default("30s").was_millis("retention_ms");
    RETENTION_BYTES = Setting::new("retention_bytes", count(1, U32), "The most event bytes kept for repairs").default("8388608");
    GAP_FLUSH_AFTER = Setting::new("gap_flush_after", duration(ms(1)), "How long a gap may stay open before the app gets a flush")
        .otherwise("the retention").was_millis("gap_flush_after_ms");
    INBOUND_FRAMES_PER_SECOND = Setting::new("inbound_frames_per_second", count(1, U32), "Inbound frames per second accepted from one peer (burst a fifth)").default("50000");
    INBOUND_BYTES_PER_SECOND = Setting::new("inbound_bytes_per_second", count(1, U32), "Inbound bytes per second accepted from one peer (burst a quarter, at least a frame)").default("67108864");
    OUTBOUND_BYTES_PER_SECOND = Setting::new("outbound_bytes_per_second", count(1, U32), "Bytes per second sent to all peers together (burst a quarter, at least a frame); above it events queue and batch harder")
        .otherwise("unlimited");
    FLUSH_ON_START = Setting::new("flush_on_start", Kind::Bool, "Send the app one flush of every cache at start, covering what it missed while this sidecar was down").default("true");
    REPLAY_WINDOW = Setting::new("replay_window", duration(ms(10_000)), "Frames sent longer ago than this (by the sender's clock) are refused")
        .default("5m").was_millis("replay_window_ms");
    PEER_TIMEOUT = Setting::new("peer_timeout", duration(ms(1_000)), "How long a peer may leave sent data unacknowledged, or an idle connection unanswered, before the connection is given up (TCP_USER_TIMEOUT and keepalive)")
        .default("10s");
    MAX_CONFIRM_WAITS = Setting::new("max_confirm_waits", count(1, 1_000_000), "Publishers waiting for confirmations at once (?wait=); more get 429").default("1024");
    MAX_TRACKED = Setting::new("max_tracked", count(1, 10_000_000), "Tracked events held at once (publishes with ?wait=); the oldest is dropped, counted").default("10000");
    CONFIRM_RETRY = Setting::new("confirm_retry", duration(ms(10)), "How often replicas still pending on a tracked event are asked again").default("200ms");
    MAX_GOSSIP_CONNECTIONS = Setting::new("max_gossip_connections", count(1, 1_000_000), "Inbound gossip connections open at once").default("4096");
    MAX_KEY_LEN = Setting::new("max_key_len", count(1, U32), "Longest key, prefix or tag in an event, in bytes").default("512");
    MAX_KEYS_PER_EVENT = Setting::new("max_keys_per_event", count(1, U32), "Keys, prefixes and tags in one event").default("1000");
    MAX_EVENT_BYTES = Setting::new("max_event_bytes", count(1, U32), "Largest event, in bytes (must leave 1 KiB of a frame)").default("65536");
    MAX_CONFIG_VALUE_BYTES = Setting::new("max_config_value_bytes", count(1, U32), "Largest config value, in bytes").default("32768");
    MAX_CONFIG_KEYS = Setting::new("max_config_keys", count(1, U32), "Config keys held at once").default("1024");
    READY_FILE = Setting::new("ready_file", Kind::Path, "Write the bound addresses here as JSON once listening (for supervisors and tests)");
    FAULT_DROP_FRAMES = Setting::new("fault_drop_frames", Kind::Ratio, "Test aid: drop this share of outbound frames").default("0").hidden();
}

/// The setting with this name.
pub fn find(name: &str) -> Option<&'static Setting> {
    ALL.iter().find(|s| s.name == name)
}

//! The flags of `hearsay run`. Every flag is optional here: what is not
//! given falls through to the environment, the settings file, and the
//! default (see [`super::Settings::resolve`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::{DiscoveryMode, HumanDuration, LogFormat};

#[derive(Debug, Default, Clone, Args)]
pub struct RunArgs {
    /// This node's name in logs and the API [env: HEARSAY_NODE_NAME, else POD_NAME, else the hostname]
    #[arg(long)]
    pub node_name: Option<String>,
    /// Gossip listener [env: HEARSAY_GOSSIP_ADDR] [default: 0.0.0.0:7946]
    #[arg(long)]
    pub gossip_addr: Option<SocketAddr>,
    /// Address peers reach this node at [env: HEARSAY_ADVERTISE_ADDR] [default: POD_IP and the gossip port]
    #[arg(long)]
    pub advertise_addr: Option<SocketAddr>,
    /// Local API listener [env: HEARSAY_API_ADDR] [default: 127.0.0.1:7070]
    #[arg(long)]
    pub api_addr: Option<SocketAddr>,
    /// Metrics and probes listener [env: HEARSAY_METRICS_ADDR] [default: 0.0.0.0:9464]
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Where the app receives events [env: HEARSAY_WEBHOOK_URL] [default: http://127.0.0.1:8080/hearsay]
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// App path that answers 2xx once it is ready; until then events wait [env: HEARSAY_WEBHOOK_PROBE_PATH]
    #[arg(long)]
    pub webhook_probe_path: Option<String>,
    /// Timeout of one webhook request [env: HEARSAY_WEBHOOK_TIMEOUT] [default: 5s]
    #[arg(long)]
    pub webhook_timeout: Option<HumanDuration>,
    /// How long a ready app may keep failing before pending events become a flush [env: HEARSAY_WEBHOOK_RETRY_BUDGET] [default: 60s]
    #[arg(long)]
    pub webhook_retry_budget: Option<HumanDuration>,
    /// How peers are found: static or kubernetes [env: HEARSAY_DISCOVERY] [default: static]
    #[arg(long)]
    pub discovery: Option<DiscoveryMode>,
    /// Label selector of the app's pods, e.g. app=orders [env: HEARSAY_K8S_SELECTOR]
    #[arg(long)]
    pub k8s_selector: Option<String>,
    /// Namespace to watch [env: HEARSAY_K8S_NAMESPACE] [default: POD_NAMESPACE, then the service account's namespace]
    #[arg(long)]
    pub k8s_namespace: Option<String>,
    /// Name of the container port peers gossip on [env: HEARSAY_K8S_GOSSIP_PORT_NAME] [default: gossip]
    #[arg(long)]
    pub k8s_gossip_port_name: Option<String>,
    /// pods, or endpointslices of --k8s-service [env: HEARSAY_K8S_MODE] [default: pods]
    #[arg(long)]
    pub k8s_mode: Option<String>,
    /// The headless Service whose EndpointSlices list the peers [env: HEARSAY_K8S_SERVICE]
    #[arg(long)]
    pub k8s_service: Option<String>,
    /// Comma-separated host:port of the peers; may include this node [env: HEARSAY_PEERS]
    #[arg(long)]
    pub peers: Option<String>,
    /// File of host:port lines, re-read when it changes [env: HEARSAY_PEERS_FILE]
    #[arg(long)]
    pub peers_file: Option<PathBuf>,
    /// File holding the gossip key (a mounted Secret) [env: HEARSAY_GOSSIP_KEY_FILE, or the key itself in HEARSAY_GOSSIP_KEY]
    #[arg(long)]
    pub gossip_key_file: Option<PathBuf>,
    /// A second accepted key, for rotation [env: HEARSAY_GOSSIP_SECONDARY_KEY_FILE]
    #[arg(long)]
    pub gossip_secondary_key_file: Option<PathBuf>,
    /// Run without a gossip key (local experiments only) [env: HEARSAY_INSECURE]
    #[arg(long)]
    pub insecure: bool,
    /// Bearer token the local API requires [env: HEARSAY_API_TOKEN]
    #[arg(long, hide_env_values = true)]
    pub api_token: Option<String>,
    /// Settings file, TOML or YAML [env: HEARSAY_CONFIG]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log format: text or json [env: HEARSAY_LOG_FORMAT] [default: text]
    #[arg(long)]
    pub log_format: Option<LogFormat>,
    /// Also deliver this node's own publications to its app [env: HEARSAY_DELIVER_OWN]
    #[arg(long)]
    pub deliver_own: bool,
    /// Accept frames from peers outside the discovered membership [env: HEARSAY_ALLOW_UNKNOWN_PEERS]
    #[arg(long)]
    pub allow_unknown_peers: bool,
    /// How long shutdown may take to send and deliver what is queued [env: HEARSAY_SHUTDOWN_GRACE] [default: 10s]
    #[arg(long)]
    pub shutdown_grace: Option<HumanDuration>,
    /// Largest gossip frame accepted or sent [env: HEARSAY_MAX_FRAME_BYTES] [default: 1048576]
    #[arg(long)]
    pub max_frame_bytes: Option<usize>,
    /// Local publishes per second [env: HEARSAY_PUBLISH_RATE] [default: 50000]
    #[arg(long)]
    pub publish_rate: Option<u32>,
    /// Up to this many peers events are pushed directly; above, the tree [env: HEARSAY_DIRECT_PUSH_MAX_PEERS] [default: 32]
    #[arg(long)]
    pub direct_push_max_peers: Option<usize>,
    /// Anti-entropy period [env: HEARSAY_ANTI_ENTROPY_INTERVAL] [default: 1s]
    #[arg(long)]
    pub anti_entropy_interval: Option<HumanDuration>,
    /// How long events are kept for repairs [env: HEARSAY_RETENTION] [default: 30s]
    #[arg(long)]
    pub retention: Option<HumanDuration>,
    /// How long a gap may stay open before the app gets a flush [env: HEARSAY_GAP_FLUSH_AFTER] [default: the retention]
    #[arg(long)]
    pub gap_flush_after: Option<HumanDuration>,
    /// Inbound frames per second accepted from one peer [env: HEARSAY_INBOUND_FRAMES_PER_SECOND] [default: 50000]
    #[arg(long)]
    pub inbound_frames_per_second: Option<u32>,
    /// Send the app one flush of every cache at start, covering whatever it
    /// missed while this sidecar was down [env: HEARSAY_FLUSH_ON_START] [default: true]
    #[arg(long)]
    pub flush_on_start: Option<bool>,
    /// Test aid: drop this share of outbound frames (0..1) [env: HEARSAY_FAULT_DROP_FRAMES]
    #[arg(long, hide = true)]
    pub fault_drop_frames: Option<f64>,
    /// Test aid: never send to the gossip addresses listed in this file [env: HEARSAY_FAULT_BLOCK_FILE]
    #[arg(long, hide = true)]
    pub fault_block_file: Option<PathBuf>,
    /// Write the bound addresses here as JSON once listening (for supervisors and tests) [env: HEARSAY_READY_FILE]
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

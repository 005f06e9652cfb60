//! The typed values settings parse into: durations people write, the
//! discovery mode and source, the log format, where the gossip keys come
//! from.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A duration written for people: `500ms`, `5s`, `2m`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(HumanDuration)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// How the app receives events (`--delivery`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// POSTs to the app's webhook.
    Webhook,
    /// Subscription streams only: no webhook.
    Stream,
    /// The webhook, and streams for whoever subscribes.
    Both,
}

impl DeliveryMode {
    pub fn webhook(self) -> bool {
        self != DeliveryMode::Stream
    }

    pub fn streams(self) -> bool {
        self != DeliveryMode::Webhook
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// A fixed list of `host:port` (and/or a file of them, re-read on change).
    Static,
    /// Pods (or EndpointSlices) from the Kubernetes API.
    Kubernetes,
}

impl FromStr for DiscoveryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "static" => Ok(DiscoveryMode::Static),
            "kubernetes" => Ok(DiscoveryMode::Kubernetes),
            "dns" => Err("discovery \"dns\" is not available yet; use static or kubernetes".into()),
            other => Err(format!(
                "unknown discovery {other:?}; expected static or kubernetes"
            )),
        }
    }
}

/// What Kubernetes discovery watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum K8sSource {
    /// Pods matching the selector.
    Pods,
    /// The EndpointSlices of this (headless) Service.
    EndpointSlices { service: String },
}

impl FromStr for K8sSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pods" => Ok(K8sSource::Pods),
            "endpointslices" => Ok(K8sSource::EndpointSlices {
                service: String::new(),
            }),
            other => Err(format!(
                "unknown mode {other:?}; expected pods or endpointslices"
            )),
        }
    }
}

/// Kubernetes discovery's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sSettings {
    pub source: K8sSource,
    /// Label selector for pods (required in pod mode; optional extra filter
    /// for EndpointSlices).
    pub selector: String,
    pub namespace: Option<String>,
    /// The container port whose name says where a peer's gossip listens.
    pub gossip_port_name: String,
    /// This pod, from the downward API: excluded from its own peers.
    pub pod_uid: Option<String>,
    pub pod_name: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}; expected text or json"
            )),
        }
    }
}

/// Where the gossip key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// No authentication (`--insecure`): only for local experiments.
    Insecure,
    /// Files (a mounted Secret), re-read when they change.
    Files {
        primary: PathBuf,
        secondary: Option<PathBuf>,
    },
    /// The key itself, from `HEARSAY_GOSSIP_KEY`.
    Inline(Vec<u8>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Insecure => write!(f, "Insecure"),
            KeySource::Files { primary, secondary } => f
                .debug_struct("Files")
                .field("primary", primary)
                .field("secondary", secondary)
                .finish(),
            KeySource::Inline(_) => write!(f, "Inline(<redacted>)"),
        }
    }
}

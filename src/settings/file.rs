//! The optional settings file (`--config`, TOML or YAML). Every key is
//! optional and unknown keys are an error, so a typo is caught at start
//! instead of being silently ignored.

use std::path::Path;

use serde::Deserialize;

use super::SettingError;

/// The file's shape. Keys are the flag names with `_` for `-`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub node_name: Option<String>,
    pub gossip_addr: Option<String>,
    pub advertise_addr: Option<String>,
    pub api_addr: Option<String>,
    pub metrics_addr: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_probe_path: Option<String>,
    pub webhook_timeout_ms: Option<u64>,
    pub webhook_retry_budget_ms: Option<u64>,
    pub webhook_max_batch: Option<usize>,
    pub webhook_requests_per_second: Option<u32>,
    pub delivery_queue_max: Option<usize>,
    pub discovery: Option<String>,
    pub k8s_selector: Option<String>,
    pub k8s_namespace: Option<String>,
    pub k8s_gossip_port_name: Option<String>,
    pub k8s_mode: Option<String>,
    pub k8s_service: Option<String>,
    pub peers: Option<Vec<String>>,
    pub peers_file: Option<String>,
    pub gossip_key_file: Option<String>,
    pub gossip_secondary_key_file: Option<String>,
    pub insecure: Option<bool>,
    pub api_token: Option<String>,
    pub log_format: Option<String>,
    pub deliver_own: Option<bool>,
    pub allow_unknown_peers: Option<bool>,
    pub shutdown_grace_ms: Option<u64>,
    pub max_frame_bytes: Option<usize>,
    pub publish_rate: Option<u32>,
    pub inbound_frames_per_second: Option<u32>,
    pub inbound_bytes_per_second: Option<u32>,
    pub flush_on_start: Option<bool>,
    pub replay_window_ms: Option<u64>,
    pub max_gossip_connections: Option<usize>,
    pub publish_burst: Option<u32>,
    pub direct_push_max_peers: Option<usize>,
    pub anti_entropy_interval_ms: Option<u64>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<usize>,
    pub gap_flush_after_ms: Option<u64>,
    pub max_key_len: Option<usize>,
    pub max_keys_per_event: Option<usize>,
    pub max_event_bytes: Option<usize>,
    pub max_config_value_bytes: Option<usize>,
    pub max_config_keys: Option<usize>,
}

impl FileSettings {
    /// Reads and parses the file; the format follows the extension
    /// (`.toml`, or `.yaml`/`.yml`).
    pub fn load(path: &Path) -> Result<FileSettings, SettingError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingError {
            setting: "--config".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<FileSettings, SettingError> {
        let bad = |e: String| SettingError {
            setting: format!("--config {}", path.display()),
            reason: e,
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(text).map_err(|e| bad(e.to_string())),
            Some("yaml" | "yml") => serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string())),
            _ => Err(bad("the file name must end in .toml, .yaml or .yml".into())),
        }
    }
}

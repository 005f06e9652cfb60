//! What one run of the harness found, as written to `results.json`.

use serde::{Deserialize, Deserializer, Serialize};

/// A time read back from `results.json`, where one with no samples (NaN)
/// was written as `null`.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Option::<f64>::deserialize(d).map(|v| v.unwrap_or(f64::NAN))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    /// UTC, when the run started.
    pub date: String,
    pub machine: String,
    pub command: String,
    /// Publishes per second and events per latency run.
    pub rate: f64,
    pub events: u64,
    pub systems: Vec<SystemResults>,
    /// Systems left out and other caveats.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SystemResults {
    pub system: String,
    /// What "one process" means for the RSS figures.
    pub process: String,
    pub runs: Vec<RunResult>,
    /// The N = 3 rate ramp, at one node.
    pub ramp: Vec<RampStep>,
    /// The highest ramp rate that passed, if any.
    pub max_sustained_rate: Option<f64>,
    /// One process at N = 3, before any traffic, and its peak through
    /// the last ramp step that passed (KiB).
    pub rss_idle_kib: u64,
    pub rss_peak_kib: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub nodes: usize,
    #[serde(flatten)]
    pub latency: Latency,
    /// All of the system's processes (sidecars; broker and relays;
    /// agents and their handlers), per 1,000 events published.
    pub cpu_seconds_per_1000_events: f64,
    /// The apps, per 1,000 events published.
    pub app_cpu_seconds_per_1000_events: f64,
    /// hearsay only: event copies sent between sidecars, per event per
    /// other node (1.0 = each peer got each event exactly once).
    pub payload_frames_per_event_per_peer: Option<f64>,
    pub rss_idle_kib: u64,
    /// hearsay only: a run of publishes that wait for confirmation.
    pub confirm: Option<ConfirmFigures>,
    /// CPU per received event at a few rates, and idle.
    pub cpu: Option<CpuFigures>,
}

/// Publishes with `?wait=5s`: how long until every replica confirmed, and
/// the time-to-all of the same events, both from the publish call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfirmFigures {
    pub events: usize,
    /// Answered without every replica confirmed (202).
    pub unconfirmed: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub confirm_p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub confirm_p99_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub time_to_all_p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub time_to_all_p99_ms: f64,
    pub lost: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RampStep {
    pub rate: f64,
    /// Events accepted per second, first publish to last acceptance.
    pub achieved_rate: f64,
    #[serde(flatten)]
    pub latency: Latency,
    pub passed: bool,
    pub why_not: Option<String>,
    /// The peak RSS of the measured process so far, KiB.
    pub rss_peak_kib: u64,
}

impl Results {
    /// Every N some system ran at, smallest first.
    pub fn node_counts(&self) -> Vec<usize> {
        let mut ns: Vec<usize> = self
            .systems
            .iter()
            .flat_map(|s| s.runs.iter().map(|r| r.nodes))
            .collect();
        ns.sort_unstable();
        ns.dedup();
        ns
    }
}

impl Results {
    /// Whether any run measured CPU per received event.
    pub fn has_cpu(&self) -> bool {
        self.systems
            .iter()
            .any(|s| s.runs.iter().any(|r| r.cpu.is_some()))
    }
}

impl SystemResults {
    pub fn run(&self, nodes: usize) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.nodes == nodes)
    }
}

/// What one latency run or ramp step measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub events: usize,
    pub refused: u64,
    pub refusals: std::collections::BTreeMap<String, u64>,
    pub publisher_late: u64,
    pub deliveries_expected: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// Accepted → the last other receiver has it.
    #[serde(deserialize_with = "nan_if_null")]
    pub time_to_all_p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub time_to_all_p99_ms: f64,
    /// Accepted → one receiver has it.
    #[serde(deserialize_with = "nan_if_null")]
    pub delivery_p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub delivery_p99_ms: f64,
    /// The same, counted from the moment the publish call was issued
    /// (includes the publish round trip).
    #[serde(deserialize_with = "nan_if_null")]
    pub issued_time_to_all_p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub issued_time_to_all_p99_ms: f64,
    /// Sorted time-to-all samples (ms), for the CDF plot (kept in
    /// `results.json` so `bench report` can draw it again).
    #[serde(default)]
    pub time_to_all: Vec<f64>,
}

/// CPU per received event (see `cpu`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CpuFigures {
    /// CPU of one of the system's processes per second, idle (ms).
    pub idle_ms_per_second: f64,
    pub steps: Vec<CpuStep>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CpuStep {
    pub rate: f64,
    pub events: usize,
    pub lost: usize,
    /// The system's processes, per delivery, idle taken off (µs).
    pub system_us_per_delivery: f64,
    /// The apps, per delivery (µs; their idle is nothing to speak of).
    pub apps_us_per_delivery: f64,
}

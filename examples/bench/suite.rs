//! The runs: for each N, each system in turn gets the same open-loop
//! workload; at N = 3 each also gets a rate ramp at one node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::apps::{self, App, Receive, Runner};
use crate::hearsay_sys::Hearsay;
use crate::nats_sys::{self, Nats};
use crate::procinfo::{cpu_of, rss_kib};
use crate::redis_sys::{self, Redis};
use crate::results::Latency;
use crate::results::{ConfirmFigures, RampStep, Results, RunResult, SystemResults};
use crate::serf_sys::Serf;
use crate::workload::{self, System};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cluster sizes to run
    #[arg(long, value_delimiter = ',', default_value = "3,10,50")]
    pub nodes: Vec<usize>,
    /// Systems to run (hearsay, hearsay-streams, redis, nats,
    /// redis-relayed, serf)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hearsay,hearsay-streams,redis,nats,redis-relayed,serf"
    )]
    pub systems: Vec<String>,
    /// Publishes per second in the latency runs, at random nodes (Serf runs
    /// one handler process per event per node, so keep it modest)
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Events per latency run
    #[arg(long, default_value_t = 200)]
    pub events: u64,
    /// Publish rates the N = 3 ramp tries at one node, in order; it stops
    /// at the first that fails
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,15000,20000,25000,30000,40000,50000"
    )]
    pub ramp_rates: Vec<f64>,
    /// The same for Serf
    #[arg(long, value_delimiter = ',', default_value = "10,20,50,100")]
    pub serf_ramp_rates: Vec<f64>,
    /// Seconds each ramp step publishes for
    #[arg(long, default_value_t = 2.0)]
    pub ramp_seconds: f64,
    /// Cluster sizes at which CPU per received event is measured
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    pub cpu_nodes: Vec<usize>,
    /// Publish rates the CPU measurement runs at, each for --cpu-seconds
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub cpu_rates: Vec<f64>,
    /// Seconds of each CPU measurement step
    #[arg(long, default_value_t = 5.0)]
    pub cpu_seconds: f64,
    /// Events published with `?wait=5s` after each hearsay latency run (at
    /// the same rate), for the confirmation time; 0 leaves it out
    #[arg(long, default_value_t = 100)]
    pub confirm_events: u64,
    /// Where to write report.md, results.json and the plots
    #[arg(long, default_value = "docs/bench")]
    pub out: PathBuf,
    /// The hearsay binary (default: built next to this one with cargo)
    #[arg(long)]
    pub hearsay: Option<PathBuf>,
    /// One more `hearsay run` argument for every sidecar (repeatable),
    /// e.g. --hearsay-arg=--direct-push-max-peers=8
    #[arg(long, allow_hyphen_values = true)]
    pub hearsay_arg: Vec<String>,
    /// One more NAME=VALUE in every sidecar's environment (repeatable)
    #[arg(long)]
    pub hearsay_env: Vec<String>,
    /// Do not apt-get install redis-server, nats-server and serf when missing
    #[arg(long)]
    pub no_install: bool,
    /// Keep the working directory (sidecar and agent logs) afterwards
    #[arg(long)]
    pub keep: bool,
}

/// Builds the `hearsay` binary with the profile this harness was built
/// with (when run through cargo), and returns its path.
pub fn build_hearsay(bench: &Path) -> anyhow::Result<PathBuf> {
    // target/<profile>/examples/bench
    let profile_dir = bench
        .parent()
        .and_then(Path::parent)
        .context("cannot tell where this binary was built")?;
    let binary = profile_dir.join("hearsay");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile = profile_dir
            .file_name()
            .and_then(|p| p.to_str())
            .unwrap_or("release");
        let profile = if profile == "debug" { "dev" } else { profile };
        eprintln!("building hearsay (--profile {profile})");
        let ok = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--bin", "hearsay", "--profile", profile])
            .status()
            .is_ok_and(|s| s.success());
        anyhow::ensure!(ok, "cargo build --bin hearsay failed");
    }
    anyhow::ensure!(
        binary.is_file(),
        "no hearsay binary at {}: build it (cargo build --release) or pass --hearsay",
        binary.display()
    );
    Ok(binary)
}

/// A started system: what the runs need besides publishing.
trait UnderTest: System {
    /// All its processes; the first is the one whose RSS is reported.
    fn pids(&self) -> Vec<u32>;
    /// Publishes event `k` at `node` and waits for every replica's
    /// confirmation (hearsay's `?wait=`): the id and whether it was
    /// confirmed. `None`: the system has no such thing.
    fn publish_confirmed(
        &self,
        _node: usize,
        _k: u64,
    ) -> impl std::future::Future<Output = Option<Result<(String, bool), String>>> + Send {
        async { None }
    }
    /// Event copies sent between nodes so far (hearsay's own metric).
    async fn events_sent(&self) -> Option<f64> {
        None
    }
    async fn stop(self);
}

impl UnderTest for Hearsay {
    fn pids(&self) -> Vec<u32> {
        Hearsay::pids(self)
    }
    async fn events_sent(&self) -> Option<f64> {
        Some(Hearsay::events_sent(self).await)
    }
    async fn publish_confirmed(
        &self,
        node: usize,
        k: u64,
    ) -> Option<Result<(String, bool), String>> {
        Some(Hearsay::publish_confirmed(self, node, k).await)
    }
    async fn stop(self) {
        Hearsay::stop(self).await
    }
}

impl UnderTest for Redis {
    fn pids(&self) -> Vec<u32> {
        Redis::pids(self)
    }
    async fn stop(self) {
        Redis::stop(self).await
    }
}

impl UnderTest for Nats {
    fn pids(&self) -> Vec<u32> {
        Nats::pids(self)
    }
    async fn stop(self) {
        Nats::stop(self).await
    }
}

impl UnderTest for Serf {
    fn pids(&self) -> Vec<u32> {
        Serf::pids(self)
    }
    async fn stop(self) {
        Serf::stop(self).await
    }
}

/// Which node publishes event `k`: pseudo-random, the same for every
/// system.
fn origin(k: u64, n: usize) -> usize {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % n as u64) as usize
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = "cargo run --release --example bench".to_owned();
    if !args.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(&args.join(" "));
    }
    cmd
}

/// Every system the harness knows: its name and what "one process" is
/// in its memory figures.
pub const SYSTEMS: [(&str, &str); 6] = [
    ("hearsay", "one sidecar"),
    ("hearsay-streams", "one sidecar"),
    ("redis", "the redis-server broker"),
    ("nats", "the nats-server broker"),
    ("redis-relayed", "the redis-server broker"),
    ("serf", "one serf agent"),
];

pub async fn run_all(
    args: &Args,
    bench: &Path,
    hearsay: &Path,
    available: &[&'static str],
    mut notes: Vec<String>,
) -> anyhow::Result<Results> {
    anyhow::ensure!(
        args.rate > 0.0 && args.events > 0,
        "--rate and --events must be positive"
    );
    anyhow::ensure!(
        args.nodes.iter().all(|n| *n >= 2),
        "--nodes must all be at least 2"
    );
    for s in &args.systems {
        anyhow::ensure!(
            SYSTEMS.iter().any(|(name, _)| name == s),
            "--systems: unknown system {s:?} ({})",
            SYSTEMS.map(|(n, _)| n).join(", ")
        );
    }
    // target/<profile>/examples/bench
    let target = bench
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .context("cannot tell where the target directory is")?;
    let runner = apps::runner(target)?;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut systems: Vec<SystemResults> = SYSTEMS
        .iter()
        .filter(|(s, _)| available.contains(s) && args.systems.iter().any(|c| c == s))
        .map(|(s, process)| SystemResults {
            system: s.to_string(),
            process: process.to_string(),
            runs: Vec::new(),
            ramp: Vec::new(),
            max_sustained_rate: None,
            rss_idle_kib: 0,
            rss_peak_kib: 0,
        })
        .collect();
    let mut nodes = args.nodes.clone();
    nodes.sort_unstable();
    nodes.dedup();
    let dir = std::env::temp_dir().join(format!("hearsay-bench-{}", std::process::id()));
    for &n in &nodes {
        for sr in &mut systems {
            eprintln!("{} at N = {n}", sr.system);
            let ramp = (n == nodes[0]).then(|| match sr.system.as_str() {
                "serf" => args.serf_ramp_rates.clone(),
                _ => args.ramp_rates.clone(),
            });
            let ctx = Ctx {
                args,
                bench,
                hearsay,
                runner: &runner,
                dir: dir.join(format!("{}-n{n}", sr.system)),
                n,
            };
            // One system failing at one N (Serf's agents not converging on
            // a busy machine, say) is a note in the report, not the end
            // of a run that has taken twenty minutes so far.
            let run = match one(&ctx, sr, ramp).await {
                Ok(run) => run,
                Err(e) => {
                    eprintln!("  did not run: {e:#}");
                    notes.push(format!("{} at N = {n} did not run: {e:#}", sr.system));
                    continue;
                }
            };
            eprintln!(
                "  time-to-all p50 {} ms, p99 {} ms; lost {}, duplicated {}",
                run.latency.time_to_all_p50_ms,
                run.latency.time_to_all_p99_ms,
                run.latency.lost,
                run.latency.duplicated
            );
            sr.runs.push(run);
        }
    }
    if args.keep {
        eprintln!("logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if nodes.first() != Some(&3) {
        notes.push("the rate ramp and RSS figures are at the smallest N run, not N = 3".into());
    }
    Ok(Results {
        date,
        machine: machine(),
        command: command_line(),
        rate: args.rate,
        events: args.events,
        systems,
        notes,
    })
}

/// What starting one system at one N needs.
struct Ctx<'a> {
    args: &'a Args,
    bench: &'a Path,
    hearsay: &'a Path,
    runner: &'a Runner,
    dir: PathBuf,
    n: usize,
}

impl Ctx<'_> {
    async fn webhook_apps(&self) -> anyhow::Result<Vec<App>> {
        apps::start_all(self.runner, self.n, |_| Receive::Webhook).await
    }

    async fn hearsay(&self, urls: &[String], extra: &[&str]) -> anyhow::Result<Hearsay> {
        let mut args = self.args.hearsay_arg.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        Hearsay::start(
            self.hearsay,
            self.dir.clone(),
            urls,
            &args,
            &self.args.hearsay_env,
        )
        .await
    }
}

fn urls(apps: &[App]) -> Vec<String> {
    apps.iter().filter_map(|a| a.url.clone()).collect()
}

/// Starts the system `sr` names and its apps, each as its users run them,
/// and exercises it.
async fn one(
    c: &Ctx<'_>,
    sr: &mut SystemResults,
    ramp: Option<Vec<f64>>,
) -> anyhow::Result<RunResult> {
    let (args, n) = (c.args, c.n);
    match sr.system.as_str() {
        "hearsay" => {
            let apps = c.webhook_apps().await?;
            let sys = c.hearsay(&urls(&apps), &[]).await?;
            exercise(sys, args, apps, ramp, sr).await
        }
        "hearsay-streams" => {
            // No webhook: each app holds its own sidecar's stream.
            let unused = vec!["http://127.0.0.1:9/unused".to_owned(); n];
            let sys = c.hearsay(&unused, &["--delivery", "stream"]).await?;
            let apis: Vec<_> = (0..n)
                .filter_map(|i| sys.cluster.node(i).map(|p| p.ready.api))
                .collect();
            let apps = apps::start_all(c.runner, n, |i| Receive::Stream(apis[i])).await?;
            exercise(sys, args, apps, ramp, sr).await
        }
        "redis" => {
            let sys = Redis::start(n).await?;
            let addr = sys.addr;
            let how = |_| Receive::Redis(addr, redis_sys::CHANNEL);
            let apps = apps::start_all(c.runner, n, how).await?;
            exercise(sys, args, apps, ramp, sr).await
        }
        "redis-relayed" => {
            let apps = c.webhook_apps().await?;
            let mut sys = Redis::start(n).await?;
            sys.relay(c.bench, &urls(&apps)).await?;
            exercise(sys, args, apps, ramp, sr).await
        }
        "nats" => {
            let sys = Nats::start(n).await?;
            let addr = sys.addr;
            let how = |_| Receive::Nats(addr, nats_sys::SUBJECT);
            let apps = apps::start_all(c.runner, n, how).await?;
            exercise(sys, args, apps, ramp, sr).await
        }
        _ => {
            let apps = c.webhook_apps().await?;
            let sys = Serf::start(c.bench, &c.dir, &urls(&apps)).await?;
            exercise(sys, args, apps, ramp, sr).await
        }
    }
}

/// One system at one N: the latency run, then (at the smallest N) the
/// ramp and the memory figures. Stops the system.
async fn exercise<S: UnderTest>(
    sys: S,
    args: &Args,
    apps: Vec<App>,
    ramp: Option<Vec<f64>>,
    sr: &mut SystemResults,
) -> anyhow::Result<RunResult> {
    let sys = Arc::new(sys);
    let outcome = exercise_with(&sys, args, &apps, ramp, sr).await;
    // The apps first: a broker gone under its subscribers makes them log
    // reconnect attempts.
    apps::stop_all(apps).await;
    match Arc::try_unwrap(sys) {
        Ok(sys) => sys.stop().await,
        Err(_) => anyhow::bail!("the system is still in use"),
    }
    outcome
}

async fn exercise_with<S: UnderTest>(
    sys: &Arc<S>,
    args: &Args,
    receivers: &[App],
    ramp: Option<Vec<f64>>,
    sr: &mut SystemResults,
) -> anyhow::Result<RunResult> {
    let n = receivers.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pids = sys.pids();
    let (rss_idle_kib, _) = rss_kib(pids[0]);

    // Warm up (connections, pools), unmeasured.
    let warm = workload::open_loop(sys.clone(), args.rate, 0..20, |k| origin(k, n)).await;
    let from = workload::cursors(receivers);
    workload::collect(
        &warm.pubs,
        receivers,
        &from,
        Duration::from_secs(30),
        Duration::from_secs(5),
    )
    .await;

    let app_pids: Vec<u32> = receivers.iter().filter_map(App::pid).collect();
    let cpu_before = cpu_of(&pids);
    let app_cpu_before = cpu_of(&app_pids);
    let sent_before = sys.events_sent().await;
    let from = workload::cursors(receivers);
    let published = workload::open_loop(sys.clone(), args.rate, 100..100 + args.events, |k| {
        origin(k, n)
    })
    .await;
    let got = workload::collect(
        &published.pubs,
        receivers,
        &from,
        Duration::from_secs(60),
        Duration::from_secs(10),
    )
    .await;
    let latency = workload::measure(&published, &got);
    // Let the work after the last arrivals (the apps' answers, the
    // sidecars' acknowledgements) finish inside the CPU window.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cpu = cpu_of(&pids) - cpu_before;
    let app_cpu = cpu_of(&app_pids) - app_cpu_before;
    let frames = match (sent_before, sys.events_sent().await) {
        (Some(a), Some(b)) if latency.events > 0 => {
            Some(round3((b - a) / (latency.events * (n - 1)) as f64))
        }
        _ => None,
    };
    let confirm = if args.confirm_events > 0 {
        let first = 100 + args.events;
        confirm_run(
            sys,
            args.rate,
            first..first + args.confirm_events,
            receivers,
        )
        .await
    } else {
        None
    };
    let cpu_figures = if args.cpu_nodes.contains(&n) && sr.system != "serf" {
        let first = 1_000_000;
        Some(
            crate::cpu::measure(
                sys,
                &pids,
                receivers,
                &args.cpu_rates,
                args.cpu_seconds,
                first,
                |k| origin(k, n),
            )
            .await,
        )
    } else {
        None
    };
    let run = RunResult {
        nodes: n,
        confirm,
        cpu: cpu_figures,
        cpu_seconds_per_1000_events: round3(cpu * 1000.0 / args.events as f64),
        app_cpu_seconds_per_1000_events: round3(app_cpu * 1000.0 / args.events as f64),
        payload_frames_per_event_per_peer: frames,
        rss_idle_kib,
        latency,
    };

    if let Some(rates) = ramp {
        sr.rss_idle_kib = rss_idle_kib;
        let mut next = 100 + args.events;
        for rate in rates {
            let mut step = ramp_step(sys, rate, args.ramp_seconds, next, receivers).await;
            next += step.latency.events as u64 + step.latency.refused;
            step.rss_peak_kib = rss_kib(pids[0]).1;
            eprintln!(
                "  ramp {rate}/s: achieved {:.0}/s, p99 {} ms, lost {}, RSS peak {} KiB: {}",
                step.achieved_rate,
                step.latency.time_to_all_p99_ms,
                step.latency.lost,
                step.rss_peak_kib,
                step.why_not.as_deref().unwrap_or("passed")
            );
            let passed = step.passed;
            // No plot draws a ramp step's samples (tens of thousands each),
            // so results.json does not keep them.
            step.latency.time_to_all = Vec::new();
            // Under load means at the highest rate that passed (a step
            // that failed may have queued without bound upstream).
            if passed || sr.rss_peak_kib == 0 {
                sr.rss_peak_kib = step.rss_peak_kib;
            }
            sr.ramp.push(step);
            if !passed {
                break;
            }
            sr.max_sustained_rate = Some(rate);
        }
    }
    Ok(run)
}

/// Publishes at `rate` at node 0 for `seconds`; passes with no refusal,
/// loss or duplicate, p99 time-to-all under 10 ms, and the rate met.
async fn ramp_step<S: UnderTest>(
    sys: &Arc<S>,
    rate: f64,
    seconds: f64,
    first: u64,
    receivers: &[App],
) -> RampStep {
    let count = (rate * seconds).round().max(1.0) as u64;
    let from = workload::cursors(receivers);
    let published = workload::open_loop(sys.clone(), rate, first..first + count, |_| 0).await;
    let got = workload::collect(
        &published.pubs,
        receivers,
        &from,
        Duration::from_secs(30),
        Duration::from_secs(5),
    )
    .await;
    let latency = workload::measure(&published, &got);
    let span = published
        .pubs
        .iter()
        .map(|p| p.accepted)
        .max()
        .zip(published.pubs.iter().map(|p| p.issued).min())
        .map_or(0.0, |(last, first)| {
            last.duration_since(first).as_secs_f64()
        });
    let achieved_rate = if span > 0.0 {
        published.pubs.len() as f64 / span
    } else {
        0.0
    };
    let why_not = judge(&latency, rate, achieved_rate);
    RampStep {
        rate,
        rss_peak_kib: 0,
        achieved_rate: achieved_rate.round(),
        passed: why_not.is_none(),
        why_not,
        latency,
    }
}

fn judge(l: &Latency, rate: f64, achieved: f64) -> Option<String> {
    if l.refused > 0 {
        let why = l
            .refusals
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or("", |(w, _)| w.as_str());
        Some(format!("{} publishes refused ({why})", l.refused))
    } else if l.lost > 0 {
        Some(format!("{} deliveries lost", l.lost))
    } else if l.duplicated > 0 {
        Some(format!("{} deliveries duplicated", l.duplicated))
    } else if l.time_to_all_p99_ms.is_nan() || l.time_to_all_p99_ms >= 10.0 {
        Some(format!("p99 time-to-all {} ms", l.time_to_all_p99_ms))
    } else if achieved < 0.95 * rate {
        Some(format!("only {achieved:.0}/s accepted"))
    } else {
        None
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Publishes `ks` open-loop at `rate` at random nodes, each waiting for its
/// confirmation: how long each took from the publish call, beside the
/// time-to-all of the same events (from the publish call too). `None` for
/// a system without confirmations.
async fn confirm_run<S: UnderTest>(
    sys: &Arc<S>,
    rate: f64,
    ks: std::ops::Range<u64>,
    receivers: &[App],
) -> Option<ConfirmFigures> {
    let n = receivers.len();
    let from = workload::cursors(receivers);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, k) in ks.enumerate() {
        let sys = sys.clone();
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            let issued = tokio::time::Instant::now();
            let node = origin(k, n);
            let r = sys.publish_confirmed(node, k).await?;
            Some((r, node, issued, tokio::time::Instant::now()))
        });
    }
    let mut published = workload::Published {
        pubs: Vec::new(),
        refused: 0,
        refusals: Default::default(),
        late: 0,
    };
    let mut times = Vec::new();
    let mut unconfirmed = 0;
    while let Some(r) = tasks.join_next().await {
        let (r, node, issued, answered) = r.ok()??;
        match r {
            Ok((id, confirmed)) => {
                if confirmed {
                    times.push(answered.duration_since(issued).as_secs_f64() * 1e3);
                } else {
                    unconfirmed += 1;
                }
                published.pubs.push(workload::Publication {
                    id,
                    origin: node,
                    issued,
                    accepted: answered,
                });
            }
            Err(why) => {
                published.refused += 1;
                *published.refusals.entry(why).or_default() += 1;
            }
        }
    }
    let got = workload::collect(
        &published.pubs,
        receivers,
        &from,
        Duration::from_secs(30),
        Duration::from_secs(5),
    )
    .await;
    let l = workload::measure(&published, &got);
    times.sort_by(f64::total_cmp);
    Some(ConfirmFigures {
        events: published.pubs.len(),
        unconfirmed,
        confirm_p50_ms: workload::percentile(&times, 0.5),
        confirm_p99_ms: workload::percentile(&times, 0.99),
        time_to_all_p50_ms: l.issued_time_to_all_p50_ms,
        time_to_all_p99_ms: l.issued_time_to_all_p99_ms,
        lost: l.lost,
    })
}

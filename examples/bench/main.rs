//! `cargo run --release --example bench`: hearsay side by side with Redis
//! pub/sub, NATS core and Serf user events, on this machine, in one run,
//! each run the way its users run it.
//!
//! For each system and each N it starts the system on loopback and N app
//! processes (`app.py`: the same Python program for every system but for
//! how it receives: hearsay's webhook or stream, Redis SUBSCRIBE, a NATS
//! subscription), publishes an open-loop stream at random nodes, and
//! measures when each app got each event. At the smallest N it also ramps
//! the publish rate at one node to find the highest rate with p99
//! time-to-all under 10 ms and no loss. It writes `report.md`,
//! `results.json` and SVG plots.

mod apps;
mod callgrind;
mod cpu;
mod hearsay_sys;
mod install;
mod nats_sys;
mod plot;
mod post;
mod procinfo;
mod redis_sys;
mod report;
mod results;
mod serf_sys;
mod suite;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "hearsay vs Redis pub/sub, NATS core and Serf, on loopback")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    args: suite::Args,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Subscribes to Redis and relays to a webhook (redis-relayed)
    #[command(hide = true)]
    RedisSubscriber { redis: SocketAddr, webhook: String },
    /// What Serf runs per user event: posts the payload to a webhook
    #[command(hide = true)]
    SerfHandler { webhook: String },
    /// Instructions one sidecar spends receiving and delivering events from
    /// one peer, counted by valgrind's callgrind (repeatable, unlike time)
    Callgrind {
        /// Events to send through it
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// The hearsay binary (default: built next to this one with cargo)
        #[arg(long)]
        hearsay: Option<PathBuf>,
        /// Do not apt-get install valgrind when missing
        #[arg(long)]
        no_install: bool,
    },
    /// Writes report.md and the plots again from a run's results.json
    Report {
        /// The directory holding results.json
        #[arg(long, default_value = "docs/bench")]
        out: PathBuf,
    },
}

/// A port that was free a moment ago on 127.0.0.1 (for TCP and UDP), for
/// programs that must be told one: redis-server and serf.
pub fn free_port() -> std::io::Result<u16> {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.cmd {
        Some(Cmd::SerfHandler { webhook }) => serf_sys::handler(&webhook),
        Some(Cmd::Callgrind {
            events,
            hearsay,
            no_install,
        }) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(callgrind(events, hearsay, !no_install))),
        Some(Cmd::Report { out }) => rerender(&out),
        Some(Cmd::RedisSubscriber { redis, webhook }) => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(redis_sys::subscriber(redis, webhook)))
        }
        None => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run(cli.args))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn callgrind(events: u64, hearsay: Option<PathBuf>, install: bool) -> anyhow::Result<()> {
    let bench = std::env::current_exe()?;
    let hearsay = match hearsay {
        Some(p) => p,
        None => suite::build_hearsay(&bench)?,
    };
    let dir = std::env::temp_dir().join(format!("hearsay-callgrind-{}", std::process::id()));
    let counted = callgrind::count(&hearsay, events, install, &dir).await?;
    if std::env::var_os("HEARSAY_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "{} events from one peer: {} instructions, {:.0} per event",
        counted.events, counted.instructions, counted.instructions_per_event
    );
    println!("{}", serde_json::to_string(&counted)?);
    Ok(())
}

async fn run(args: suite::Args) -> anyhow::Result<()> {
    let bench = std::env::current_exe()?;
    let hearsay = match &args.hearsay {
        Some(p) => p.clone(),
        None => suite::build_hearsay(&bench)?,
    };
    let (systems, notes) = install::ensure(!args.no_install);
    let out: PathBuf = args.out.clone();
    // Dropping the run on a signal kills every process it started.
    let mut signals = hearsay::shutdown::Signals::listen();
    let results = tokio::select! {
        r = suite::run_all(&args, &bench, &hearsay, &systems, notes) => r?,
        s = signals.recv() => anyhow::bail!("interrupted by {s}"),
    };
    std::fs::create_dir_all(&out)?;
    let json = serde_json::to_string_pretty(&results)?;
    std::fs::write(out.join("results.json"), json + "\n")?;
    write_report(&results, &out)
}

/// `bench report`: report.md and the plots from a results.json.
fn rerender(out: &std::path::Path) -> anyhow::Result<()> {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let results: results::Results = serde_json::from_str(&text)?;
    write_report(&results, out)
}

/// Writes report.md and the plots into `out` and prints the report.
fn write_report(results: &results::Results, out: &std::path::Path) -> anyhow::Result<()> {
    // Plots of earlier runs with other N would be stale.
    for old in std::fs::read_dir(out)?.flatten() {
        let name = old.file_name().to_string_lossy().into_owned();
        if name.starts_with("latency-cdf") && name.ends_with(".svg") {
            std::fs::remove_file(old.path())?;
        }
    }
    let mut plots = Vec::new();
    for n in results.node_counts() {
        let name = format!("latency-cdf-n{n}.svg");
        plot::latency_cdf(results, n, &out.join(&name))?;
        plots.push(name);
    }
    plot::time_to_all_vs_n(results, &out.join("time-to-all.svg"))?;
    plots.push("time-to-all.svg".into());
    if results.has_cpu() {
        plot::cpu_per_event(results, &out.join("cpu-per-event.svg"))?;
        plots.push("cpu-per-event.svg".into());
    }
    let md = report::markdown(results);
    std::fs::write(out.join("report.md"), &md)?;
    println!("{md}");
    eprintln!(
        "wrote report.md, results.json and {} in {}",
        plots.join(", "),
        out.display()
    );
    Ok(())
}

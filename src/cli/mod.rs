//! The command line: one subcommand per job, each in its own file.

pub mod client_cmds;
pub mod run;
pub mod simulate;
pub mod subscribe;

use clap::{Parser, Subcommand};

use crate::settings::RunArgs;

#[derive(Debug, Parser)]
#[command(
    name = "hearsay",
    version,
    about = "Cache-invalidation sidecar: gossips invalidations and config to every replica"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar.
    Run(Box<RunArgs>),
    /// Publish an invalidation through a running sidecar.
    Publish(client_cmds::PublishArgs),
    /// Read or change config values through a running sidecar.
    Config(client_cmds::ConfigArgs),
    /// List a running sidecar's peers.
    Peers(client_cmds::ListArgs),
    /// Show a running sidecar's status.
    Status(client_cmds::ListArgs),
    /// Print a running sidecar's events as they arrive (a subscription
    /// stream; needs --delivery stream or both).
    Subscribe(subscribe::SubscribeArgs),
    /// Start a local cluster of sidecars, publish, and report who got what.
    Demo(crate::demo::DemoArgs),
    /// Serve a webhook that logs every event it receives (the example app).
    Receiver(ReceiverArgs),
    /// Run the gossip core for many nodes in a deterministic simulation.
    Simulate(simulate::SimulateArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReceiverArgs {
    /// Where to listen for hearsay's webhook
    #[arg(long, env = "HEARSAY_RECEIVER_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// A bad flag, variable or setting (exit 64, EX_USAGE).
    Usage(String),
    /// It ran, and what it measured missed its promise: pairs undelivered
    /// or duplicated (exit 2).
    Unmet(String),
    /// A publish with --wait that not every replica confirmed in time, or
    /// that one rejected (exit 75, EX_TEMPFAIL).
    Unconfirmed(String),
    /// Anything else (exit 1).
    Runtime(anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 64,
            Failure::Unmet(_) => 2,
            Failure::Unconfirmed(_) => 75,
            Failure::Runtime(_) => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Unmet(m) | Failure::Unconfirmed(m) => write!(f, "{m}"),
            Failure::Runtime(e) => write!(f, "{e:#}"),
        }
    }
}

/// The sidecar's runtime: one thread. Its work per event is small and
/// sequential (one owner task holds the protocol), so a second worker
/// mostly added wake-ups across threads: a futex and an epoll round per
/// hand-off, several per event. The blocking pool (file and DNS lookups)
/// still has its own threads.
pub fn sidecar_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The async runtime for the demo and the receiver: two worker threads.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON.
pub fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs a client command on a small runtime.
pub fn client<F>(f: F) -> Result<(), Failure>
where
    F: std::future::Future<Output = Result<(), crate::client::ClientError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.into()))?;
    rt.block_on(f).map_err(|e| Failure::Runtime(e.into()))
}

/// Dispatches a parsed command line.
pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Publish(a) => {
            let mut waited = client_cmds::Waited::NotAsked;
            client(async {
                waited = client_cmds::publish(&a).await?;
                Ok(())
            })?;
            match waited {
                // The summary is on stdout already.
                client_cmds::Waited::Unconfirmed(_) => {
                    Err(Failure::Unconfirmed("not every replica confirmed".into()))
                }
                _ => Ok(()),
            }
        }
        Command::Config(a) => client(client_cmds::config(&a)),
        Command::Peers(a) => client(client_cmds::peers(&a)),
        Command::Status(a) => client(client_cmds::status(&a)),
        Command::Subscribe(a) => client(subscribe::run(&a)),
        Command::Demo(a) => {
            let rt = runtime().map_err(|e| Failure::Runtime(e.into()))?;
            let report = rt.block_on(crate::demo::run(a)).map_err(Failure::Runtime)?;
            if report.deliveries == report.deliveries_expected && report.duplicates == 0 {
                Ok(())
            } else {
                Err(Failure::Unmet(format!(
                    "{} of {} deliveries, {} duplicates",
                    report.deliveries, report.deliveries_expected, report.duplicates
                )))
            }
        }
        Command::Receiver(a) => {
            init_logging(false);
            let rt = runtime().map_err(|e| Failure::Runtime(e.into()))?;
            rt.block_on(async {
                let mut signals = crate::shutdown::Signals::listen();
                let r = crate::receiver::Receiver::start(a.listen, true)
                    .await
                    .map_err(|e| {
                        Failure::Runtime(anyhow::anyhow!("cannot listen on {}: {e}", a.listen))
                    })?;
                tracing::info!(url = %r.url(), "receiving hearsay events; Ctrl-C stops");
                signals.recv().await;
                r.stop().await;
                Ok(())
            })
        }
        Command::Simulate(a) => {
            let report = simulate::run(&a)?;
            if report.undelivered == 0 {
                Ok(())
            } else {
                Err(Failure::Unmet(format!(
                    "{} pairs undelivered",
                    report.undelivered
                )))
            }
        }
    }
}

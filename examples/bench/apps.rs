//! The apps: one `app.py` process per node, the same program for every
//! system but for how it receives (hearsay's webhook or stream, Redis
//! SUBSCRIBE, a NATS subscription). Each stamps every event with
//! CLOCK_MONOTONIC as it arrives and prints it; a task here reads the
//! lines into the app's list of arrivals.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use nix::time::{ClockId, clock_gettime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How an app receives.
#[derive(Clone, Debug)]
pub enum Receive {
    /// Serves the webhook on an ephemeral port.
    Webhook,
    /// Reads `GET /v1/subscribe` of the sidecar at this local API.
    Stream(std::net::SocketAddr),
    /// SUBSCRIBEs to this Redis and channel.
    Redis(std::net::SocketAddr, &'static str),
    /// Subscribes to this NATS server and subject.
    Nats(std::net::SocketAddr, &'static str),
}

/// One event as an app got it.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub id: String,
    pub at: Instant,
}

/// Maps CLOCK_MONOTONIC readings (as `app.py` prints them) onto tokio's
/// `Instant`, which reads the same clock: both are taken back to back once.
#[derive(Copy, Clone)]
struct Monotonic {
    instant: Instant,
    nanos: i128,
}

impl Monotonic {
    fn now() -> anyhow::Result<Monotonic> {
        let ts = clock_gettime(ClockId::CLOCK_MONOTONIC)?;
        let instant = Instant::now();
        Ok(Monotonic {
            instant,
            nanos: i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec()),
        })
    }

    fn instant(&self, nanos: i128) -> Instant {
        let d = nanos - self.nanos;
        let abs = Duration::from_nanos(d.unsigned_abs().min(u128::from(u64::MAX)) as u64);
        if d >= 0 {
            self.instant + abs
        } else {
            self.instant.checked_sub(abs).unwrap_or(self.instant)
        }
    }
}

pub struct App {
    child: Child,
    /// The webhook's URL (webhook apps only).
    pub url: Option<String>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    reader: tokio::task::JoinHandle<()>,
}

/// Where `app.py` is, and the Python that runs it (the bench's venv).
#[derive(Clone, Debug)]
pub struct Runner {
    pub python: PathBuf,
    pub script: PathBuf,
}

impl App {
    pub async fn start(runner: &Runner, how: &Receive) -> anyhow::Result<App> {
        let mut cmd = Command::new(&runner.python);
        cmd.arg("-u").arg(&runner.script);
        match how {
            Receive::Webhook => cmd.arg("webhook"),
            Receive::Stream(api) => cmd.args(["stream", &api.to_string()]),
            Receive::Redis(addr, ch) => cmd.args(["redis", &addr.to_string(), ch]),
            Receive::Nats(addr, subject) => cmd.args(["nats", &addr.to_string(), subject]),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", runner.script.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .with_context(|| format!("an app ({how:?}) was not ready within 20 s"))??
            .with_context(|| format!("an app ({how:?}) exited before it was ready"))?;
        let mut words = first.split_whitespace();
        anyhow::ensure!(
            words.next() == Some("ready"),
            "an app said {first:?} instead of ready"
        );
        let url = match how {
            Receive::Webhook => {
                let port = words.next().context("the webhook app named no port")?;
                Some(format!("http://127.0.0.1:{port}/hearsay"))
            }
            _ => None,
        };
        let clock = Monotonic::now()?;
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let into = arrivals.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Some((id, at)) = line.split_once(' ') else {
                    continue;
                };
                let Ok(nanos) = at.parse::<i128>() else {
                    continue;
                };
                let a = Arrival {
                    id: id.to_owned(),
                    at: clock.instant(nanos),
                };
                into.lock().unwrap_or_else(|e| e.into_inner()).push(a);
            }
        });
        Ok(App {
            child,
            url,
            arrivals,
            reader,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn count(&self) -> usize {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The arrivals from the `start`-th on.
    pub fn events_from(&self, start: usize) -> Vec<Arrival> {
        let a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        a.get(start..).map(<[Arrival]>::to_vec).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.reader.abort();
    }
}

/// Starts `n` apps that receive the same way (`how(i)` for node `i`).
pub async fn start_all(
    runner: &Runner,
    n: usize,
    how: impl Fn(usize) -> Receive,
) -> anyhow::Result<Vec<App>> {
    let mut apps = Vec::with_capacity(n);
    for i in 0..n {
        apps.push(App::start(runner, &how(i)).await?);
    }
    Ok(apps)
}

pub async fn stop_all(apps: Vec<App>) {
    for a in apps {
        a.stop().await;
    }
}

/// The venv the apps run in, made from `requirements.txt` next to
/// `app.py` the first time (redis-py and nats-py from PyPI).
pub fn runner(target: &Path) -> anyhow::Result<Runner> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench");
    let venv = target.join("bench-venv");
    let python = venv.join("bin/python");
    let requirements = here.join("requirements.txt");
    let stamp = venv.join("installed.txt");
    let wanted = std::fs::read_to_string(&requirements)?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("making the apps' venv at {}", venv.display());
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        anyhow::ensure!(ok, "python3 -m venv {} failed", venv.display());
        let ok = std::process::Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(&requirements)
            .status()
            .is_ok_and(|s| s.success());
        anyhow::ensure!(ok, "pip install -r {} failed", requirements.display());
        std::fs::write(&stamp, wanted)?;
    }
    Ok(Runner {
        python,
        script: here.join("app.py"),
    })
}

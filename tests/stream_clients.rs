//! The README's subscriber examples (`examples/subscribers/`: Python with
//! the standard library, Go, Node.js) run against a stream-mode sidecar:
//! each prints the opening flush and the events, and when its connection
//! is cut (by a proxy between it and the sidecar) it reconnects with its
//! `Last-Event-ID`, resumes with no flush and misses nothing.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/subscribers")
        .join(name)
}

/// A TCP proxy whose connections can all be cut at once.
struct Proxy {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            conns,
            accept,
        }
    }

    /// Closes every open connection (both sockets drop with the task).
    fn cut(&self) {
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A running example: its stdout lines (CloudEvents) and stderr lines.
struct Client {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn start(mut cmd: Command, api: SocketAddr) -> Client {
        let mut child = cmd
            .env("HEARSAY_API", api.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the example");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let pipe = |r: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    into: Arc<Mutex<Vec<String>>>| {
            tokio::spawn(async move {
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    into.lock().unwrap().push(l);
                }
            })
        };
        pipe(Box::new(child.stdout.take().unwrap()), out.clone());
        pipe(Box::new(child.stderr.take().unwrap()), err.clone());
        Client { child, out, err }
    }

    fn events(&self) -> Vec<serde_json::Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    fn count(&self, id: &str) -> usize {
        self.events().iter().filter(|e| e["id"] == id).count()
    }

    fn said(&self, line: &str) -> bool {
        self.err.lock().unwrap().iter().any(|l| l == line)
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }
}

/// Runs one example through a cut connection.
async fn resumes_after_a_cut(name: &str, cmd: Command) {
    let (c, _recv) = cluster(name, 2, &["--delivery", "stream"]).await;
    c.wait_all_see_all(WAIT).await.unwrap();
    let proxy = Proxy::start(c.node(1).unwrap().ready.api).await;
    let mut client = Client::start(cmd, proxy.addr);
    eventually(WAIT, "the stream opens with a flush", || async {
        client.said("stream new") && !client.events().is_empty()
    })
    .await;
    let first = &client.events()[0];
    assert_eq!(first["type"], "dev.hearsay.flush");
    assert_eq!(first["data"]["reason"], "subscribe");

    let before = publish(&c, 0, "before").await;
    eventually(WAIT, "the first event", || async {
        client.count(&before) == 1
    })
    .await;

    proxy.cut();
    let during = publish(&c, 0, "during").await;
    eventually(WAIT, "a resumed stream", || async {
        client.said("stream resumed")
    })
    .await;
    let after = publish(&c, 0, "after").await;
    eventually(WAIT, "the events from the cut on", || async {
        client.count(&during) == 1 && client.count(&after) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = client.events();
    let flushes = events
        .iter()
        .filter(|e| e["type"] == "dev.hearsay.flush")
        .count();
    assert_eq!(flushes, 1, "only the opening flush: {}", client.stderr());
    let ids: Vec<&str> = events[1..]
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&before, &during, &after], "each once, in order");
    assert_eq!(events[1]["data"]["keys"][0], "before");
    let _ = client.child.kill().await;
    drop(proxy);
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_keeps_its_last_event_id() {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg(example("subscriber.py"));
    resumes_after_a_cut("client-python", cmd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_example_keeps_its_last_event_id() {
    if let Err(why) = ensure_programs(&[("node", "nodejs")]) {
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let mut cmd = Command::new("node");
    cmd.arg(example("subscriber.js"));
    resumes_after_a_cut("client-node", cmd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_example_keeps_its_last_event_id() {
    if let Err(why) = ensure_programs(&[("go", "golang-go")]) {
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let dir = test_dir("client-go-build");
    let bin = dir.join("subscriber");
    let built = std::process::Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(example("subscriber.go"))
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GO111MODULE", "off")
        .output()
        .expect("run go build");
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    resumes_after_a_cut("client-go", Command::new(&bin)).await;
    let _ = std::fs::remove_dir_all(dir);
}

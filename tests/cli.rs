//! The command line: client commands against a running sidecar, exit codes,
//! settings errors, and `hearsay demo`.

mod common;

use std::process::Output;

use common::*;

async fn hearsay(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.env_clear().args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true).output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_talk_to_a_running_sidecar() {
    let (c, recv) = cluster("cli-client", 2, &[]).await;
    let api = c.node(0).unwrap().ready.api.to_string();
    let out = hearsay(
        &[
            "publish",
            "--api-addr",
            &api,
            "--cache",
            "products",
            "--key",
            "42",
            "--key",
            "43",
            "--tag",
            "t",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout)
        .trim()
        .strip_prefix("published ")
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32);
    eventually(
        std::time::Duration::from_secs(10),
        "published event delivered",
        || async { count(&recv[1], &id) == 1 },
    )
    .await;
    let got = recv[1].events().into_iter().find(|e| e.id == id).unwrap();
    assert_eq!(got.data["keys"], serde_json::json!(["42", "43"]));
    assert_eq!(got.data["tags"], serde_json::json!(["t"]));

    let out = hearsay(&["config", "--api-addr", &api, "set", "color", "blue"], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = hearsay(&["config", "get", "color"], &[("HEARSAY_API_ADDR", &api)]).await;
    assert_eq!(text(&out.stdout).trim(), "blue");
    let out = hearsay(&["config", "--api-addr", &api, "get"], &[]).await;
    assert!(text(&out.stdout).starts_with("color = blue"));
    let out = hearsay(&["config", "--api-addr", &api, "delete", "color"], &[]).await;
    assert!(out.status.success());
    let out = hearsay(&["config", "--api-addr", &api, "get", "color"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404"));

    let out = hearsay(&["peers", "--api-addr", &api], &[]).await;
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("NAME"), "{stdout}");
    assert!(stdout.contains(&c.node(1).unwrap().ready.gossip.to_string()));
    let out = hearsay(&["peers", "--json", "--api-addr", &api], &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);

    let out = hearsay(&["publish", "--api-addr", &api, "--cache", "products"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nothing to invalidate"),
        "{}",
        text(&out.stderr)
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_no_sidecar_to_talk_to_fails_clearly() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = hearsay(&["peers", "--api-addr", &closed], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach the hearsay API"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_exits_64_and_names_it() {
    let out = hearsay(
        &["run", "--insecure"],
        &[("HEARSAY_GOSSIP_ADDR", "not-an-address")],
    )
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("HEARSAY_GOSSIP_ADDR"),
        "{}",
        text(&out.stderr)
    );
    let out = hearsay(&["run", "--gossip-addr", "nope"], &[]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("--gossip-addr"));
    let out = hearsay(&["run"], &[]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("--gossip-key-file"),
        "{}",
        text(&out.stderr)
    );
    let dir = test_dir("cli-bad-file");
    let file = dir.join("hearsay.yaml");
    std::fs::write(&file, "webhook_url: ftp://x/\n").unwrap();
    let out = hearsay(
        &["run", "--insecure", "--config", file.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("webhook_url (settings file)"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_settings_names_each_value_and_its_source() {
    let dir = test_dir("cli-print-settings");
    let file = dir.join("hearsay.toml");
    std::fs::write(&file, "retention = \"45s\"\nreplay_window_ms = 60000\n").unwrap();
    let out = hearsay(
        &[
            "run",
            "--insecure",
            "--config",
            file.to_str().unwrap(),
            "--api-addr",
            "127.0.0.1:7171",
            "--print-settings",
            "--json",
        ],
        &[
            ("HEARSAY_PUBLISH_RATE", "700"),
            ("HEARSAY_API_TOKEN", "s3cret-token"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("s3cret-token"),
        "a secret is printed: {stdout}"
    );
    let all: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let pair = |name: &str| (all[name]["value"].clone(), all[name]["source"].clone());
    use serde_json::json;
    assert_eq!(pair("api_addr"), (json!("127.0.0.1:7171"), json!("flag")));
    assert_eq!(pair("publish_rate"), (json!(700), json!("env")));
    assert_eq!(pair("retention"), (json!("45s"), json!("file")));
    assert_eq!(pair("replay_window"), (json!("60000ms"), json!("file")));
    assert_eq!(
        pair("metrics_addr"),
        (json!("0.0.0.0:9464"), json!("default"))
    );
    assert_eq!(pair("insecure"), (json!(true), json!("flag")));
    assert_eq!(pair("api_token"), (json!("<redacted>"), json!("env")));
    assert_eq!(
        all.as_object().unwrap().len(),
        hearsay::settings::declared::ALL.len()
    );
    assert!(
        text(&out.stderr).contains("replay_window_ms is deprecated"),
        "{}",
        text(&out.stderr)
    );

    // Two bad settings from two sources: both reported, exit 64, nothing starts.
    let out = hearsay(
        &[
            "run",
            "--insecure",
            "--config",
            file.to_str().unwrap(),
            "--publish-rate",
            "0",
        ],
        &[("HEARSAY_WEBHOOK_TIMEOUT", "soon")],
    )
    .await;
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(err.contains("2 invalid settings"), "{err}");
    assert!(
        err.contains("--publish-rate") && err.contains("HEARSAY_WEBHOOK_TIMEOUT"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_ten_nodes_delivers_everything_once() {
    let out = hearsay(
        &[
            "demo", "--nodes", "10", "--events", "100", "--rate", "200", "--json",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["nodes"], 10);
    assert_eq!(r["events"], 100);
    assert_eq!(r["deliveries_expected"], 900);
    assert_eq!(r["deliveries"], r["deliveries_expected"]);
    assert_eq!(r["duplicates"], 0);
    assert_eq!(r["config_converged"], true);
    assert!(r["time_to_all_p99_ms"].as_f64().unwrap() > 0.0);
}

/// `kill` (SIGTERM) stops the demo like Ctrl-C does: every sidecar it
/// started goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_demo_and_every_sidecar_it_started() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

    let mut child = tokio::process::Command::new(binary())
        .args(["demo", "--nodes", "3", "--events", "10", "--rate", "100"])
        .arg("--keep-running")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("keeps running") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(waited, Ok(true), "the demo never said it keeps running");
    // Keep draining stderr so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    let mut summary = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 8192];
    // The summary is written before the "keeps running" line.
    while !summary.contains("metrics\n") || summary.matches("node-").count() < 3 {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stdout.read(&mut buf))
            .await
            .expect("the summary lists every node")
            .unwrap();
        assert!(n > 0, "stdout ended early: {summary}");
        summary.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let addrs: Vec<std::net::SocketAddr> = summary
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("http://"))
        .filter_map(|w| w.split('/').next()?.parse().ok())
        .collect();
    assert_eq!(
        addrs.len(),
        6,
        "an api and a metrics address per node: {summary}"
    );
    for a in &addrs {
        assert!(std::net::TcpStream::connect(a).is_ok(), "{a} is not up");
    }

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("the demo stops within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    for a in &addrs {
        assert!(
            std::net::TcpStream::connect(a).is_err(),
            "{a} still answers after the demo stopped"
        );
    }
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs nothing).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

type StderrLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

/// Starts a `--keep-running` demo of 3 nodes and reads its stderr until it
/// says it keeps running. Returns it (stdout not taken), the rest of its
/// stderr, and the directory it named.
async fn kept_demo(
    stdout: std::process::Stdio,
) -> (tokio::process::Child, StderrLines, std::path::PathBuf) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(binary())
        .args(["demo", "--nodes", "3", "--events", "10", "--rate", "100"])
        .arg("--keep-running")
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut dir = None;
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(rest) = line.split("logs and files in ").nth(1) {
                dir = Some(std::path::PathBuf::from(rest.trim_end_matches(')')));
            }
            if line.contains("keeps running") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(waited, Ok(true), "the demo never said it keeps running");
    (child, stderr, dir.expect("the demo names its directory"))
}

/// A kept-running demo and its sidecars' pids, read from the ready files
/// in its directory.
async fn running_demo(stdout: std::process::Stdio) -> (tokio::process::Child, Vec<u32>) {
    let (child, mut stderr, dir) = kept_demo(stdout).await;
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let pids: Vec<u32> = (0..3)
        .map(|i| {
            let ready: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join(format!("node-{i}.json"))).unwrap())
                    .unwrap();
            ready["pid"].as_u64().unwrap() as u32
        })
        .collect();
    assert!(pids.iter().all(|p| !gone(*p)), "the sidecars run");
    (child, pids)
}

async fn sidecars_stop(pids: &[u32], how: &str) {
    eventually(
        std::time::Duration::from_secs(20),
        &format!("every sidecar stops after {how}"),
        || async { pids.iter().all(|p| gone(*p)) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn however_the_demo_ends_its_sidecars_end_too() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    // A closed terminal.
    let (mut demo, pids) = running_demo(std::process::Stdio::null()).await;
    kill(Pid::from_raw(demo.id().unwrap() as i32), Signal::SIGHUP).unwrap();
    let _ = demo.wait().await;
    sidecars_stop(&pids, "SIGHUP").await;
    // A demo killed outright (as a panic with panic=abort, or the OOM
    // killer, would end it): nothing of it runs to clean up.
    let (mut demo, pids) = running_demo(std::process::Stdio::null()).await;
    kill(Pid::from_raw(demo.id().unwrap() as i32), Signal::SIGKILL).unwrap();
    let _ = demo.wait().await;
    sidecars_stop(&pids, "SIGKILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_whose_stdout_is_closed_fails_cleanly_and_stops_its_sidecars() {
    // `hearsay demo | true`: the reader is gone before the summary.
    let mut child = tokio::process::Command::new(binary())
        .args(["demo", "--nodes", "3", "--events", "10", "--rate", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the demo ends")
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(stderr.contains("cannot write the summary"), "{stderr}");
    let dir = stderr
        .split("logs and files in ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the demo names its directory");
    let dir = std::path::Path::new(dir);
    for i in 0..3 {
        let bytes = std::fs::read(dir.join(format!("node-{i}.json"))).unwrap();
        let ready: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let pid = ready["pid"].as_u64().unwrap() as u32;
        sidecars_stop(&[pid], "a closed stdout").await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_app_shows_in_the_status_and_the_log() {
    // An app that is not listening: its port was just closed.
    let gone = receivers(1).await.pop().unwrap();
    let url = gone.url();
    gone.stop().await;
    let c = hearsay::demo::cluster::LocalCluster::start(
        options("cli-unreachable", &[]),
        std::slice::from_ref(&url),
    )
    .await
    .unwrap();
    let api = c.node(0).unwrap().ready.api.to_string();
    eventually(
        std::time::Duration::from_secs(10),
        "the status names the connection error",
        || async {
            let s: serde_json::Value = c
                .api(0)
                .json(hyper::Method::GET, "/v1/status", None)
                .await
                .unwrap();
            s["webhook"]["state"] == "waiting"
                && s["webhook"]["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Connection refused"))
                && s["webhook"]["since"]
                    .as_str()
                    .is_some_and(|t| t.ends_with('Z'))
        },
    )
    .await;
    let out = hearsay(&["status", "--api-addr", &api], &[]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("webhook.state") && stdout.contains("waiting"),
        "{stdout}"
    );
    assert!(stdout.contains("Connection refused"), "{stdout}");
    let log = std::fs::read_to_string(&c.node(0).unwrap().log).unwrap();
    let warn = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("has not answered"))
        .unwrap_or_else(|| panic!("a WARN line:\n{log}"));
    assert!(
        warn.contains(&url) && warn.contains("Connection refused"),
        "{warn}"
    );
    // Rate-limited: one line for the many attempts so far.
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("has not answered"))
            .count(),
        1,
        "{log}"
    );
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_gossip_key_shows_auth_failing() {
    use hearsay::demo::cluster::{LocalCluster, NodeSpec};
    let recv = receivers(3).await;
    let mut c = LocalCluster::new(options("cli-wrong-key", &[])).unwrap();
    let other_key = c.dir().join("other-key");
    std::fs::write(&other_key, "another-key-0123456789abcdef0123456789").unwrap();
    for (i, r) in recv.iter().enumerate() {
        let mut args = Vec::new();
        if i == 2 {
            args = vec![
                "--gossip-key-file".to_owned(),
                other_key.display().to_string(),
            ];
        }
        c.add(NodeSpec {
            webhook_url: r.url(),
            args,
            ..NodeSpec::default()
        })
        .await
        .unwrap();
    }
    c.wait_all_see_all(std::time::Duration::from_secs(20))
        .await
        .unwrap();
    // Traffic both ways: each publishes, and anti-entropy runs anyway.
    for i in 0..3 {
        publish(&c, i, "k").await;
    }
    let auth_of = |peers: &[hearsay::commands::PeerInfo], name: &str| {
        let gossip = name.to_owned();
        peers
            .iter()
            .find(|p| p.address == gossip)
            .map(|p| p.auth.clone())
    };
    let addr = |i: usize| c.node(i).unwrap().ready.gossip.to_string();
    eventually(
        std::time::Duration::from_secs(15),
        "node 0 sees node 2 failing, node 1 ok; node 2 sees both failing",
        || async {
            let p0 = c.peers_of(0).await.unwrap();
            let p2 = c.peers_of(2).await.unwrap();
            auth_of(&p0, &addr(2)).as_deref() == Some("failing")
                && auth_of(&p0, &addr(1)).as_deref() == Some("ok")
                && auth_of(&p2, &addr(0)).as_deref() == Some("failing")
                && auth_of(&p2, &addr(1)).as_deref() == Some("failing")
        },
    )
    .await;
    let api = c.node(0).unwrap().ready.api.to_string();
    let out = hearsay(&["peers", "--api-addr", &api], &[]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("AUTH") && stdout.contains("failing"),
        "{stdout}"
    );
    assert!(stdout.contains("same gossip key"), "a hint: {stdout}");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_address_goes_anywhere_on_the_line_in_any_form_the_demo_prints() {
    let (c, _recv) = cluster("cli-api-addr", 1, &[]).await;
    let addr = c.node(0).unwrap().ready.api;
    let forms = [
        addr.to_string(),
        format!("http://{addr}"),
        format!("http://{addr}/"),
        format!("localhost:{}", addr.port()),
    ];
    for (i, a) in forms.iter().enumerate() {
        let key = format!("k{i}");
        // After the subcommand's own subcommand, where it failed before.
        let out = hearsay(&["config", "set", &key, "v", "--api-addr", a], &[]).await;
        assert!(out.status.success(), "{a}: {}", text(&out.stderr));
        let out = hearsay(&["config", "--api-addr", a, "get", &key], &[]).await;
        assert_eq!(text(&out.stdout).trim(), "v", "{a}: {}", text(&out.stderr));
        for cmd in [
            &["status"][..],
            &["peers"],
            &["publish", "--cache", "c", "--all"],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--api-addr", a]);
            let out = hearsay(&args, &[]).await;
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        }
    }
    let out = hearsay(&["status", "--api-addr", "https://x:1/"], &[]).await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_usage_errors_exit_64_before_anything_starts() {
    for args in [
        &["demo", "--nodes", "1"][..],
        &["demo", "--rate", "0"],
        &["demo", "--rate", "-3"],
    ] {
        let out = hearsay(args, &[]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(!stderr.contains("starting"), "nothing started: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_tells_bad_arguments_from_a_missed_promise() {
    let out = hearsay(&["simulate", "--nodes", "1"], &[]).await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nodes"), "{}", text(&out.stderr));
    let out = hearsay(&["simulate", "--nodes", "20", "--events", "20"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_running_demo_prints_deliveries_as_they_happen_and_keeps_its_directory() {
    let (mut child, mut stderr, dir) = kept_demo(std::process::Stdio::null()).await;
    let within = std::time::Duration::from_secs(60);
    let ready: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("node-0.json")).unwrap()).unwrap();
    let api = ready["api"].as_str().unwrap().to_owned();
    let out = hearsay(
        &[
            "publish",
            "--cache",
            "live",
            "--key",
            "1",
            "--api-addr",
            &api,
        ],
        &[],
    )
    .await;
    let id = text(&out.stdout)
        .trim()
        .trim_start_matches("published ")
        .to_owned();
    assert_eq!(id.len(), 32, "{}", text(&out.stdout));
    let mut got = 0;
    tokio::time::timeout(within, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("got dev.hearsay.invalidate") && line.contains(&id) {
                got += 1;
                if got == 2 {
                    return;
                }
            }
        }
    })
    .await
    .expect("both other nodes' deliveries are printed");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(within, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.join("node-0.log").exists(), "the directory is kept");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearsay_subscribe_prints_the_stream_one_line_per_record() {
    let (c, _recv) = cluster("cli-subscribe", 2, &["--delivery", "stream"]).await;
    c.wait_all_see_all(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let api = c.node(1).unwrap().ready.api.to_string();
    let sub = |json: bool| {
        let mut cmd = tokio::process::Command::new(binary());
        cmd.env_clear()
            .args(["subscribe", "--api-addr", &api, "--count", "2"])
            .args(json.then_some("--json"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn().unwrap()
    };
    let (text_sub, json_sub) = (sub(false), sub(true));
    eventually(
        std::time::Duration::from_secs(10),
        "two streams",
        || async { c.metric(1, "hearsay_stream_subscribers").await.unwrap() == 2.0 },
    )
    .await;
    let id = publish(&c, 0, "42").await;
    let wait = |child: tokio::process::Child| async move {
        tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("subscribe --count 2 ends")
            .unwrap()
    };
    let out = wait(text_sub).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains(" flush * reason=subscribe  id="),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(" invalidate products keys=[42]  id=") && lines[1].ends_with(&id),
        "{}",
        lines[1]
    );
    assert!(text(&out.stderr).contains("(new)"), "{}", text(&out.stderr));
    let out = wait(json_sub).await;
    let events: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["data"]["reason"], "subscribe");
    assert_eq!(events[1]["id"], id.as_str());
    finish(c).await;
}

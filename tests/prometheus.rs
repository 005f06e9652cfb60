//! The alerts and the metrics page checked by Prometheus's own tool,
//! promtool (Debian's `prometheus` package, installed with apt-get when
//! missing, as root): the chart's rendered rules pass `promtool check
//! rules`; every alert has a unit test (`tests/tools/alerts_test.yaml`)
//! that `promtool test rules` runs, firing after its `for` and silent for
//! a healthy pod; a live `/metrics` passes `promtool check metrics`.
//!
//! Without promtool and without root, these skip with the reason outside
//! CI, and fail in CI (`CI` set).

mod chart_tools;
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chart_tools::{objects, render, run, text};

/// Whether promtool can run here (installed once per test binary).
fn promtool_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    match READY.get_or_init(|| common::ensure_programs(&[("promtool", "prometheus")])) {
        Ok(()) => true,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "in CI: {why}");
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// The chart's alert rules as a Prometheus rules file (the PrometheusRule's
/// `spec`, which is that file's shape).
fn rules_file(dir: &Path) -> std::path::PathBuf {
    let objs = objects(&render("all-on"));
    let rule = objs
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("all-on renders the PrometheusRule");
    let path = dir.join("rules.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&rule["spec"]).unwrap()).unwrap();
    path
}

#[test]
fn the_rendered_alerts_pass_promtool_and_their_unit_tests() {
    if !promtool_ready() {
        return;
    }
    let dir = common::test_dir("promtool-rules");
    let rules = rules_file(&dir);
    let check = run(
        Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&rules),
        "promtool check rules",
    );
    let said = text(&check.stdout);
    assert!(said.contains("SUCCESS: 8 rules found"), "{said}");
    let tests = dir.join("alerts_test.yaml");
    std::fs::copy(
        chart_tools::root().join("tests/tools/alerts_test.yaml"),
        &tests,
    )
    .unwrap();
    // Every alert the chart defines has a unit test.
    let unit = std::fs::read_to_string(&tests).unwrap();
    let defined = std::fs::read_to_string(&rules).unwrap();
    for line in defined.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                unit.contains(&format!("alertname: {name}\n")),
                "no unit test for {name}"
            );
        }
    }
    run(
        Command::new("promtool")
            .args(["test", "rules"])
            .arg(&tests)
            .current_dir(&dir),
        "promtool test rules",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_metrics_page_passes_promtool_check_metrics() {
    if !promtool_ready() {
        return;
    }
    let (c, _recv) = common::cluster("promtool-metrics", 2, &[]).await;
    common::publish(&c, 0, "k").await;
    let page = c.scrape(1).await.unwrap();
    common::finish(c).await;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A Prometheus server (the same Debian package) scraping `targets` every
/// second; stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    api: hearsay::client::ApiClient,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts it on 127.0.0.1:0 and reads the address it bound from its log.
    fn start(dir: &Path, targets: &[(String, std::net::SocketAddr)]) -> Prometheus {
        let mut config = String::from(
            "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: hearsay\n    static_configs:\n",
        );
        for (pod, addr) in targets {
            config.push_str(&format!(
                "      - targets: ['{addr}']\n        labels: {{namespace: demo, pod: {pod}}}\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let addr = loop {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = said
                .lines()
                .filter(|l| l.contains("msg=\"Listening on\""))
                .find_map(|l| l.split("address=").nth(1))
            {
                break addr.trim().parse().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "prometheus did not start:\n{said}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        Prometheus {
            child,
            api: hearsay::client::ApiClient::new(addr, None),
        }
    }

    /// The JSON answer to `GET path`.
    async fn get(&self, path: &str) -> serde_json::Value {
        let body = self
            .api
            .call(hyper::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "success", "{path}: {v}");
        v
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let q = hearsay::client::encode_key(promql);
        let v = self.get(&format!("/api/v1/query?query={q}")).await;
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Label values, as Grafana's `label_values(series, label)` asks them.
    async fn label_values(&self, label: &str, series: &str) -> Vec<String> {
        let m = hearsay::client::encode_key(series);
        let v = self
            .get(&format!("/api/v1/label/{label}/values?match[]={m}"))
            .await;
        serde_json::from_value(v["data"].clone()).unwrap()
    }
}

/// Every query of the dashboard: (panel title, expr).
fn dashboard_queries() -> (Vec<(String, String)>, Vec<String>) {
    let path = chart_tools::chart_dir().join("dashboards/hearsay.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut panels = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap().to_owned();
            panels.push((title, t["expr"].as_str().unwrap().to_owned()));
        }
    }
    let variables = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["query"]["query"].as_str().map(str::to_owned))
        .collect();
    (panels, variables)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_a_cluster_and_every_dashboard_query_has_data() {
    if !promtool_ready() {
        return;
    }
    let dir = common::test_dir("prometheus-server");
    // node-2's app answers its probe but fails every delivery; node-1's
    // app also holds a subscription stream.
    let extra = ["--webhook-probe-path", "/ready", "--delivery", "both"];
    let (c, recv) = common::cluster("prometheus-cluster", 3, &extra).await;
    recv[2].set_mode(hearsay::receiver::Mode::Fail);
    let opts = hearsay::subscriber::SubscribeOptions::default();
    let mut sub = hearsay::subscriber::Subscriber::open(c.node(1).unwrap().ready.api, &opts)
        .await
        .unwrap();
    let reader = tokio::spawn(async move { while sub.next().await.is_some() {} });
    let targets: Vec<(String, std::net::SocketAddr)> = (0..3)
        .map(|i| (format!("node-{i}"), c.node(i).unwrap().ready.metrics))
        .collect();
    let prom = Prometheus::start(&dir, &targets);
    // Traffic while Prometheus scrapes: an event every 50 ms for 12 s.
    // Every tenth publish waits for its confirmation, as a publisher may.
    for k in 0..240 {
        if k % 10 == 0 {
            let body = serde_json::json!({"cache": "products", "keys": [format!("w{k}")]});
            c.api(k % 2)
                .call(
                    hyper::Method::POST,
                    "/v1/invalidate?wait=1s",
                    Some(body.to_string().into_bytes()),
                )
                .await
                .unwrap();
        } else {
            common::publish(&c, k % 2, &format!("k{k}")).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let up = prom.query("sum(up{job=\"hearsay\"})").await;
    let open = prom.query("sum(hearsay_stream_subscribers)").await;
    assert_eq!(open[0]["value"][1], "1", "one stream: {open:?}");
    assert_eq!(up[0]["value"][1], "3", "every sidecar is scraped: {up:?}");

    let (panels, variables) = dashboard_queries();
    assert!(panels.len() >= 20, "{panels:?}");
    let mut empty = Vec::new();
    for (title, expr) in &panels {
        let q = expr
            .replace("$namespace", "demo")
            .replace("$pod", "node-.*")
            .replace("$__rate_interval", "10s");
        if prom.query(&q).await.is_empty() {
            empty.push(format!("{title}: {q}"));
        }
    }
    assert!(empty.is_empty(), "panels with no data: {empty:#?}");
    assert_eq!(
        variables,
        [
            "label_values(hearsay_ready, namespace)",
            "label_values(hearsay_ready{namespace=~\"$namespace\"}, pod)"
        ]
    );
    assert_eq!(
        prom.label_values("namespace", "hearsay_ready").await,
        ["demo"]
    );
    assert_eq!(
        prom.label_values("pod", "hearsay_ready{namespace=~\"demo\"}")
            .await,
        ["node-0", "node-1", "node-2"]
    );

    // The failing app's alert expression is true for node-2 alone.
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(rules_file(&dir)).unwrap()).unwrap();
    let expr = rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["alert"] == "HearsayWebhookDeliveryFailing")
        .and_then(|r| r["expr"].as_str())
        .unwrap()
        .to_owned();
    let firing = prom.query(&expr).await;
    let pods: Vec<&str> = firing
        .iter()
        .filter_map(|s| s["metric"]["pod"].as_str())
        .collect();
    assert_eq!(pods, ["node-2"], "{expr} gave {firing:?}");
    drop(prom);
    reader.abort();
    common::finish(c).await;
    let _ = std::fs::remove_dir_all(&dir);
}

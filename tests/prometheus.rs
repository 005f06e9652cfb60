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
        Command::new("promtool").arg("check").arg("rules").arg(&rules),
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

//! The benchmark harness (`examples/bench`), end to end at a small scale:
//! three nodes of each system, a short latency run and one ramp step. It
//! installs `redis-server`, `nats-server` and `serf` with apt when they are
//! missing (as root), and the apps' Python venv (redis-py, nats-py) from
//! PyPI, as the README's benchmark command does, so CI checks the whole
//! path the published figures come from. The figures themselves are not
//! judged here: this machine is shared and noisy.

use std::path::PathBuf;
use std::process::Command;

mod common;

// The report's own unit tests (which targets a run meets) run here: a
// test-mode example is not also built as the program this test runs.
#[allow(dead_code)]
#[path = "../examples/bench/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../examples/bench/results.rs"]
mod results;

/// `cargo test` builds the examples next to the binaries of the same profile.
fn bench_binary() -> PathBuf {
    let hearsay = common::binary();
    hearsay
        .parent()
        .expect("the hearsay binary has a directory")
        .join("examples")
        .join(format!("bench{}", std::env::consts::EXE_SUFFIX))
}

fn system<'a>(results: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    results["systems"]
        .as_array()
        .expect("results.json lists systems")
        .iter()
        .find(|s| s["system"] == name)
        .unwrap_or_else(|| panic!("{name} did not run; notes: {}", results["notes"]))
}

#[test]
fn the_harness_runs_every_system_and_hearsay_loses_nothing() {
    let out = common::test_dir("bench");
    let status = Command::new(bench_binary())
        .arg("--hearsay")
        .arg(common::binary())
        .args(["--nodes", "3", "--events", "40", "--rate", "20"])
        .args(["--ramp-rates", "1000", "--serf-ramp-rates", "10"])
        .args(["--ramp-seconds", "1"])
        .args([
            "--cpu-nodes",
            "3",
            "--cpu-rates",
            "100",
            "--cpu-seconds",
            "1",
        ])
        .args(["--confirm-events", "20"])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run the bench harness");
    assert!(status.success(), "bench exited with {status}");

    for file in [
        "report.md",
        "results.json",
        "latency-cdf-n3.svg",
        "time-to-all.svg",
        "cpu-per-event.svg",
    ] {
        let len = std::fs::metadata(out.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .len();
        assert!(len > 100, "{file} is only {len} bytes");
    }
    let text = std::fs::read_to_string(out.join("results.json")).unwrap();
    let results: serde_json::Value = serde_json::from_str(&text).unwrap();

    for name in ["hearsay", "hearsay-streams"] {
        let hearsay = system(&results, name);
        let run = &hearsay["runs"][0];
        assert_eq!(run["nodes"], 3);
        assert_eq!(run["refused"], 0, "{name}: {run}");
        assert_eq!(run["deliveries_expected"], 40 * 2, "{name}: {run}");
        assert_eq!(
            run["delivered"], run["deliveries_expected"],
            "{name}: {run}"
        );
        assert_eq!(run["lost"], 0, "{name}: {run}");
        assert_eq!(run["duplicated"], 0, "{name}: {run}");
        // Every peer got each event's payload once, from the sidecars' metrics.
        let copies = run["payload_frames_per_event_per_peer"].as_f64().unwrap();
        assert!((0.99..=1.2).contains(&copies), "{name}: {run}");
        assert!(run["app_cpu_seconds_per_1000_events"].as_f64().unwrap() > 0.0);
        let cpu = &run["cpu"];
        assert!(cpu["idle_ms_per_second"].as_f64().unwrap() >= 0.0, "{cpu}");
        let step = &cpu["steps"][0];
        assert_eq!(step["rate"], 100.0, "{cpu}");
        assert_eq!(step["lost"], 0, "{cpu}");
        assert!(
            step["system_us_per_delivery"].as_f64().unwrap() > 0.0,
            "{cpu}"
        );
        assert!(hearsay["rss_idle_kib"].as_u64().unwrap() > 0);
        let step = &hearsay["ramp"][0];
        assert_eq!(step["lost"], 0, "{name}: {step}");
        assert_eq!(step["duplicated"], 0, "{name}: {step}");
    }

    // The comparison systems ran the same workload through their own path.
    for name in ["redis", "nats", "redis-relayed", "serf"] {
        let run = &system(&results, name)["runs"][0];
        assert_eq!(run["nodes"], 3, "{name}: {run}");
        assert!(
            run["delivered"].as_u64().unwrap() > 0,
            "{name} delivered nothing: {run}"
        );
    }
    // Publishes that waited were confirmed, beside their time-to-all.
    let confirm = &system(&results, "hearsay")["runs"][0]["confirm"];
    assert_eq!(confirm["events"], 20, "{confirm}");
    assert_eq!(confirm["unconfirmed"], 0, "{confirm}");
    assert_eq!(confirm["lost"], 0, "{confirm}");
    assert!(
        confirm["confirm_p50_ms"].as_f64().unwrap() > 0.0,
        "{confirm}"
    );
    // Every app has a webhook event before its sidecar can confirm it, so
    // the time-to-all of the same events comes first.
    assert!(
        confirm["time_to_all_p50_ms"].as_f64().unwrap()
            < confirm["confirm_p50_ms"].as_f64().unwrap(),
        "{confirm}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## CPU per received event"), "{report}");
    assert!(report.contains("## Confirmation (hearsay"), "{report}");
    for name in [
        "hearsay",
        "hearsay-streams",
        "redis",
        "nats",
        "redis-relayed",
        "serf",
    ] {
        assert!(report.contains(&format!("| {name} | 3 |")), "{report}");
    }

    // `bench report` draws the same report and plots from results.json.
    let cdf = std::fs::read(out.join("latency-cdf-n3.svg")).unwrap();
    for file in ["report.md", "latency-cdf-n3.svg", "cpu-per-event.svg"] {
        std::fs::remove_file(out.join(file)).unwrap();
    }
    let status = Command::new(bench_binary())
        .arg("report")
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run bench report");
    assert!(status.success(), "bench report exited with {status}");
    assert_eq!(
        std::fs::read_to_string(out.join("report.md")).unwrap(),
        report,
        "the report drawn again from results.json"
    );
    assert_eq!(
        std::fs::read(out.join("latency-cdf-n3.svg")).unwrap(),
        cdf,
        "the CDF drawn again from results.json's samples"
    );
    assert!(out.join("cpu-per-event.svg").exists());
    let _ = std::fs::remove_dir_all(&out);
}

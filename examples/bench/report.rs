//! `report.md`: the tables, the targets and whether they were met.

use std::fmt::Write;

use crate::results::Latency;
use crate::results::{Results, SystemResults};

/// What `figures` finds in each run, with its system and N.
fn per_run<'a, T>(
    r: &'a Results,
    figures: impl Fn(&'a crate::results::RunResult) -> Option<&'a T>,
) -> Vec<(&'a str, usize, &'a T)> {
    r.systems
        .iter()
        .flat_map(|x| x.runs.iter().map(move |run| (x.system.as_str(), run)))
        .filter_map(|(sys, run)| figures(run).map(|f| (sys, run.nodes, f)))
        .collect()
}

fn ms(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.0}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn find<'a>(r: &'a Results, system: &str) -> Option<&'a SystemResults> {
    r.systems.iter().find(|s| s.system == system)
}

/// One target: what it asks, what was measured, whether it was met.
struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

/// A target that compares a hearsay figure with another (a figure of another
/// system, or a bound); not measured when either is missing.
fn compare(
    what: String,
    (a, b): (Option<f64>, Option<f64>),
    met: &dyn Fn(f64, f64) -> bool,
    show: &dyn Fn(f64, f64) -> String,
) -> Target {
    let (measured, met) = match (a, b) {
        (Some(a), Some(b)) if !a.is_nan() && !b.is_nan() => (show(a, b), Some(met(a, b))),
        _ => ("not measured".into(), None),
    };
    Target {
        what,
        measured,
        met,
    }
}

fn at(s: Option<&SystemResults>, n: usize) -> Option<&Latency> {
    s.and_then(|s| s.run(n)).map(|run| &run.latency)
}

/// Of Redis and NATS (as their users run them), the one with the lower
/// p50 time-to-all at `n`: its name and figures.
fn faster_broker(r: &Results, n: usize) -> Option<(&'static str, &Latency)> {
    ["redis", "nats"]
        .into_iter()
        .filter_map(|name| at(find(r, name), n).map(|l| (name, l)))
        .filter(|(_, l)| !l.time_to_all_p50_ms.is_nan())
        .min_by(|a, b| a.1.time_to_all_p50_ms.total_cmp(&b.1.time_to_all_p50_ms))
}

fn targets(r: &Results) -> Vec<Target> {
    let h = find(r, "hearsay");
    let streams = find(r, "hearsay-streams");
    let mut out = Vec::new();
    for n in [10, 50] {
        let broker = faster_broker(r, n);
        let name = broker.map_or("the faster broker", |(b, _)| b);
        let b50 = broker.map(|(_, l)| l.time_to_all_p50_ms);
        let b99 = broker.map(|(_, l)| l.time_to_all_p99_ms);
        let s = at(streams, n);
        let w = at(h, n);
        out.push(compare(
            format!("N = {n}: streams p50 time-to-all ≤ the faster broker's"),
            (s.map(|l| l.time_to_all_p50_ms), b50),
            &|a, b| a <= b,
            &|a, b| format!("{} ms vs {name} {} ms", ms(a), ms(b)),
        ));
        out.push(compare(
            format!("N = {n}: streams p99 time-to-all ≤ 1.5 × the faster broker's"),
            (s.map(|l| l.time_to_all_p99_ms), b99),
            &|a, b| a <= 1.5 * b,
            &|a, b| format!("{} ms vs 1.5 × {name} {} ms", ms(a), ms(b)),
        ));
        out.push(compare(
            format!("N = {n}: webhook p50 time-to-all ≤ 1.5 × the faster broker's"),
            (w.map(|l| l.time_to_all_p50_ms), b50),
            &|a, b| a <= 1.5 * b,
            &|a, b| format!("{} ms vs 1.5 × {name} {} ms", ms(a), ms(b)),
        ));
    }
    out.push(compare(
        "N = 10: ≥ 100 × faster than Serf at p50 (webhook)".into(),
        (
            at(h, 10).map(|l| l.time_to_all_p50_ms),
            at(find(r, "serf"), 10).map(|l| l.time_to_all_p50_ms),
        ),
        &|a, b| a * 100.0 <= b,
        &|a, b| format!("{:.0} × ({} ms vs Serf {} ms)", b / a, ms(a), ms(b)),
    ));
    let redis_rate = find(r, "redis").map(|s| s.max_sustained_rate.unwrap_or(0.0));
    for sys in [h, streams].into_iter().flatten() {
        out.push(compare(
            format!("{}: sustained rate at one node ≥ Redis's", sys.system),
            (Some(sys.max_sustained_rate.unwrap_or(0.0)), redis_rate),
            &|a, b| a >= b,
            &|a, b| format!("{a:.0}/s vs Redis {b:.0}/s"),
        ));
    }
    for (n, bound) in [(10, 60.0), (50, 100.0)] {
        let at100 = h
            .and_then(|h| h.run(n))
            .and_then(|run| run.cpu.as_ref())
            .and_then(|c| c.steps.iter().find(|s| s.rate == 100.0))
            .map(|s| s.system_us_per_delivery);
        out.push(compare(
            format!("N = {n}: CPU per received event per sidecar at 100/s ≤ {bound:.0} µs"),
            (at100, Some(bound)),
            &|a, b| a <= b,
            &|a, _| format!("{a:.0} µs"),
        ));
    }
    let idle = h.and_then(|h| {
        h.runs
            .iter()
            .filter_map(|r| r.cpu.as_ref())
            .map(|c| c.idle_ms_per_second)
            .reduce(f64::max)
    });
    out.push(compare(
        "idle CPU ≤ 0.5 ms per second per sidecar".into(),
        (idle, Some(0.5)),
        &|a, b| a <= b,
        &|a, _| format!("{a:.2} ms/s (the most at any N)"),
    ));
    out.push(Target {
        what: "one sidecar ≤ 10 MB RSS idle".into(),
        measured: h.map_or("not measured".into(), |h| mib(h.rss_idle_kib)),
        met: h.map(|h| h.rss_idle_kib * 1024 <= 10_000_000),
    });
    out.push(Target {
        what: "one sidecar ≤ 25 MB RSS under the ramp".into(),
        measured: h.map_or("not measured".into(), |h| {
            format!("{} (peak)", mib(h.rss_peak_kib))
        }),
        met: h.map(|h| h.rss_peak_kib * 1024 <= 25_000_000),
    });
    let ours: Vec<&SystemResults> = [h, streams].into_iter().flatten().collect();
    let lost: usize = ours
        .iter()
        .flat_map(|s| &s.runs)
        .map(|r| r.latency.lost)
        .sum();
    let dup: usize = ours
        .iter()
        .flat_map(|s| &s.runs)
        .map(|r| r.latency.duplicated)
        .sum();
    out.push(Target {
        what: "hearsay (webhook and streams): no delivery lost or duplicated".into(),
        measured: if ours.is_empty() {
            "not measured".into()
        } else {
            format!("{lost} lost, {dup} duplicated")
        },
        met: (!ours.is_empty()).then_some(lost == 0 && dup == 0),
    });
    out
}

/// What the figures mean, the same for every run.
const METHOD: &[&str] = &[
    "**Every app is the same program** (`examples/bench/app.py`, CPython, one process per \
     node) but for how it receives; it stamps each event with CLOCK_MONOTONIC as it reaches \
     the process, and the harness reads the same clock. Each system is run the way its users \
     run it:",
    "**hearsay** (webhook): N `hearsay run` processes (default settings, RUST_LOG=warn) with a \
     shared gossip key and a static peer list; each app serves the webhook with the standard \
     library's `ThreadingHTTPServer`. The harness publishes through each node's local API \
     (keep-alive HTTP, at most 64 requests in flight per node). Accepted = the API's 202.",
    "**hearsay-streams**: the same sidecars with `--delivery stream`; each app reads its \
     sidecar's `GET /v1/subscribe` (Server-Sent Events) with the standard library's \
     `http.client`.",
    "**Redis**: one `redis-server` (`--save \"\" --appendonly no`); each app SUBSCRIBEs itself \
     with redis-py. A publish goes to the broker as PUBLISH; accepted = its reply.",
    "**NATS**: one `nats-server` (Debian's, defaults); each app subscribes with nats-py. The \
     harness publishes with async-nats; a core publish is not acknowledged, so accepted = the \
     client took it.",
    "**redis-relayed** (a labelled extra, how this benchmark ran Redis before): each app gets \
     Redis's messages through a relay process of the harness that SUBSCRIBEs and POSTs them \
     to the app's webhook the way the sidecar does (one request in flight, whatever queued \
     meanwhile in the next batch): the extra hop a sidecar has and a broker client does not.",
    "**Serf**: N `serf agent -profile local` processes joined into one cluster; a user event \
     (coalescing off) is sent over Serf's RPC to the chosen agent, and each agent hands it to \
     the app's webhook through Serf's own delivery path, an event handler process it starts \
     per event (a small program of the harness that POSTs stdin). Accepted = the RPC's reply. \
     At rates above a few per second per agent the handler processes queue, which is most of \
     Serf's tail; Serf is also best-effort, so it can lose events under that load.",
    "Time-to-all counts every node but the origin (hearsay does not hand an app its own \
     publishes; the brokers' copy to the origin is left out). Lost = a node that never got an \
     event within the collection timeout; duplicated = a second copy.",
    "CPU s / 1,000 events: user + system CPU over the latency run, per 1,000 events published, \
     of the system's processes (sidecars; the broker and any relays; agents and their handler \
     processes) and, in its own column, of the apps. It includes idle work (timers, \
     anti-entropy).",
    "Payload copies / event / peer: the sidecars' own `hearsay_events_sent_total` over the run, \
     divided by events × (N − 1).",
    "The ramp publishes at one node at each rate for a few seconds; a step passes with \
     nothing refused or lost, p99 time-to-all under 10 ms, and at least 95 % of the asked \
     rate accepted. RSS peak is the sidecar's (or broker's, or agent's) VmHWM through the \
     last step that passed.",
];

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# hearsay vs Redis pub/sub, NATS core and Serf\n");
    let _ = writeln!(
        s,
        "Measured {} on {}, with `{}`. Each system ran on loopback with N app processes, the \
         same Python program for every system but for how it receives, each system as its users \
         run it (see below); {} events were published open-loop at {}/s at random nodes. Times \
         are from the moment the system accepted the publish to the moment an app had the event \
         (time-to-all: the last app).\n",
        r.date, r.machine, r.command, r.events, r.rate
    );
    let _ = writeln!(s, "## Latency\n");
    let _ = writeln!(
        s,
        "| system | N | time-to-all p50 (ms) | p99 (ms) | delivery p50 (ms) | p99 (ms) | lost | duplicated | CPU s / 1,000 events | apps' CPU s / 1,000 events | payload copies / event / peer |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ns = r.node_counts();
    for n in &ns {
        for sys in &r.systems {
            let Some(run) = sys.run(*n) else { continue };
            let l = &run.latency;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
                sys.system,
                n,
                ms(l.time_to_all_p50_ms),
                ms(l.time_to_all_p99_ms),
                ms(l.delivery_p50_ms),
                ms(l.delivery_p99_ms),
                l.lost,
                l.duplicated,
                run.cpu_seconds_per_1000_events,
                run.app_cpu_seconds_per_1000_events,
                run.payload_frames_per_event_per_peer
                    .map_or("—".into(), |f| format!("{f:.3}")),
            );
        }
    }
    let cpu = per_run(r, |run| run.cpu.as_ref());
    if let Some((_, _, first)) = cpu.first() {
        let rates: Vec<f64> = first.steps.iter().map(|s| s.rate).collect();
        let _ = writeln!(
            s,
            "\n## CPU per received event\n\nUser + system CPU from `/proc`, per delivery (an event reaching one node's app), with the same window's idle CPU taken off: for hearsay, what one sidecar spends on one received event; for a broker, what it spends per copy it sends. Idle: one of the system's processes, per second.\n"
        );
        let mut head = "| system | N | idle (ms/s) |".to_owned();
        let mut rule = "|---|---:|---:|".to_owned();
        for r in &rates {
            head.push_str(&format!(" {r:.0}/s: system (µs) | apps (µs) |"));
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for (sys, n, c) in &cpu {
            let mut row = format!("| {sys} | {n} | {:.2} |", c.idle_ms_per_second);
            for st in &c.steps {
                row.push_str(&format!(
                    " {:.0} | {:.0} |",
                    st.system_us_per_delivery, st.apps_us_per_delivery
                ));
            }
            let _ = writeln!(s, "{row}");
        }
    }
    let confirmed = per_run(r, |run| run.confirm.as_ref());
    if !confirmed.is_empty() {
        let _ = writeln!(
            s,
            "\n## Confirmation (hearsay, `?wait=5s`)\n\nThe same workload with each publish waiting until every other replica confirmed it (webhook: its app answered 2xx; streams: its sidecar wrote it to the app's stream); both times from the publish call.\n"
        );
        let _ = writeln!(
            s,
            "| system | N | events | unconfirmed | confirmed p50 (ms) | p99 (ms) | time-to-all p50 (ms) | p99 (ms) | lost |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (sys, n, c) in confirmed {
            let _ = writeln!(
                s,
                "| {sys} | {n} | {} | {} | {} | {} | {} | {} | {} |",
                c.events,
                c.unconfirmed,
                ms(c.confirm_p50_ms),
                ms(c.confirm_p99_ms),
                ms(c.time_to_all_p50_ms),
                ms(c.time_to_all_p99_ms),
                c.lost
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## Throughput and memory (N = {})\n",
        ns.first().copied().unwrap_or(3)
    );
    let _ = writeln!(
        s,
        "| system | highest sustained rate at one node (p99 < 10 ms, no loss) | RSS idle | RSS peak | RSS of |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for sys in &r.systems {
        let rate = match (sys.max_sustained_rate, sys.ramp.first()) {
            (Some(x), _) => format!("{x:.0}/s"),
            (None, Some(first)) => format!(
                "none: at {:.0}/s, {}",
                first.rate,
                first.why_not.as_deref().unwrap_or("failed")
            ),
            (None, None) => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            sys.system,
            rate,
            mib(sys.rss_idle_kib),
            mib(sys.rss_peak_kib),
            sys.process
        );
    }
    let _ = writeln!(
        s,
        "\nThe ramp, step by step (each publishes at node 0; it stops at the first failure):\n"
    );
    let _ = writeln!(
        s,
        "| system | rate (/s) | accepted (/s) | time-to-all p50 (ms) | p99 (ms) | lost | result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
    for sys in &r.systems {
        for st in &sys.ramp {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} | {} | {} | {} | {} |",
                sys.system,
                st.rate,
                st.achieved_rate,
                ms(st.latency.time_to_all_p50_ms),
                ms(st.latency.time_to_all_p99_ms),
                st.latency.lost,
                st.why_not.as_deref().unwrap_or("passed")
            );
        }
    }
    let _ = writeln!(s, "\n## Targets\n");
    let _ = writeln!(s, "| target | measured | |");
    let _ = writeln!(s, "|---|---|---|");
    for t in targets(r) {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "—",
        };
        let _ = writeln!(s, "| {} | {} | {} |", t.what, t.measured, verdict);
    }
    for n in &ns {
        let _ = writeln!(s, "\n![time-to-all CDF at N = {n}](latency-cdf-n{n}.svg)");
    }
    let _ = writeln!(s, "\n![time-to-all vs N](time-to-all.svg)");
    if r.has_cpu() {
        let _ = writeln!(s, "\n![CPU per received event](cpu-per-event.svg)");
    }
    let _ = writeln!(s, "\n## How each system is run\n");
    for line in METHOD {
        let _ = writeln!(s, "- {line}");
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RunResult;

    fn system(name: &'static str, p50: f64, p99: f64) -> SystemResults {
        let run = |nodes| RunResult {
            nodes,
            latency: Latency {
                time_to_all_p50_ms: p50,
                time_to_all_p99_ms: p99,
                ..Latency::default()
            },
            cpu_seconds_per_1000_events: 0.1,
            app_cpu_seconds_per_1000_events: 0.1,
            confirm: None,
            cpu: None,
            payload_frames_per_event_per_peer: None,
            rss_idle_kib: 0,
        };
        SystemResults {
            system: name.to_owned(),
            process: "one".to_owned(),
            runs: vec![run(10), run(50)],
            ramp: Vec::new(),
            max_sustained_rate: Some(25_000.0),
            rss_idle_kib: 8 * 1024,
            rss_peak_kib: 30 * 1024,
        }
    }

    fn results(systems: Vec<SystemResults>) -> Results {
        Results {
            date: String::new(),
            machine: String::new(),
            command: String::new(),
            rate: 1.0,
            events: 1,
            systems,
            notes: Vec::new(),
        }
    }

    #[test]
    fn targets_compare_against_the_faster_broker_in_the_same_run() {
        let mut redis = system("redis", 1.5, 2.0);
        redis.max_sustained_rate = Some(50_000.0);
        let r = results(vec![
            system("hearsay", 2.0, 12.0),
            system("hearsay-streams", 1.0, 2.5),
            redis,
            system("nats", 1.2, 9.0),
            system("serf", 90.0, 300.0),
        ]);
        let t = targets(&r);
        let met: Vec<Option<bool>> = t.iter().map(|t| t.met).collect();
        // Against NATS (the faster at p50: 1.2 < 1.5), at N = 10 and 50:
        // streams 1.0 ≤ 1.2; 2.5 ≤ 1.5 × 9; webhook 2.0 > 1.5 × 1.2.
        // Serf: 90 < 100 × 2. Rates: 25k < 50k twice. RSS 8 MiB ≤ 10 MB;
        // 30 MiB > 25 MB. Nothing lost.
        // CPU was not measured here: those three are neither met nor missed.
        let (y, n, none) = (Some(true), Some(false), None);
        assert_eq!(
            met,
            [y, y, n, y, y, n, n, n, n, none, none, none, y, n, y].to_vec()
        );
        assert!(t[0].measured.contains("nats"), "{}", t[0].measured);
        let md = markdown(&r);
        assert!(md.contains("| hearsay | 10 | 2.00 | 12 |"), "{md}");
        assert_eq!(md.matches("**missed**").count(), 6, "{md}");
        assert!(md.contains("](latency-cdf-n50.svg)"), "{md}");
    }

    #[test]
    fn a_missing_system_is_not_counted_as_met() {
        let mut r = results(vec![system("hearsay", 1.0, 2.0)]);
        r.notes.push("redis: not installed".into());
        let t = targets(&r);
        assert_eq!(t[0].met, None);
        assert_eq!(t[0].measured, "not measured");
        assert!(markdown(&r).contains("- redis: not installed"));
    }
}

//! `report.md`: the tables, the targets and whether they were met.

use std::fmt::Write;

use crate::results::Latency;
use crate::results::{Results, SystemResults};

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
    what: &'static str,
    measured: String,
    met: Option<bool>,
}

/// A target that compares a hearsay figure with another (a figure of another
/// system, or a bound); not measured when either is missing.
fn compare(
    what: &'static str,
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

fn targets(r: &Results) -> Vec<Target> {
    let h = find(r, "hearsay");
    fn at(s: Option<&SystemResults>, n: usize) -> Option<&Latency> {
        s.and_then(|s| s.run(n)).map(|run| &run.latency)
    }
    let (h10, r10, s10, h50) = (
        at(h, 10),
        at(find(r, "redis"), 10),
        at(find(r, "serf"), 10),
        at(h, 50),
    );
    let mut out = Vec::new();
    out.push(compare(
        "N = 10: p50 time-to-all ≤ Redis's",
        (
            h10.map(|l| l.time_to_all_p50_ms),
            r10.map(|l| l.time_to_all_p50_ms),
        ),
        &|a, b| a <= b,
        &|a, b| format!("{} ms vs Redis {} ms", ms(a), ms(b)),
    ));
    out.push(compare(
        "N = 10: p99 time-to-all ≤ 1.5 × Redis's",
        (
            h10.map(|l| l.time_to_all_p99_ms),
            r10.map(|l| l.time_to_all_p99_ms),
        ),
        &|a, b| a <= 1.5 * b,
        &|a, b| format!("{} ms vs 1.5 × {} ms", ms(a), ms(b)),
    ));
    out.push(compare(
        "N = 10: ≥ 100 × faster than Serf at p50",
        (
            h10.map(|l| l.time_to_all_p50_ms),
            s10.map(|l| l.time_to_all_p50_ms),
        ),
        &|a, b| a * 100.0 <= b,
        &|a, b| format!("{:.0} × ({} ms vs Serf {} ms)", b / a, ms(a), ms(b)),
    ));
    out.push(compare(
        "N = 50: p99 time-to-all < 10 ms",
        (h50.map(|l| l.time_to_all_p99_ms), Some(10.0)),
        &|a, b| a < b,
        &|a, _| format!("{} ms", ms(a)),
    ));
    let rate = h.and_then(|h| h.max_sustained_rate);
    out.push(Target {
        what: "≥ 20,000 events/s through one sidecar at N = 3",
        measured: match (h, rate) {
            (None, _) => "not measured".into(),
            (Some(_), None) => "no ramp step passed".into(),
            (Some(_), Some(x)) => format!("{x:.0}/s"),
        },
        met: h.map(|_| rate.is_some_and(|x| x >= 20_000.0)),
    });
    out.push(Target {
        what: "one sidecar ≤ 10 MB RSS idle",
        measured: h.map_or("not measured".into(), |h| mib(h.rss_idle_kib)),
        met: h.map(|h| h.rss_idle_kib * 1024 <= 10_000_000),
    });
    out.push(Target {
        what: "one sidecar ≤ 25 MB RSS under load",
        measured: h.map_or("not measured".into(), |h| {
            format!("{} (peak)", mib(h.rss_peak_kib))
        }),
        met: h.map(|h| h.rss_peak_kib * 1024 <= 25_000_000),
    });
    let lossless = h.map(|h| {
        h.runs
            .iter()
            .all(|r| r.latency.lost == 0 && r.latency.duplicated == 0)
    });
    out.push(Target {
        what: "hearsay: no delivery lost or duplicated",
        measured: h.map_or("not measured".into(), |h| {
            let lost: usize = h.runs.iter().map(|r| r.latency.lost).sum();
            let dup: usize = h.runs.iter().map(|r| r.latency.duplicated).sum();
            format!("{lost} lost, {dup} duplicated")
        }),
        met: lossless,
    });
    out
}

/// What the figures mean, the same for every run.
const METHOD: &[&str] = &[
    "**hearsay**: N `hearsay run` processes (release build, default settings, RUST_LOG=warn) \
     with a shared gossip key and a static peer list; the harness publishes through each node's \
     local API (keep-alive HTTP, at most 64 requests in flight per node). Accepted = the API's \
     202.",
    "**Redis**: one `redis-server` (`--save \"\" --appendonly no`) and N subscriber processes \
     (part of the harness, built with the `redis` crate) that SUBSCRIBE and hand messages to \
     their receiver the way the sidecar does: one request in flight, whatever queued meanwhile \
     in the next batch. A publish goes to the broker as PUBLISH; accepted = its reply.",
    "**Serf**: N `serf agent -profile local` processes joined into one cluster; a user event \
     (coalescing off) is sent over Serf's RPC to the chosen agent, and each agent hands it to \
     the receiver through Serf's own delivery path, an event handler process it starts per \
     event (a small program of the harness that POSTs stdin). Accepted = the RPC's reply. At \
     rates above a few per second per agent the handler processes queue, which is most of \
     Serf's tail; Serf is also best-effort, so it can lose events under that load.",
    "Time-to-all counts every node but the origin (hearsay does not hand an app its own \
     publishes; Redis's and Serf's copy to the origin is left out). Lost = a node that never \
     got an event within the collection timeout; duplicated = a second copy.",
    "CPU s / 1,000 events: user + system CPU of every process of the system (sidecars; broker \
     and subscribers; agents and their handler processes) over the latency run, per 1,000 \
     events published. It includes idle work (timers, anti-entropy), which at 10 events/s \
     is a visible part of hearsay's figure at N = 50.",
    "Payload copies / event / peer: the sidecars' own `hearsay_events_sent_total` over the run, \
     divided by events × (N − 1).",
    "The ramp publishes at one node at each rate for a few seconds; a step passes with \
     nothing refused or lost, p99 time-to-all under 10 ms, and at least 95 % of the asked \
     rate accepted. RSS peak is the sidecar's (or broker's, or agent's) VmHWM through the \
     last step that passed.",
];

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# hearsay vs Redis pub/sub vs Serf\n");
    let _ = writeln!(
        s,
        "Measured {} on {}, with `{}`. Each system ran N processes on loopback, each node handing \
         events to an identical webhook receiver; {} events were published open-loop at {}/s at \
         random nodes. Times are from the moment the system accepted the publish to the moment a \
         receiver had the event (time-to-all: the last receiver).\n",
        r.date, r.machine, r.command, r.events, r.rate
    );
    let _ = writeln!(s, "## Latency\n");
    let _ = writeln!(
        s,
        "| system | N | time-to-all p50 (ms) | p99 (ms) | delivery p50 (ms) | p99 (ms) | lost | duplicated | CPU s / 1,000 events | payload copies / event / peer |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ns: Vec<usize> = r
        .systems
        .iter()
        .flat_map(|x| x.runs.iter().map(|r| r.nodes))
        .collect();
    ns.sort_unstable();
    ns.dedup();
    for n in &ns {
        for sys in &r.systems {
            let Some(run) = sys.run(*n) else { continue };
            let l = &run.latency;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                sys.system,
                n,
                ms(l.time_to_all_p50_ms),
                ms(l.time_to_all_p99_ms),
                ms(l.delivery_p50_ms),
                ms(l.delivery_p99_ms),
                l.lost,
                l.duplicated,
                run.cpu_seconds_per_1000_events,
                run.payload_frames_per_event_per_peer
                    .map_or("—".into(), |f| format!("{f:.3}")),
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
    let _ = writeln!(
        s,
        "\n![time-to-all CDF at N = 10](latency-cdf.svg)\n\n![time-to-all vs N](time-to-all.svg)"
    );
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
            payload_frames_per_event_per_peer: None,
            rss_idle_kib: 0,
        };
        SystemResults {
            system: name,
            process: "one",
            runs: vec![run(10), run(50)],
            ramp: Vec::new(),
            max_sustained_rate: Some(25_000.0),
            rss_idle_kib: 8 * 1024,
            rss_peak_kib: 30 * 1024,
        }
    }

    #[test]
    fn targets_compare_against_the_same_run() {
        let r = Results {
            date: String::new(),
            machine: String::new(),
            command: String::new(),
            rate: 1.0,
            events: 1,
            systems: vec![
                system("hearsay", 1.0, 12.0),
                system("redis", 1.5, 2.0),
                system("serf", 90.0, 300.0),
            ],
            notes: Vec::new(),
        };
        let met: Vec<Option<bool>> = targets(&r).iter().map(|t| t.met).collect();
        // p50 1.0 ≤ 1.5; p99 12 > 3; serf 90 < 100 ×; N=50 p99 12 ≥ 10;
        // 25k ≥ 20k; 8 MiB ≤ 10 MB; 30 MiB > 25 MB; nothing lost.
        assert_eq!(
            met,
            [true, false, false, false, true, true, false, true]
                .map(Some)
                .to_vec()
        );
        let md = markdown(&r);
        assert!(md.contains("| hearsay | 10 | 1.00 | 12 |"), "{md}");
        assert_eq!(md.matches("**missed**").count(), 4, "{md}");
    }

    #[test]
    fn a_missing_system_is_not_counted_as_met() {
        let r = Results {
            date: String::new(),
            machine: String::new(),
            command: String::new(),
            rate: 1.0,
            events: 1,
            systems: vec![system("hearsay", 1.0, 2.0)],
            notes: vec!["redis: not installed".into()],
        };
        let t = targets(&r);
        assert_eq!(t[0].met, None);
        assert_eq!(t[0].measured, "not measured");
        assert!(markdown(&r).contains("- redis: not installed"));
    }
}

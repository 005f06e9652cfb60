//! CPU per received event, from `/proc` (user + system time): a system
//! idle for a few seconds, then publishing at each of a few rates for a
//! few seconds. The system's processes (sidecars; a broker) and the apps
//! are counted apart; each figure is per delivery (an event reaching one
//! node's app: events × (N − 1)) with the idle CPU of the same window taken
//! off, so a sidecar's figure is its cost of one received event.

use std::sync::Arc;
use std::time::Duration;

use crate::apps::App;
use crate::procinfo::cpu_of;
use crate::results::{CpuFigures, CpuStep};
use crate::workload::{self, System};

/// Idle for `idle`, then `seconds` at each of `rates`, publishing events
/// numbered from `first` at random nodes (`origin`).
pub async fn measure<S: System>(
    sys: &Arc<S>,
    pids: &[u32],
    apps: &[App],
    rates: &[f64],
    seconds: f64,
    first: u64,
    origin: impl Fn(u64) -> usize + Copy,
) -> CpuFigures {
    let n = apps.len();
    let app_pids: Vec<u32> = apps.iter().filter_map(App::pid).collect();
    let idle = Duration::from_secs(5);
    let before = cpu_of(pids);
    tokio::time::sleep(idle).await;
    let idle_per_second = (cpu_of(pids) - before) / idle.as_secs_f64();
    let mut steps = Vec::new();
    let mut next = first;
    for &rate in rates {
        let count = (rate * seconds).round().max(1.0) as u64;
        let from = workload::cursors(apps);
        let started = tokio::time::Instant::now();
        let (sys0, apps0) = (cpu_of(pids), cpu_of(&app_pids));
        let published = workload::open_loop(sys.clone(), rate, next..next + count, origin).await;
        next += count;
        let got = workload::collect(
            &published.pubs,
            apps,
            &from,
            Duration::from_secs(30),
            Duration::from_secs(3),
        )
        .await;
        let window = started.elapsed().as_secs_f64();
        let (sys1, apps1) = (cpu_of(pids), cpu_of(&app_pids));
        let l = workload::measure(&published, &got);
        let deliveries = (l.events * (n - 1)).max(1) as f64;
        let busy = (sys1 - sys0) - idle_per_second * window;
        steps.push(CpuStep {
            rate,
            events: l.events,
            lost: l.lost,
            system_us_per_delivery: round1(busy.max(0.0) / deliveries * 1e6),
            apps_us_per_delivery: round1((apps1 - apps0) / deliveries * 1e6),
        });
        // Let queues empty before the next rate.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    CpuFigures {
        idle_ms_per_second: (idle_per_second / pids.len().max(1) as f64 * 1e5).round() / 100.0,
        steps,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

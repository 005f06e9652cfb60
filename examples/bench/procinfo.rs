//! What /proc says about a process: resident memory and CPU time.

/// Resident set size now, and its peak, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds used so far by `pid` (every thread's time on a CPU, from
/// `/proc/<pid>/task/*/schedstat`, in nanoseconds: the 10 ms ticks of
/// `stat` are too coarse for an idle sidecar), plus the children it has
/// waited for (Serf's event handlers, in ticks). Threads that exited
/// between two readings are not counted; a sidecar's do not exit.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may
    // hold spaces: utime, stime, cutime and cstime are the 14th to 17th
    // fields of the line, the 12th to 15th here.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // /proc counts in USER_HZ, which is 100 on Linux.
    let children = (ticks(13) + ticks(14)) as f64 / 100.0;
    match threads_ns(pid) {
        Some(ns) => ns as f64 / 1e9 + children,
        None => (ticks(11) + ticks(12)) as f64 / 100.0 + children,
    }
}

/// The sum of every thread's time on a CPU, in nanoseconds.
fn threads_ns(pid: u32) -> Option<u64> {
    let mut sum = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
        sum += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(sum)
}

pub fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

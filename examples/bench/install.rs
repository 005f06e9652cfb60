//! The comparison peers come from Debian: `redis-server`, `nats-server`
//! and `serf`. When they are missing the harness installs them with apt
//! (as root), or says how to and leaves those systems out.

use std::process::Command;

/// Peer systems and the Debian package and program they need.
pub struct Peer {
    pub systems: &'static [&'static str],
    pub package: &'static str,
    pub program: &'static str,
}

pub const PEERS: [Peer; 3] = [
    Peer {
        systems: &["redis", "redis-relayed"],
        package: "redis-server",
        program: "redis-server",
    },
    Peer {
        systems: &["nats"],
        package: "nats-server",
        program: "nats-server",
    },
    Peer {
        systems: &["serf"],
        package: "serf",
        program: "serf",
    },
];

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().next() == Some("0"))
            })
        })
        .unwrap_or(false)
}

pub fn apt_install(packages: &[&str]) -> bool {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    // A fresh machine may have no package lists yet.
    install()
        || (Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .is_ok_and(|s| s.success())
            && install())
}

/// Makes sure each peer's program is there, installing what is missing
/// when allowed and possible. Returns the systems that can run, and a
/// note for each that cannot.
pub fn ensure(allow_install: bool) -> (Vec<&'static str>, Vec<String>) {
    let missing: Vec<&Peer> = PEERS.iter().filter(|p| !on_path(p.program)).collect();
    if !missing.is_empty() && allow_install && is_root() && on_path("apt-get") {
        let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
        eprintln!("installing {} with apt-get", packages.join(" "));
        apt_install(&packages);
    }
    let mut ready = vec!["hearsay", "hearsay-streams"];
    let mut notes = Vec::new();
    for p in &PEERS {
        if on_path(p.program) {
            ready.extend(p.systems);
        } else {
            notes.push(format!(
                "{}: `{}` is not installed, so it was left out; install it with `sudo apt-get install {}` (Debian/Ubuntu) and run again",
                p.systems.join(", "),
                p.program,
                p.package
            ));
        }
    }
    (ready, notes)
}

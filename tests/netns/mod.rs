//! A cluster whose every sidecar runs in a network namespace of its own,
//! joined to one bridge by a veth pair, with an address from
//! 198.18.0.0/15; the apps (receivers) and the publisher are on the host
//! side of the bridge, at its `.1`. The kernel then makes the faults:
//! routes removed, links taken down, packets dropped by nftables,
//! processes stopped.
//!
//! Namespaces need root. Without it, outside CI, a cluster for faults
//! that need no kernel ([`Need::Processes`]) runs on 127.0.0.1 instead
//! (saying so), and one for kernel faults is skipped with the reason; in
//! CI (`CI` set) either is a failure. iproute2 and nftables are installed
//! from Debian when missing.
#![allow(dead_code)]

#[path = "../pod_runner/net.rs"]
pub mod net;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hearsay::demo::cluster::{ClusterOptions, LocalCluster, NodeSpec};
use hearsay::receiver::{Received, Receiver};
use net::{Bridge, PodNet, ip};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::{binary, ensure_programs, is_root, options};

/// What a scenario needs of the machine.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Need {
    /// Kernel faults: namespaces or nothing.
    Kernel,
    /// Process faults (kills, restarts, a failing app): namespaces where
    /// they can be made, else 127.0.0.1.
    Processes,
}

/// Why namespaces cannot be made here, if they cannot.
fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("network namespaces and nftables need root".into());
    }
    ensure_programs(&[("ip", "iproute2"), ("nft", "nftables")]).err()
}

/// Where a program is on the PATH.
fn which(program: &str) -> std::path::PathBuf {
    crate::common::find_on_path(program).unwrap_or_else(|| panic!("{program} is not on the PATH"))
}

/// The sidecars, their apps and their network. Fields drop in order: the
/// sidecars, then the apps, then the namespaces, then the bridge.
pub struct NetCluster {
    pub c: LocalCluster,
    pub recv: Vec<Receiver>,
    pods: Vec<PodNet>,
    bridge: Option<Bridge>,
}

impl NetCluster {
    /// An empty cluster; or None (with the reason printed) where it cannot
    /// run outside CI.
    pub fn new(opts: ClusterOptions, need: Need) -> Option<NetCluster> {
        let bridge = match unavailable() {
            None => Some(Bridge::create().unwrap()),
            Some(why) => {
                assert!(std::env::var_os("CI").is_none(), "in CI: {why}");
                if need == Need::Kernel {
                    eprintln!("skipped: {why}");
                    return None;
                }
                eprintln!("on 127.0.0.1, not in network namespaces: {why}");
                None
            }
        };
        Some(NetCluster {
            c: LocalCluster::new(opts).unwrap(),
            recv: Vec::new(),
            pods: Vec::new(),
            bridge,
        })
    }

    /// `n` sidecars with one app each, every one seeing every other.
    pub async fn start(name: &str, n: usize, extra: &[&str], need: Need) -> Option<NetCluster> {
        let mut net = NetCluster::new(options(name, extra), need)?;
        for _ in 0..n {
            net.add(NodeSpec::default()).await;
        }
        net.c
            .wait_all_see_all(Duration::from_secs(20))
            .await
            .unwrap();
        Some(net)
    }

    /// Whether the sidecars are in namespaces (else on 127.0.0.1).
    pub fn in_namespaces(&self) -> bool {
        self.bridge.is_some()
    }

    /// Where the test's own listeners bind so the sidecars reach them.
    pub fn host_ip(&self) -> IpAddr {
        self.bridge
            .as_ref()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |b| IpAddr::V4(b.addr(1)))
    }

    /// Starts node `i = len()` as `spec` says, with a new app of its own
    /// and (in namespaces) the namespace at `.10+i`. Returns `i`.
    pub async fn add(&mut self, mut spec: NodeSpec) -> usize {
        let i = self.c.len();
        let app = Receiver::start(SocketAddr::new(self.host_ip(), 0), false)
            .await
            .unwrap();
        spec.webhook_url = app.url();
        self.recv.push(app);
        if let Some(bridge) = &self.bridge {
            let pod = bridge.attach(10 + i as u8).unwrap();
            // Run in place of the binary: the sidecar keeps the script's
            // pid (`ip netns exec` execs without forking).
            let wrapper = self.c.dir().join(format!("in-netns-{i}"));
            let script = format!(
                "#!/bin/sh\nexec {} netns exec {} {} \"$@\"\n",
                which("ip").display(),
                pod.netns,
                spec.binary.clone().unwrap_or_else(binary).display()
            );
            std::fs::write(&wrapper, script).unwrap();
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            spec.listen_ip = Some(IpAddr::V4(pod.ip));
            spec.binary = Some(wrapper);
            self.pods.push(pod);
        }
        self.c.add(spec).await.unwrap()
    }

    pub fn events(&self) -> Vec<Vec<Received>> {
        self.recv.iter().map(Receiver::events).collect()
    }

    fn bridge(&self) -> &Bridge {
        self.bridge.as_ref().expect("kernel faults need namespaces")
    }

    /// Node `i` keeps routes only to the nodes in `reach` and the host:
    /// its namespace's subnet route is removed.
    pub fn cut_routes(&self, i: usize, reach: &[usize]) {
        let ns = &self.pods[i].netns;
        let subnet = self.bridge().subnet();
        ip(&["-n", ns, "route", "del", &subnet, "dev", "eth0"]).unwrap();
        let host = format!("{}/32", self.bridge().addr(1));
        ip(&["-n", ns, "route", "add", &host, "dev", "eth0"]).unwrap();
        for &j in reach.iter().filter(|&&j| j != i) {
            let to = format!("{}/32", self.pods[j].ip);
            ip(&["-n", ns, "route", "add", &to, "dev", "eth0"]).unwrap();
        }
    }

    /// Node `i` gets its subnet route back (and loses the host routes).
    pub fn restore_routes(&self, i: usize) {
        let ns = &self.pods[i].netns;
        ip(&["-n", ns, "route", "flush", "dev", "eth0"]).unwrap();
        let src = self.pods[i].ip.to_string();
        let subnet = self.bridge().subnet();
        ip(&[
            "-n", ns, "route", "add", &subnet, "dev", "eth0", "src", &src,
        ])
        .unwrap();
    }

    /// Splits the nodes into `0..half` and `half..` by their routes.
    pub fn partition(&self, half: usize) {
        let (a, b): (Vec<usize>, Vec<usize>) = (0..self.pods.len()).partition(|&i| i < half);
        for side in [&a, &b] {
            for &i in side {
                self.cut_routes(i, side);
            }
        }
    }

    pub fn heal(&self) {
        for i in 0..self.pods.len() {
            self.restore_routes(i);
        }
    }

    /// The host side of node `i`'s veth up or down: down, its packets
    /// vanish and nothing tells TCP.
    pub fn link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["link", "set", &self.pods[i].veth, state]).unwrap();
    }

    pub fn signal(&self, i: usize, sig: Signal) {
        let pid = self.c.node(i).unwrap().ready.pid;
        kill(Pid::from_raw(pid as i32), sig).unwrap();
    }

    /// Drops `percent` of the packets each namespace sends to the others,
    /// with nftables (traffic to the host, the API's and the webhook's,
    /// passes).
    pub fn lose_packets(&self, percent: u32) {
        let (subnet, host) = (self.bridge().subnet(), self.bridge().addr(1));
        for pod in &self.pods {
            let rules = format!(
                "table inet hearsay_loss {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n    ip daddr {subnet} ip daddr != {host} numgen random mod 100 < {percent} counter drop\n  }}\n}}\n"
            );
            let file = self.c.dir().join(format!("loss-{}.nft", pod.netns));
            std::fs::write(&file, rules).unwrap();
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &pod.netns, "nft", "-f"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "nft: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Packets the loss rules dropped, over every namespace.
    pub fn packets_lost(&self) -> u64 {
        self.pods
            .iter()
            .map(|pod| {
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &pod.netns, "nft", "list", "table"])
                    .args(["inet", "hearsay_loss"])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.split_whitespace()
                    .skip_while(|w| *w != "packets")
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Node `from`'s outbound connection state to node `to`.
    pub async fn state_of(&self, from: usize, to: usize) -> String {
        let addr = self.c.node(to).unwrap().ready.gossip.to_string();
        self.c
            .peers_of(from)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.address == addr)
            .map_or_else(|| "absent".into(), |p| p.state)
    }

    pub async fn metric(&self, i: usize, series: &str) -> f64 {
        self.c.metric(i, series).await.unwrap()
    }

    /// Stops the sidecars, then removes the apps and the network.
    pub async fn finish(self) {
        let NetCluster {
            c,
            recv,
            pods,
            bridge,
        } = self;
        crate::common::finish(c).await;
        drop(recv);
        drop(pods);
        drop(bridge);
    }
}

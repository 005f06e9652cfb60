//! A node's pod network, made by the kernel: one bridge with an address
//! from 198.18.0.0/15 (set aside for benchmarking), and per pod a network
//! namespace (its own loopback) joined to the bridge by a veth pair.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs `ip` with `args`, failing with its message.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The bridge pods attach to; the node (this test process) owns `.1`.
pub struct Bridge {
    pub name: String,
    /// The /24's first three octets.
    prefix: [u8; 3],
    /// A short id that names this node's links and namespaces.
    pub id: String,
}

impl Bridge {
    /// A new bridge on its own /24 inside 198.18.0.0/15.
    pub fn create() -> Result<Bridge, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Different test binaries run one after another, tests of one binary
        // at once: the pid and a counter keep their subnets apart.
        let slot = (pid.wrapping_mul(7) + n) % 510;
        let prefix = [198, 18 + (slot / 255) as u8, (slot % 255) as u8];
        let id = format!("{}{n}", pid % 100_000);
        let name = format!("hsb{id}");
        let _ = ip(&["link", "del", &name]);
        ip(&["link", "add", &name, "type", "bridge"])?;
        let bridge = Bridge { name, prefix, id };
        ip(&[
            "addr",
            "add",
            &format!("{}/24", bridge.addr(1)),
            "dev",
            &bridge.name,
        ])?;
        ip(&["link", "set", &bridge.name, "up"])?;
        Ok(bridge)
    }

    /// The bridge's /24, as `ip route` writes it.
    pub fn subnet(&self) -> String {
        format!("{}/24", self.addr(0))
    }

    pub fn addr(&self, host: u8) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, host)
    }

    /// A pod's namespace with `eth0` at `.host` and loopback up.
    pub fn attach(&self, host: u8) -> Result<PodNet, String> {
        let netns = format!("hs{}p{host}", self.id);
        let veth = format!("hv{}p{host}", self.id);
        let _ = ip(&["netns", "del", &netns]);
        ip(&["netns", "add", &netns])?;
        let net = PodNet {
            netns,
            veth,
            ip: self.addr(host),
        };
        ip(&[
            "link", "add", &net.veth, "type", "veth", "peer", "name", "eth0", "netns", &net.netns,
        ])?;
        ip(&["link", "set", &net.veth, "master", &self.name, "up"])?;
        let n = &net.netns;
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{}/24", net.ip),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", n, "link", "set", "eth0", "up"])?;
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        Ok(net)
    }
}

impl Bridge {
    /// Removes the bridge (again harmlessly).
    pub fn remove(&self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One pod's network namespace; removed (with its veth) on drop.
pub struct PodNet {
    pub netns: String,
    /// The host side of the pod's veth pair (on the bridge).
    pub veth: String,
    pub ip: Ipv4Addr,
}

impl PodNet {
    /// Removes the namespace and its veth (again harmlessly).
    pub fn remove(&self) {
        let _ = ip(&["netns", "del", &self.netns]);
        let _ = ip(&["link", "del", &self.veth]);
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        self.remove();
    }
}

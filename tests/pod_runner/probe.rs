//! Probes as a kubelet runs them: `httpGet` (a named or numbered port on
//! the pod's IP, success on 200-399) and `tcpSocket`, each with its
//! period, timeout and failure threshold.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug)]
pub struct Probe {
    kind: Check,
    pub period: Duration,
    timeout: Duration,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug)]
enum Check {
    Http { port: u16, path: String },
    Tcp { port: u16 },
}

/// A port as a probe names it: a number, or a name among `c`'s ports.
fn port(c: &Value, p: &Value) -> u16 {
    if let Some(n) = p.as_u64() {
        return n as u16;
    }
    let name = p.as_str().expect("a probe port");
    c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|cp| cp["name"] == name)
        .and_then(|cp| cp["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("probe port {name} is not a port of {}", c["name"])) as u16
}

impl Probe {
    /// `c`'s probe `which` (`startupProbe`, …), if it has one.
    pub fn of(c: &Value, which: &str) -> Option<Probe> {
        let p = c.get(which)?;
        let secs = |k: &str, d: u64| Duration::from_secs(p[k].as_u64().unwrap_or(d));
        let kind = if let Some(h) = p.get("httpGet") {
            Check::Http {
                port: port(c, &h["port"]),
                path: h["path"].as_str().unwrap_or("/").to_owned(),
            }
        } else if let Some(t) = p.get("tcpSocket") {
            Check::Tcp {
                port: port(c, &t["port"]),
            }
        } else {
            panic!(
                "{which} of {}: only httpGet and tcpSocket are supported",
                c["name"]
            );
        };
        Some(Probe {
            kind,
            period: secs("periodSeconds", 10),
            timeout: secs("timeoutSeconds", 1),
            failure_threshold: p["failureThreshold"].as_u64().unwrap_or(3) as u32,
        })
    }

    /// One attempt against the pod at `ip`.
    pub async fn check(&self, ip: Ipv4Addr) -> bool {
        tokio::time::timeout(self.timeout, self.attempt(ip))
            .await
            .unwrap_or(false)
    }

    async fn attempt(&self, ip: Ipv4Addr) -> bool {
        match &self.kind {
            Check::Tcp { port } => tokio::net::TcpStream::connect(SocketAddr::from((ip, *port)))
                .await
                .is_ok(),
            Check::Http { port, path } => {
                let Ok(mut s) = tokio::net::TcpStream::connect(SocketAddr::from((ip, *port))).await
                else {
                    return false;
                };
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.37\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                );
                if s.write_all(req.as_bytes()).await.is_err() {
                    return false;
                }
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).await.is_err() {
                    return false;
                }
                let code: u16 = std::str::from_utf8(&head[9..12])
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                (200..400).contains(&code)
            }
        }
    }
}

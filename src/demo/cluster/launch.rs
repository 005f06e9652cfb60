//! Starting one node: its command line, its log, and waiting for its
//! ready file (or its early exit, with the log's tail).

use super::*;

impl LocalCluster {
    pub(super) async fn launch(&self, i: usize, spec: &NodeSpec) -> anyhow::Result<NodeProc> {
        let dir = &self.opts.dir;
        let ready_path = dir.join(format!("node-{i}.json"));
        let _ = std::fs::remove_file(&ready_path);
        let log = dir.join(format!("node-{i}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let binary = spec.binary.as_ref().unwrap_or(&self.opts.binary);
        let mut cmd = self.command(i, spec, binary, &ready_path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let deadline = Instant::now() + self.opts.start_timeout;
        let ready = loop {
            if let Ok(bytes) = std::fs::read(&ready_path)
                && let Ok(r) = serde_json::from_slice::<ReadyInfo>(&bytes)
            {
                break r;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "node {i} exited with {status} before it was ready:\n{}",
                    log_tail(&log, 20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "node {i} was not ready within {:?}:\n{}",
                    self.opts.start_timeout,
                    log_tail(&log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(NodeProc {
            child,
            ready,
            log,
            webhook_url: spec.webhook_url.clone(),
        })
    }

    /// The command line and environment of node `i`: its own addresses on
    /// port 0, the shared peers file and key unless the spec says otherwise.
    fn command(&self, i: usize, spec: &NodeSpec, binary: &Path, ready_path: &Path) -> Command {
        let dir = &self.opts.dir;
        let mut cmd = match spec.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                // The wrapper is found on PATH and may need it itself.
                if let Some(path) = std::env::var_os("PATH") {
                    c.env("PATH", path);
                }
                c
            }
            None => Command::new(binary),
        };
        let ip = spec.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let gossip = spec.gossip_addr.unwrap_or(SocketAddr::new(ip, 0));
        let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let path = std::env::var_os("PATH").filter(|_| !spec.wrapper.is_empty());
        cmd.env_clear()
            .envs(path.map(|p| ("PATH", p)))
            .env("RUST_LOG", log_level)
            // The node stops when this process dies, however it dies.
            .env(
                crate::shutdown::PARENT_PID_ENV,
                std::process::id().to_string(),
            )
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .arg("run")
            .args(["--node-name", &format!("node-{i}")])
            .args(["--gossip-addr", &gossip.to_string()])
            .args(["--api-addr", &SocketAddr::new(ip, 0).to_string()])
            .args(["--metrics-addr", &SocketAddr::new(ip, 0).to_string()])
            .args(["--webhook-url", &spec.webhook_url])
            .arg("--ready-file")
            .arg(ready_path);
        if !spec.no_peers_file {
            cmd.arg("--peers-file").arg(dir.join("peers"));
        }
        if let Some(a) = spec.advertise {
            cmd.args(["--advertise-addr", &a.to_string()]);
        }
        let own_key = spec.args.iter().any(|a| a == "--gossip-key-file");
        match &self.opts.key {
            Some(_) if !own_key => {
                cmd.arg("--gossip-key-file").arg(dir.join("key"));
            }
            None if !own_key => {
                cmd.arg("--insecure");
            }
            _ => {}
        }
        cmd.args(&self.opts.extra_args).args(&spec.args);
        cmd
    }
}

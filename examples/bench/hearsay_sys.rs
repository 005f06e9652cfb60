//! hearsay under test: N `hearsay run` processes on loopback, one per
//! receiver, published to through each node's local API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearsay::client::ApiClient;
use hearsay::demo::cluster::{ClusterOptions, LocalCluster, NodeSpec};

use crate::workload::System;

/// Requests a publisher keeps in flight to one node, as an app's HTTP
/// client pool would (unbounded, an overloaded moment turns into a storm
/// of new connections).
const IN_FLIGHT: usize = 64;

pub struct Hearsay {
    pub cluster: LocalCluster,
    apis: Vec<(ApiClient, tokio::sync::Semaphore)>,
}

impl Hearsay {
    pub async fn start(
        binary: &Path,
        dir: PathBuf,
        webhooks: &[String],
        args: &[String],
        env: &[String],
    ) -> anyhow::Result<Hearsay> {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| anyhow::anyhow!("--hearsay-env wants NAME=VALUE, not {kv:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        if !env.iter().any(|(k, _)| k == "RUST_LOG") {
            env.push(("RUST_LOG".into(), "warn".into()));
        }
        let mut cluster = LocalCluster::new(ClusterOptions {
            binary: binary.to_path_buf(),
            dir,
            key: Some(random_key().into_bytes()),
            extra_args: args.to_vec(),
            start_timeout: Duration::from_secs(30),
        })?;
        for url in webhooks {
            cluster
                .add(NodeSpec {
                    webhook_url: url.clone(),
                    env: env.clone(),
                    ..NodeSpec::default()
                })
                .await?;
        }
        cluster.wait_all_see_all(Duration::from_secs(60)).await?;
        let apis = (0..cluster.len())
            .map(|i| (cluster.api(i), tokio::sync::Semaphore::new(IN_FLIGHT)))
            .collect();
        Ok(Hearsay { cluster, apis })
    }

    pub fn pids(&self) -> Vec<u32> {
        (0..self.cluster.len())
            .filter_map(|i| self.cluster.node(i).map(|n| n.ready.pid))
            .collect()
    }

    /// Event copies the sidecars sent to each other (pushes, relays,
    /// grafts and repairs), summed over the nodes.
    pub async fn events_sent(&self) -> f64 {
        let mut sum = 0.0;
        for i in 0..self.cluster.len() {
            sum += self
                .cluster
                .metric(i, "hearsay_events_sent_total")
                .await
                .unwrap_or(f64::NAN);
        }
        sum
    }

    pub async fn stop(self) {
        self.cluster.shutdown(Duration::from_secs(10)).await;
    }
}

fn random_key() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

impl Hearsay {
    /// Publishes event `k` at `node` with `?wait=5s`: its id and whether
    /// every replica confirmed, once the answer is back.
    pub async fn publish_confirmed(&self, node: usize, k: u64) -> Result<(String, bool), String> {
        let body = serde_json::json!({"cache": "bench", "keys": [format!("key-{k}")]});
        let (api, in_flight) = &self.apis[node];
        let _permit = in_flight.acquire().await.map_err(|e| e.to_string())?;
        let (_, bytes) = api
            .send(
                hyper::Method::POST,
                "/v1/invalidate?wait=5s",
                Some(body.to_string().into_bytes()),
            )
            .await
            .map_err(|e| e.to_string())?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let id = doc["id"].as_str().unwrap_or_default().to_owned();
        Ok((id, doc["confirmed"] == true))
    }
}

impl System for Hearsay {
    async fn publish(&self, node: usize, k: u64) -> Result<String, String> {
        let body = serde_json::json!({"cache": "bench", "keys": [format!("key-{k}")]});
        let (api, in_flight) = &self.apis[node];
        let _permit = in_flight.acquire().await.map_err(|e| e.to_string())?;
        api.invalidate(&body).await.map_err(|e| e.to_string())
    }
}

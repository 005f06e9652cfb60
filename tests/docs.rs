//! The README against reality: the metrics it documents are the metrics a
//! running sidecar exports.

mod common;

use std::collections::BTreeSet;

use common::*;

fn documented_metrics() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Metrics section");
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("hearsay_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_readme_is_exported_and_every_exported_one_is_documented() {
    let (c, _recv) = cluster("docs-metrics", 1, &[]).await;
    let text = c.scrape(0).await.unwrap();
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let documented = documented_metrics();
    assert!(documented.len() > 30, "the table was found: {documented:?}");
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&exported).collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in the README: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "in the README but not exported: {missing:?}"
    );
    finish(c).await;
}

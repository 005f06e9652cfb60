//! The docs against reality: the metrics `docs/metrics.md` documents are
//! the metrics a running sidecar exports, and the settings table in
//! `docs/settings.md` is the declaration's (`HEARSAY_UPDATE_DOCS=1`
//! rewrites it).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn documented_metrics() -> BTreeSet<String> {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    page.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("hearsay_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_metric_is_exported_and_every_exported_one_is_documented() {
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
        "exported but not in docs/metrics.md: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "in docs/metrics.md but not exported: {missing:?}"
    );
    finish(c).await;
}

const BEGIN: &str = "<!-- settings table: generated from src/settings/declared.rs -->\n";
const END: &str = "<!-- end of settings table -->\n";

#[test]
fn the_settings_table_is_generated_from_the_declaration() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settings.md");
    let page = std::fs::read_to_string(&path).expect("docs/settings.md exists");
    let (before, rest) = page.split_once(BEGIN).expect("the table's begin marker");
    let (table, after) = rest.split_once(END).expect("the table's end marker");
    let want = hearsay::settings::print::markdown_table();
    if std::env::var_os("HEARSAY_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{want}{END}{after}")).unwrap();
        return;
    }
    assert!(
        table == want,
        "docs/settings.md differs from the declaration; run\n  \
         HEARSAY_UPDATE_DOCS=1 cargo test --profile ci --test docs\n\
         --- in the page\n{table}\n--- declared\n{want}"
    );
    for s in hearsay::settings::declared::ALL
        .iter()
        .filter(|s| !s.hidden)
    {
        assert!(table.contains(&s.env()), "{} is not in the table", s.name);
    }
}

#[test]
fn the_readme_shows_each_subscriber_example_as_it_is_in_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for (file, lang) in [
        ("subscriber.py", "python"),
        ("subscriber.go", "go"),
        ("subscriber.js", "javascript"),
    ] {
        let code = std::fs::read_to_string(root.join("examples/subscribers").join(file)).unwrap();
        let block = format!("```{lang}\n{code}```\n");
        assert!(
            readme.contains(&block),
            "README.md does not show examples/subscribers/{file} as it is"
        );
    }
}

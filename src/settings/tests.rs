use std::collections::HashMap;

use super::*;
use crate::gossip::ratelimit::RateSpec;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn insecure() -> RunArgs {
    args(&["--insecure"])
}

fn args(argv: &[&str]) -> RunArgs {
    RunArgs::parse_from(argv.iter().copied()).unwrap()
}

/// The first setting blamed.
fn blamed(r: Result<Settings, SettingErrors>) -> String {
    r.unwrap_err().0[0].setting.clone()
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
    let file = file.display().to_string();
    let args = args(&[
        "--insecure",
        "--config",
        &file,
        "--api-addr",
        "127.0.0.1:1003",
    ]);
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
    let err = blamed(Settings::resolve(
        &insecure(),
        &env_of(&[("HEARSAY_GOSSIP_ADDR", "nope")]),
    ));
    assert_eq!(err, "HEARSAY_GOSSIP_ADDR");
    let err = blamed(Settings::resolve(
        &insecure(),
        &env_of(&[("HEARSAY_WEBHOOK_TIMEOUT", "soon")]),
    ));
    assert_eq!(err, "HEARSAY_WEBHOOK_TIMEOUT");
}

#[test]
fn a_yaml_file_with_an_unknown_key_is_refused() {
    let bad = FileValues::parse(std::path::Path::new("s.yaml"), "api_adr: 127.0.0.1:1\n");
    assert_eq!(bad.errors.len(), 1);
    assert!(
        bad.errors[0].setting.contains("api_adr"),
        "{:?}",
        bad.errors
    );
    assert!(
        bad.errors[0].reason.contains("api_addr"),
        "a hint: {:?}",
        bad.errors
    );
    let ok = FileValues::parse(
        std::path::Path::new("s.yml"),
        "peers: [\"a:1\", \"b:2\"]\nretention: 5s\n",
    );
    assert!(ok.errors.is_empty(), "{:?}", ok.errors);
    assert_eq!(ok.values["peers"], "a:1,b:2");
    assert_eq!(ok.values["retention"], "5s");
}

#[test]
fn a_key_is_required_unless_insecure() {
    let err = blamed(Settings::resolve(&RunArgs::default(), &env_of(&[])));
    assert_eq!(err, "--gossip-key-file");
    let err = blamed(Settings::resolve(
        &RunArgs::default(),
        &env_of(&[("HEARSAY_GOSSIP_KEY", "short")]),
    ));
    assert_eq!(err, "HEARSAY_GOSSIP_KEY");
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
    let err = blamed(Settings::resolve(
        &insecure(),
        &env_of(&[("HEARSAY_PEERS", "node-b")]),
    ));
    assert_eq!(err, "HEARSAY_PEERS");
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
    let err = blamed(Settings::resolve(
        &insecure(),
        &env_of(&[("HEARSAY_WEBHOOK_URL", "https://x/y")]),
    ));
    assert_eq!(err, "HEARSAY_WEBHOOK_URL");
}

#[test]
fn core_limits_from_the_file_are_validated() {
    let dir = std::env::temp_dir().join(format!("hearsay-settings-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    std::fs::write(&file, "max_event_bytes = 2000000\n").unwrap();
    let file = file.display().to_string();
    let err = blamed(Settings::resolve(
        &args(&["--insecure", "--config", &file]),
        &env_of(&[]),
    ));
    assert_eq!(err, "max_event_bytes (settings file)");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kubernetes_discovery_needs_a_selector_the_pod_ip_and_identity() {
    let k8s = |pairs: &[(&str, &str)]| {
        let mut all = vec![("HEARSAY_DISCOVERY", "kubernetes")];
        all.extend_from_slice(pairs);
        Settings::resolve(&insecure(), &env_of(&all))
    };
    let err = blamed(k8s(&[("POD_IP", "10.0.0.1"), ("POD_UID", "u")]));
    assert_eq!(err, "--k8s-selector / HEARSAY_K8S_SELECTOR");
    let err = blamed(k8s(&[("HEARSAY_K8S_SELECTOR", "app=x"), ("POD_UID", "u")]));
    assert_eq!(err, "--advertise-addr");
    let err = blamed(k8s(&[
        ("HEARSAY_K8S_SELECTOR", "app=x"),
        ("POD_IP", "10.0.0.1"),
    ]));
    assert_eq!(err, "POD_UID");
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
    let err = blamed(k8s(&[
        ("HEARSAY_K8S_MODE", "endpointslices"),
        ("POD_IP", "10.0.0.1"),
        ("POD_UID", "u"),
    ]));
    assert_eq!(err, "--k8s-service / HEARSAY_K8S_SERVICE");
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
    let err = blamed(Settings::resolve(&RunArgs::default(), &env));
    assert_eq!(err, "--gossip-secondary-key-file");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn temp_file(name: &str, text: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("hearsay-settings-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let path = file.display().to_string();
    (dir, path)
}

#[test]
fn every_bad_setting_is_reported_at_once() {
    let (dir, file) = temp_file("bad.toml", "retention = 5000\nmax_key_len = 0\n");
    let err = Settings::resolve(
        &args(&["--config", &file, "--gossip-addr", "nope"]),
        &env_of(&[("HEARSAY_WEBHOOK_TIMEOUT", "soon")]),
    )
    .unwrap_err();
    let names = err.settings();
    for want in [
        "--gossip-addr",
        "HEARSAY_WEBHOOK_TIMEOUT",
        "retention (settings file)",
        "max_key_len (settings file)",
        "--gossip-key-file",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(err.to_string().lines().count() >= 5, "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn each_value_says_where_it_came_from() {
    let (dir, file) = temp_file("s.yaml", "metrics_addr: 127.0.0.1:2001\nretention: 45s\n");
    let s = Settings::resolve(
        &args(&[
            "--insecure",
            "--config",
            &file,
            "--api-addr",
            "127.0.0.1:1003",
        ]),
        &env_of(&[("HEARSAY_PUBLISH_RATE", "700")]),
    )
    .unwrap();
    let src = |name: &str| (s.resolved[name].value.clone(), s.resolved[name].source);
    assert_eq!(
        src("api_addr"),
        (Some("127.0.0.1:1003".into()), Source::Flag)
    );
    assert_eq!(src("publish_rate"), (Some("700".into()), Source::Env));
    assert_eq!(
        src("metrics_addr"),
        (Some("127.0.0.1:2001".into()), Source::File)
    );
    assert_eq!(
        src("gossip_addr"),
        (Some("0.0.0.0:7946".into()), Source::Default)
    );
    assert_eq!(
        src("gap_flush_after"),
        (Some("45s".into()), Source::Default),
        "derived from the retention"
    );
    assert_eq!(src("publish_burst"), (Some("140".into()), Source::Default));
    assert_eq!(s.node.retention, Duration::from_secs(45));
    assert_eq!(s.node.gap_flush_after, Duration::from_secs(45));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn old_millisecond_file_keys_still_work_with_a_warning() {
    let (dir, file) = temp_file(
        "old.yaml",
        "retention_ms: 12000\nreplay_window_ms: 60000\nshutdown_grace: 3s\nshutdown_grace_ms: 9000\n",
    );
    let s = Settings::resolve(&args(&["--insecure", "--config", &file]), &env_of(&[])).unwrap();
    assert_eq!(s.node.retention, Duration::from_secs(12));
    assert_eq!(s.replay_window, Duration::from_secs(60));
    assert_eq!(s.shutdown_grace, Duration::from_secs(3), "the new key wins");
    assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("deprecated"), "{:?}", s.warnings);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn durations_are_written_the_same_way_everywhere() {
    let (dir, file) = temp_file("d.toml", "webhook_timeout = 5000\n");
    let err =
        Settings::resolve(&args(&["--insecure", "--config", &file]), &env_of(&[])).unwrap_err();
    assert!(err.0[0].reason.contains("unit"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
    let s = Settings::resolve(
        &args(&["--insecure", "--replay-window", "2m"]),
        &env_of(&[("HEARSAY_RETENTION", "1m 30s")]),
    )
    .unwrap();
    assert_eq!(s.replay_window, Duration::from_secs(120));
    assert_eq!(s.node.retention, Duration::from_secs(90));
}

#[test]
fn settings_that_were_file_only_have_flags_and_the_outbound_limit_can_be_set() {
    let s = Settings::resolve(
        &args(&[
            "--insecure",
            "--max-gossip-connections",
            "16",
            "--outbound-bytes-per-second",
            "2000000",
        ]),
        &env_of(&[]),
    )
    .unwrap();
    assert_eq!(s.max_gossip_connections, 16);
    let out = s.node.outbound_bytes.expect("set");
    assert_eq!(
        out,
        RateSpec::new(2_000_000, 1 << 20).unwrap(),
        "burst at least a frame"
    );
    let s = Settings::resolve(&insecure(), &env_of(&[])).unwrap();
    assert_eq!(s.node.outbound_bytes, None, "unlimited by default");
}

#[test]
fn declared_defaults_parse_and_match_the_core() {
    let s = Settings::resolve(&insecure(), &env_of(&[])).unwrap();
    let core = NodeConfig::default();
    assert_eq!(s.node.limits, core.limits);
    assert_eq!(s.node.retention, core.retention);
    assert_eq!(s.node.retention_bytes, core.retention_bytes);
    assert_eq!(s.node.anti_entropy_interval, core.anti_entropy_interval);
    assert_eq!(s.node.direct_push_max_peers, core.direct_push_max_peers);
    assert_eq!(s.node.publish_rate, core.publish_rate);
    assert_eq!(s.node.inbound_frames_per_peer, core.inbound_frames_per_peer);
    assert_eq!(s.node.inbound_bytes_per_peer, core.inbound_bytes_per_peer);
    assert_eq!(s.app_queue, AppQueueConfig::default());
    assert_eq!(s.max_frame_bytes, crate::gossip::codec::DEFAULT_MAX_FRAME);
    for d in declared::ALL {
        assert!(s.resolved.contains_key(d.name), "{} was never read", d.name);
    }
}

#[test]
fn secrets_are_redacted_when_printed() {
    let s = Settings::resolve(
        &args(&["--api-token", "tok-123456"]),
        &env_of(&[("HEARSAY_GOSSIP_KEY", "0123456789abcdef0123")]),
    )
    .unwrap();
    let json = print::json(&s.resolved).to_string();
    let text = print::text(&s.resolved);
    for out in [&json, &text] {
        assert!(
            !out.contains("tok-123456") && !out.contains("0123456789abcdef"),
            "{out}"
        );
        assert!(out.contains("<redacted>"), "{out}");
    }
}

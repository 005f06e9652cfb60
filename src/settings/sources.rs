//! The settings that gather several declared settings into one value:
//! Kubernetes discovery, and the gossip keys.

use std::path::Path;

use super::declared::*;
use super::layers::{Layers, Source};
use super::{Env, K8sSettings, K8sSource, KeySource, MIN_KEY_LEN};

pub(super) fn resolve_k8s(l: &mut Layers, env: Env<'_>) -> Option<K8sSettings> {
    let non_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
    let mode = l.choice(&K8S_MODE);
    let service = non_empty(l.text(&K8S_SERVICE));
    let selector = non_empty(l.text(&K8S_SELECTOR)).unwrap_or_default();
    let mut namespace = non_empty(l.text(&K8S_NAMESPACE));
    if namespace.is_none() {
        namespace = env("POD_NAMESPACE").filter(|v| !v.is_empty());
        if namespace.is_some() {
            l.record(&K8S_NAMESPACE, namespace.clone(), Source::Env);
        }
    }
    let gossip_port_name = l.text(&K8S_GOSSIP_PORT_NAME).unwrap_or_default();
    let source = match mode.as_deref() {
        Some("endpointslices") => match service {
            Some(service) => Some(K8sSource::EndpointSlices { service }),
            None => {
                let who = l.blame(&K8S_SERVICE);
                l.fail(
                    who,
                    "the endpointslices mode needs the name of the headless Service",
                );
                None
            }
        },
        Some(_) => Some(K8sSource::Pods),
        None => None,
    };
    if source == Some(K8sSource::Pods) && selector.is_empty() {
        let who = l.blame(&K8S_SELECTOR);
        l.fail(
            who,
            "Kubernetes discovery needs the label selector of the app's pods, e.g. app=orders",
        );
    }
    let pod_uid = env("POD_UID").filter(|v| !v.is_empty());
    let pod_name = env("POD_NAME").filter(|v| !v.is_empty());
    if pod_uid.is_none() && pod_name.is_none() {
        l.fail(
            "POD_UID",
            "Kubernetes discovery needs this pod's identity: set POD_UID (and POD_NAME) from the downward API",
        );
    }
    Some(K8sSettings {
        source: source?,
        selector,
        namespace,
        gossip_port_name,
        pod_uid,
        pod_name,
    })
}

fn check_key_file(l: &mut Layers, s: &Setting, path: &Path) {
    let problem = match std::fs::read(path) {
        Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        Ok(key) if key.trim_ascii().len() < MIN_KEY_LEN => Some(format!(
            "{} holds fewer than {MIN_KEY_LEN} bytes",
            path.display()
        )),
        Ok(_) => None,
    };
    if let Some(reason) = problem {
        l.fail(s.flag(), reason);
    }
}

pub(super) fn resolve_keys(l: &mut Layers, insecure: bool) -> Option<KeySource> {
    let primary = l.path(&GOSSIP_KEY_FILE);
    let secondary = l.path(&GOSSIP_SECONDARY_KEY_FILE);
    let inline = l.text(&GOSSIP_KEY).filter(|v| !v.is_empty());
    match (primary, inline, insecure) {
        (Some(primary), _, _) => {
            check_key_file(l, &GOSSIP_KEY_FILE, &primary);
            // The secondary file exists only while a key is being rotated
            // (the Secret then has a `secondary` key): absent is fine.
            if let Some(path) = secondary.as_ref().filter(|p| p.exists()) {
                check_key_file(l, &GOSSIP_SECONDARY_KEY_FILE, path);
            }
            Some(KeySource::Files { primary, secondary })
        }
        (None, Some(key), _) => {
            if key.len() < MIN_KEY_LEN {
                l.fail(GOSSIP_KEY.env(), format!("fewer than {MIN_KEY_LEN} bytes"));
            }
            Some(KeySource::Inline(key.into_bytes()))
        }
        (None, None, true) => Some(KeySource::Insecure),
        (None, None, false) => {
            l.fail(
                GOSSIP_KEY_FILE.flag(),
                "a gossip key is required (HEARSAY_GOSSIP_KEY_FILE or HEARSAY_GOSSIP_KEY), or --insecure for local experiments",
            );
            None
        }
    }
}

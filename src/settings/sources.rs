//! The settings that gather several flags, variables and file keys into one
//! value: Kubernetes discovery, and the gossip keys.

use std::path::PathBuf;

use super::{
    Env, FileSettings, K8sSettings, K8sSource, KeySource, MIN_KEY_LEN, RunArgs, SettingError, bad,
};

pub(super) fn resolve_k8s(
    args: &RunArgs,
    env: Env<'_>,
    file: &FileSettings,
) -> Result<K8sSettings, SettingError> {
    let text = |flag: &Option<String>, var: &str, file: &Option<String>| {
        flag.clone()
            .or_else(|| env(var).filter(|v| !v.is_empty()))
            .or_else(|| file.clone())
            .filter(|v| !v.is_empty())
    };
    let mode =
        text(&args.k8s_mode, "HEARSAY_K8S_MODE", &file.k8s_mode).unwrap_or_else(|| "pods".into());
    let service = text(&args.k8s_service, "HEARSAY_K8S_SERVICE", &file.k8s_service);
    let source = match mode
        .parse::<K8sSource>()
        .map_err(|e| bad("--k8s-mode / HEARSAY_K8S_MODE", e))?
    {
        K8sSource::Pods => K8sSource::Pods,
        K8sSource::EndpointSlices { .. } => K8sSource::EndpointSlices {
            service: service.ok_or_else(|| {
                bad(
                    "--k8s-service / HEARSAY_K8S_SERVICE",
                    "the endpointslices mode needs the name of the headless Service",
                )
            })?,
        },
    };
    let selector = text(
        &args.k8s_selector,
        "HEARSAY_K8S_SELECTOR",
        &file.k8s_selector,
    )
    .unwrap_or_default();
    if source == K8sSource::Pods && selector.is_empty() {
        return Err(bad(
            "--k8s-selector / HEARSAY_K8S_SELECTOR",
            "Kubernetes discovery needs the label selector of the app's pods, e.g. app=orders",
        ));
    }
    let namespace = text(
        &args.k8s_namespace,
        "HEARSAY_K8S_NAMESPACE",
        &file.k8s_namespace,
    )
    .or_else(|| env("POD_NAMESPACE").filter(|v| !v.is_empty()));
    let gossip_port_name = text(
        &args.k8s_gossip_port_name,
        "HEARSAY_K8S_GOSSIP_PORT_NAME",
        &file.k8s_gossip_port_name,
    )
    .unwrap_or_else(|| "gossip".into());
    let pod_uid = env("POD_UID").filter(|v| !v.is_empty());
    let pod_name = env("POD_NAME").filter(|v| !v.is_empty());
    if pod_uid.is_none() && pod_name.is_none() {
        return Err(bad(
            "POD_UID",
            "Kubernetes discovery needs this pod's identity: set POD_UID (and POD_NAME) from the downward API",
        ));
    }
    Ok(K8sSettings {
        source,
        selector,
        namespace,
        gossip_port_name,
        pod_uid,
        pod_name,
    })
}

fn check_key_file(name: &str, path: &std::path::Path) -> Result<(), SettingError> {
    let key = std::fs::read(path)
        .map_err(|e| bad(name, format!("cannot read {}: {e}", path.display())))?;
    if key.trim_ascii().len() < MIN_KEY_LEN {
        return Err(bad(
            name,
            format!("{} holds fewer than {MIN_KEY_LEN} bytes", path.display()),
        ));
    }
    Ok(())
}

pub(super) fn resolve_keys(
    args: &RunArgs,
    env: Env<'_>,
    file: &FileSettings,
    insecure: bool,
) -> Result<KeySource, SettingError> {
    let primary = args
        .gossip_key_file
        .clone()
        .or_else(|| {
            env("HEARSAY_GOSSIP_KEY_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| file.gossip_key_file.clone().map(PathBuf::from));
    let secondary = args
        .gossip_secondary_key_file
        .clone()
        .or_else(|| {
            env("HEARSAY_GOSSIP_SECONDARY_KEY_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| file.gossip_secondary_key_file.clone().map(PathBuf::from));
    let inline = env("HEARSAY_GOSSIP_KEY").filter(|v| !v.is_empty());
    match (primary, inline, insecure) {
        (Some(primary), _, _) => {
            check_key_file("--gossip-key-file", &primary)?;
            // The secondary file exists only while a key is being rotated
            // (the Secret then has a `secondary` key): absent is fine.
            if let Some(path) = secondary.as_ref().filter(|p| p.exists()) {
                check_key_file("--gossip-secondary-key-file", path)?;
            }
            Ok(KeySource::Files { primary, secondary })
        }
        (None, Some(key), _) => {
            if key.len() < MIN_KEY_LEN {
                return Err(bad(
                    "HEARSAY_GOSSIP_KEY",
                    format!("fewer than {MIN_KEY_LEN} bytes"),
                ));
            }
            Ok(KeySource::Inline(key.into_bytes()))
        }
        (None, None, true) => Ok(KeySource::Insecure),
        (None, None, false) => Err(bad(
            "--gossip-key-file",
            "a gossip key is required (HEARSAY_GOSSIP_KEY_FILE or HEARSAY_GOSSIP_KEY), or --insecure for local experiments",
        )),
    }
}

//! One container started from its rendered spec, the way a container
//! runtime would: the image's entrypoint, command and user (read from the
//! Dockerfile's runtime stage), `command`/`args` with `$(VAR)` expansion,
//! `env` with `fieldRef`, `secretKeyRef` and `configMapKeyRef` values, the
//! security context (user, group, no new privileges, no capabilities,
//! read-only root), and volumes mounted at their `mountPath`s in its own
//! mount namespace. The process runs inside the pod's network namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

/// What the image gives a container: read from the last stage of a
/// Dockerfile, with the files it copies in mapped to files here.
#[derive(Clone, Debug)]
pub struct Image {
    /// The repository the image is named by (`hearsay` in `hearsay:0.1.0`).
    pub repository: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: (u32, u32),
    /// Path in the image → path here.
    pub files: BTreeMap<String, PathBuf>,
}

fn json_list(line: &str, instruction: &str) -> Option<Vec<String>> {
    let rest = line.strip_prefix(instruction)?.trim();
    serde_json::from_str(rest).ok()
}

impl Image {
    /// The runtime stage of `dockerfile` (its last `FROM`), with the
    /// image path `file` provided by `local`.
    pub fn from_dockerfile(repository: &str, dockerfile: &Path, file: &str, local: &Path) -> Image {
        let text = std::fs::read_to_string(dockerfile).unwrap();
        let last = text.rsplit("\nFROM ").next().unwrap();
        let mut image = Image {
            repository: repository.into(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            user: (0, 0),
            files: BTreeMap::from([(file.to_owned(), local.to_owned())]),
        };
        for line in last.lines().map(str::trim) {
            if let Some(v) = json_list(line, "ENTRYPOINT") {
                image.entrypoint = v;
            } else if let Some(v) = json_list(line, "CMD") {
                image.cmd = v;
            } else if let Some(u) = line.strip_prefix("USER ") {
                let mut ids = u.trim().split(':').map(|s| s.parse::<u32>().unwrap());
                let uid = ids.next().unwrap();
                image.user = (uid, ids.next().unwrap_or(uid));
            }
        }
        assert!(
            !image.entrypoint.is_empty(),
            "the Dockerfile's runtime stage has an ENTRYPOINT"
        );
        image
    }

    fn local(&self, path: &str) -> String {
        self.files
            .get(path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| path.to_owned())
    }
}

/// What a pod gives its containers.
pub struct PodContext<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub ip: String,
    pub node_ip: String,
    pub netns: &'a str,
    pub spec: &'a Value,
    /// Volume name → directory holding its files.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    pub secrets: &'a BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub config_maps: &'a BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Added to every container: the kubeconfig in place of the in-cluster
    /// service account.
    pub extra_env: Vec<(String, String)>,
}

/// `$(NAME)` → its value (Kubernetes' expansion; `$$` escapes).
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(end) = tail.strip_prefix("$(").and_then(|t| t.find(')')) {
            let name = &tail[2..2 + end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&tail[..3 + end]),
            }
            rest = &tail[3 + end..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn field(ctx: &PodContext, path: &str) -> String {
    match path {
        "metadata.name" => ctx.name.into(),
        "metadata.namespace" => ctx.namespace.into(),
        "metadata.uid" => ctx.uid.into(),
        "status.podIP" => ctx.ip.clone(),
        "status.hostIP" => ctx.node_ip.clone(),
        "spec.nodeName" => "node-1".into(),
        "spec.serviceAccountName" => ctx.spec["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .into(),
        other => panic!("fieldRef {other} is not supported by the pod runner"),
    }
}

fn key_of(
    from: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    r: &Value,
    what: &str,
) -> Result<String, String> {
    let name = r["name"].as_str().unwrap_or_default();
    let key = r["key"].as_str().unwrap_or_default();
    from.get(name)
        .and_then(|m| m.get(key))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .ok_or_else(|| format!("{what} {name} has no key {key}"))
}

/// The container's environment: the image's, then `env` in order (each
/// may refer to the ones before it), then the runner's additions.
pub fn environment(ctx: &PodContext, c: &Value) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOSTNAME".into(), ctx.name.into()),
    ];
    if c.get("envFrom").is_some() {
        return Err("envFrom is not supported by the pod runner".into());
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(f) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            field(ctx, f)
        } else if e["valueFrom"].get("secretKeyRef").is_some() {
            key_of(ctx.secrets, &e["valueFrom"]["secretKeyRef"], "Secret")?
        } else if e["valueFrom"].get("configMapKeyRef").is_some() {
            key_of(
                ctx.config_maps,
                &e["valueFrom"]["configMapKeyRef"],
                "ConfigMap",
            )?
        } else {
            String::new()
        };
        env.push((name, value));
    }
    env.extend(ctx.extra_env.iter().cloned());
    Ok(env)
}

/// The argv Kubernetes runs: `command` replaces the entrypoint, `args`
/// the image's CMD.
pub fn argv(image: &Image, c: &Value, env: &[(String, String)]) -> Vec<String> {
    let list = |k: &str| -> Option<Vec<String>> {
        c[k].as_array().map(|a| {
            a.iter()
                .map(|s| expand(s.as_str().unwrap_or_default(), env))
                .collect()
        })
    };
    let mut argv = match (list("command"), list("args")) {
        (Some(cmd), args) => [cmd, args.unwrap_or_default()].concat(),
        (None, Some(args)) => [image.entrypoint.clone(), args].concat(),
        (None, None) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    };
    argv[0] = image.local(&argv[0]);
    argv
}

/// The user and group a container runs as: its security context, then the
/// pod's, then the image's `USER`; `runAsNonRoot` refuses root.
pub fn user(image: &Image, pod_spec: &Value, c: &Value) -> Result<(u32, u32), String> {
    let pick = |k: &str| {
        c["securityContext"][k]
            .as_u64()
            .or_else(|| pod_spec["securityContext"][k].as_u64())
    };
    let uid = pick("runAsUser").map_or(image.user.0, |v| v as u32);
    let gid = pick("runAsGroup").map_or(image.user.1, |v| v as u32);
    let non_root = c["securityContext"]["runAsNonRoot"]
        .as_bool()
        .or_else(|| pod_spec["securityContext"]["runAsNonRoot"].as_bool())
        .unwrap_or(false);
    if non_root && uid == 0 {
        return Err("container has runAsNonRoot and would run as root".into());
    }
    Ok((uid, gid))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell run inside the new mount namespace before the container's
/// process: mount its volumes, make the root read-only if asked, then
/// become its user with no privileges and exec it.
fn setup_script(
    ctx: &PodContext,
    c: &Value,
    scratch: &Path,
    (uid, gid): (u32, u32),
) -> Result<String, String> {
    let mut lines = vec![
        "set -eu".to_owned(),
        format!(
            "mount -t tmpfs tmpfs {}",
            quote(&scratch.display().to_string())
        ),
    ];
    let mut overlays: Vec<PathBuf> = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        if m.get("subPath").is_some() {
            return Err("subPath mounts are not supported by the pod runner".into());
        }
        let name = m["name"].as_str().unwrap();
        let target = PathBuf::from(m["mountPath"].as_str().unwrap());
        let source = ctx
            .volumes
            .get(name)
            .ok_or_else(|| format!("volumeMount {name} names no volume of the pod"))?;
        // A mount point that does not exist on this machine is made in an
        // overlay of its nearest existing ancestor, seen only here.
        if !target.exists() {
            let base = target.ancestors().find(|a| a.exists()).unwrap().to_owned();
            if !overlays.contains(&base) {
                let n = overlays.len();
                let (upper, work) = (scratch.join(format!("u{n}")), scratch.join(format!("w{n}")));
                lines.push(format!(
                    "mkdir {u} {w} && mount -t overlay overlay -o lowerdir={b},upperdir={u},workdir={w} {b}",
                    u = quote(&upper.display().to_string()),
                    w = quote(&work.display().to_string()),
                    b = quote(&base.display().to_string()),
                ));
                overlays.push(base);
            }
            lines.push(format!("mkdir -p {}", quote(&target.display().to_string())));
        }
        let t = quote(&target.display().to_string());
        lines.push(format!(
            "mount --bind {} {t}",
            quote(&source.display().to_string())
        ));
        if m["readOnly"].as_bool().unwrap_or(false) {
            lines.push(format!("mount -o remount,bind,ro {t}"));
        }
    }
    let sc = &c["securityContext"];
    if sc["readOnlyRootFilesystem"].as_bool().unwrap_or(false) {
        lines.push("mount -o remount,bind,ro /".into());
        for base in &overlays {
            lines.push(format!(
                "mount -o remount,bind,ro {}",
                quote(&base.display().to_string())
            ));
        }
    }
    let mut setpriv = format!("exec setpriv --reuid={uid} --regid={gid} --clear-groups");
    if sc["allowPrivilegeEscalation"].as_bool() == Some(false) {
        setpriv.push_str(" --no-new-privs");
    }
    let drops_all = sc["capabilities"]["drop"]
        .as_array()
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    if drops_all {
        setpriv.push_str(" --inh-caps=-all --bounding-set=-all");
    }
    lines.push(format!("{setpriv} -- \"$@\""));
    Ok(lines.join("\n"))
}

/// The command that starts container `c` of the pod: `ip netns exec`
/// (which also gives it a mount namespace of its own) → the setup script →
/// the container's argv, with its environment and nothing else.
pub fn command(
    ctx: &PodContext,
    image: &Image,
    c: &Value,
    scratch: &Path,
    log: &Path,
) -> Result<tokio::process::Command, String> {
    let env = environment(ctx, c)?;
    let argv = argv(image, c, &env);
    let user = user(image, ctx.spec, c)?;
    std::fs::create_dir_all(scratch).unwrap();
    let script = setup_script(ctx, c, scratch, user)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", ctx.netns, "sh", "-c", &script, "container"])
        .args(&argv)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true);
    Ok(cmd)
}

/// `kubectl exec`: `argv` in the pod's network namespace as the
/// container's user, with its environment.
pub fn exec(
    ctx: &PodContext,
    image: &Image,
    c: &Value,
    argv: &[&str],
) -> Result<tokio::process::Command, String> {
    let env = environment(ctx, c)?;
    let (uid, gid) = user(image, ctx.spec, c)?;
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", ctx.netns, "setpriv"])
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--no-new-privs", "--"])
        .arg(image.local(argv[0]))
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    Ok(cmd)
}

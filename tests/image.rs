//! The image that ships, built and run: the Dockerfile's runtime stage
//! built with podman exactly as written, from a binary built the way its
//! build stage builds it; then three sidecars as containers with the
//! chart's security context (read-only root, uid 65532, every capability
//! dropped, no new privileges) and host networking, delivering to each
//! other's apps.
//!
//! No registry can be reached here, so the base image is a stand-in built
//! `FROM scratch` with what distroless/static holds that hearsay could use
//! (`/etc/passwd` and `/etc/group` with `nonroot`, `/tmp`, `/home/nonroot`),
//! tagged with the real base's name so that the Dockerfile's `FROM` uses
//! it; and the build stage is replaced by a local folder
//! (`podman build --build-context build=DIR`), holding the binary built by
//! [`BUILD_COMMAND`], which a test checks is the Dockerfile's.
//!
//! Needs root and podman with runc (installed with apt when missing, as
//! root); without them it skips with the reason outside CI and fails in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How the Dockerfile's build stage builds the binary (its `RUN` line).
const BUILD_COMMAND: &str = "RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target x86_64-unknown-linux-gnu --bin hearsay";
const BUILT: &str = "target/x86_64-unknown-linux-gnu/release/hearsay";
const BASE: &str = "gcr.io/distroless/static-debian12:nonroot";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// podman and runc, installed from Debian when missing; or why not.
fn ensure_podman() -> Result<(), String> {
    if !common::is_root() {
        return Err("building and running images needs root".into());
    }
    common::ensure_programs(&[("podman", "podman"), ("runc", "runc")])
}

/// The podman settings this machine needs: runc (crun refuses its hybrid
/// cgroups), no default ulimits, no systemd.
fn containers_conf() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("containers.conf");
    std::fs::write(
        &path,
        "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    path
}

fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .env("CONTAINERS_CONF", containers_conf())
        .args(args)
        .output()
        .expect("run podman")
}

fn podman_ok(args: &[&str], what: &str) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {what} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The binary as the Dockerfile's build stage builds it (in this
/// checkout's target directory; cargo rebuilds only what changed).
fn static_binary() -> PathBuf {
    let status = Command::new("sh")
        .arg("-c")
        .arg(BUILD_COMMAND)
        .current_dir(root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "{BUILD_COMMAND} failed");
    root().join(BUILT)
}

/// The stand-in for distroless/static, built once per machine.
fn base_image(dir: &Path) {
    if podman(&["image", "exists", BASE]).status.success() {
        return;
    }
    let ctx = dir.join("base");
    std::fs::create_dir_all(ctx.join("etc")).unwrap();
    std::fs::create_dir_all(ctx.join("tmp")).unwrap();
    std::fs::create_dir_all(ctx.join("home/nonroot")).unwrap();
    std::fs::write(
        ctx.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("etc/group"),
        "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY etc /etc\nCOPY --chmod=1777 tmp /tmp\nCOPY --chown=65532:65532 home /home\n",
    )
    .unwrap();
    podman_ok(
        &["build", "-q", "-t", BASE, &ctx.display().to_string()],
        "build the base stand-in",
    );
}

#[test]
fn the_test_builds_the_binary_as_the_dockerfile_does() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("RUN {BUILD_COMMAND}")),
        "the Dockerfile's build stage runs `{BUILD_COMMAND}`"
    );
    assert!(dockerfile.contains(&format!("cp {BUILT} /hearsay")));
    assert!(dockerfile.contains(&format!("FROM {BASE}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_read_only_as_nonroot_and_three_containers_deliver() {
    if let Err(why) = ensure_podman() {
        assert!(std::env::var_os("CI").is_none(), "in CI: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let dir = common::test_dir("image");
    let binary = static_binary();
    base_image(&dir);
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::copy(&binary, build.join("hearsay")).unwrap();
    let tag = format!("localhost/hearsay-test:{}", std::process::id());
    podman_ok(
        &[
            "build",
            "-q",
            "--build-context",
            &format!("build={}", build.display()),
            "-t",
            &tag,
            "-f",
            &root().join("Dockerfile").display().to_string(),
            &root().display().to_string(),
        ],
        "build the Dockerfile's runtime stage",
    );

    // The image as the chart runs it.
    let inspect = podman_ok(
        &[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}} {{.Config.Entrypoint}} {{.Config.Cmd}}",
            &tag,
        ],
        "inspect",
    );
    assert_eq!(inspect.trim(), "65532:65532 [/hearsay] [run]");
    let version = podman_ok(
        &[
            "run",
            "--rm",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            &tag,
            "--version",
        ],
        "run --version",
    );
    assert!(version.starts_with("hearsay "), "{version}");

    // Three sidecars as containers: a wrapper stands for the binary, so
    // the local cluster runs each node with `podman run`. Its directory
    // (key, peers file, ready file) is mounted at the same path.
    let label = format!("hearsay-test={}", std::process::id());
    let wrapper = dir.join("hearsay-in-podman");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport CONTAINERS_CONF={conf}\nexport PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\nexec podman run --rm --label {label} --network host --read-only \\\n  --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \\\n  -e RUST_LOG -e HEARSAY_LOG_FORMAT -v {d}:{d} {tag} \"$@\"\n",
            d = dir.display(),
            conf = containers_conf().display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts = hearsay::demo::cluster::ClusterOptions {
        binary: wrapper,
        dir: dir.join("cluster"),
        key: Some(common::KEY.to_vec()),
        extra_args: Vec::new(),
        start_timeout: Duration::from_secs(60),
    };
    std::fs::create_dir_all(&opts.dir).unwrap();
    // The containers run as 65532 and write their ready files there.
    std::fs::set_permissions(&opts.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let recv = common::receivers(3).await;
    // The webhook named as users name it: `localhost`, resolved inside a
    // static binary in an image without NSS modules.
    let urls: Vec<String> = recv
        .iter()
        .map(|r| format!("http://localhost:{}/hearsay", r.addr.port()))
        .collect();
    let started = hearsay::demo::cluster::LocalCluster::start(opts, &urls).await;
    let cleanup = || {
        let ids = podman(&["ps", "-aq", "--filter", &format!("label={label}")]);
        for id in text(&ids.stdout).split_whitespace() {
            let _ = podman(&["rm", "-f", "-t", "0", id]);
        }
        let _ = podman(&["rmi", "-f", &tag]);
    };
    let c = match started {
        Ok(c) => c,
        Err(e) => {
            cleanup();
            panic!("the containers did not start: {e:#}");
        }
    };
    let outcome = async {
        c.wait_all_see_all(Duration::from_secs(30)).await.unwrap();
        let id = common::publish(&c, 0, "sku-1").await;
        common::eventually(
            Duration::from_secs(20),
            "both other apps get it",
            || async { common::count(&recv[1], &id) == 1 && common::count(&recv[2], &id) == 1 },
        )
        .await;
    };
    let result = tokio::time::timeout(Duration::from_secs(90), outcome).await;
    common::finish(c).await;
    cleanup();
    result.expect("delivery between the containers within 90 s");
    let _ = std::fs::remove_dir_all(&dir);
}

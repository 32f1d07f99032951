//! The Debian packages, installed on this machine with `dpkg -i` (CI runs
//! as root in a fresh container): files in place, the controller started
//! the way its systemd unit starts it (as the `porta` user with only
//! CAP_NET_ADMIN — this machine has no systemd to run the unit itself),
//! health checks answered, a laptop enrolled with the packaged `porta`;
//! then removing and reinstalling keeps the data directory and its keys,
//! and so does purging. Everything it installed is removed at the end.

use porta_tests::netns::Lab;
use porta_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const DATA: &str = "/var/lib/porta";
/// How long the packaged controller may take to answer.
const WAIT: Duration = Duration::from_secs(15);
const PACKAGES: [&str; 4] = ["porta-controller", "porta-gateway", "porta", "portactl"];

fn run(command: &[&str]) -> Output {
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// Undoes what the test installed, whatever happened.
struct Cleanup {
    created_user: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-u", "porta"]).status();
        let mut purge = vec!["--purge"];
        purge.extend(PACKAGES);
        let _ = Command::new("dpkg").args(&purge).output();
        let _ = std::fs::remove_dir_all(DATA);
        let _ = std::fs::remove_dir_all("/etc/porta");
        if self.created_user {
            let _ = Command::new("deluser").args(["--system", "porta"]).output();
        }
    }
}

/// `porta-controller serve` as porta-controller.service runs it, with the
/// test's port and interface.
fn serve(api: &str, interface: &str, log: &Path) -> std::process::Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new("setpriv")
        .args([
            "--reuid=porta",
            "--regid=porta",
            "--clear-groups",
            "--inh-caps=+net_admin",
            "--ambient-caps=+net_admin",
            "--",
            "/usr/bin/porta-controller",
            "serve",
            "--config",
            "/etc/porta/controller.toml",
            "--listen",
            api,
            "--gateway-interface",
            interface,
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn portactl(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["/usr/bin/portactl", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve did not stop cleanly: {status}");
}

#[test]
fn the_packages_install_run_and_keep_their_data_across_removal() {
    if Path::new(DATA).exists() || Path::new("/etc/porta").exists() {
        // Never touch a real installation.
        panic!(
            "{DATA} or /etc/porta exists: run this test on a machine without Porta installed (CI does)"
        );
    }
    // Lab::new checks for root with a clear message.
    drop(Lab::new().unwrap());
    let created_user = Command::new("getent")
        .args(["passwd", "porta"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true);
    let _cleanup = Cleanup { created_user };
    let work = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let debs: Vec<String> = build_debs(&work.path().join("debs"))
        .iter()
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    let install = || {
        let mut command = vec!["dpkg", "-i"];
        command.extend(debs.iter().map(String::as_str));
        run(&command);
    };
    install();

    for file in [
        "/usr/bin/porta-controller",
        "/usr/bin/porta-gateway",
        "/usr/share/man/man1/porta-gateway.1.gz",
        "/usr/share/bash-completion/completions/porta-gateway",
        "/usr/bin/porta",
        "/usr/bin/portactl",
        "/lib/systemd/system/porta-controller.service",
        "/lib/systemd/system/porta-gateway.service",
        "/lib/systemd/system/porta.service",
        "/etc/porta/controller.toml",
        "/usr/share/man/man1/portactl.1.gz",
        "/usr/share/man/man1/porta.1.gz",
        "/usr/share/man/man1/porta-controller-serve.1.gz",
        "/usr/share/bash-completion/completions/porta-controller",
        "/usr/share/man/man1/portactl-logs-verify.1.gz",
        "/usr/share/bash-completion/completions/portactl",
        "/usr/share/zsh/vendor-completions/_portactl",
        "/usr/share/fish/vendor_completions.d/portactl.fish",
        "/usr/bin/porta-desktop",
        "/usr/share/applications/porta-desktop.desktop",
        "/etc/xdg/autostart/porta-desktop.desktop",
        "/usr/share/icons/hicolor/scalable/apps/porta.svg",
        "/usr/share/icons/hicolor/48x48/apps/porta.png",
        "/usr/share/icons/hicolor/256x256/apps/porta-disconnected.png",
        "/usr/share/man/man1/porta-daemon.1.gz",
    ] {
        assert!(Path::new(file).exists(), "{file} was not installed");
    }
    // The menu entries are valid, the app handles porta: links, and the
    // package made the group whose members may connect.
    run(&[
        "desktop-file-validate",
        "/usr/share/applications/porta-desktop.desktop",
        "/etc/xdg/autostart/porta-desktop.desktop",
    ]);
    let entry = std::fs::read_to_string("/usr/share/applications/porta-desktop.desktop").unwrap();
    assert!(
        entry.contains("MimeType=x-scheme-handler/porta;")
            && entry.contains("Exec=porta-desktop %u")
    );
    run(&["getent", "group", "porta"]);
    run(&["getent", "passwd", "porta"]);
    let unit = std::fs::read_to_string("/lib/systemd/system/porta-controller.service").unwrap();
    assert!(unit.contains("User=porta") && unit.contains("CapabilityBoundingSet=CAP_NET_ADMIN"));

    // The package made the data directory for `init` (systemd is not
    // needed first), then `init` as the admin guide's step 2 writes it,
    // with this test's endpoints.
    let metadata = std::fs::metadata(DATA).expect("the package creates /var/lib/porta");
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(metadata.permissions().mode() & 0o777, 0o700);
        let porta_uid = String::from_utf8(run(&["id", "-u", "porta"]).stdout).unwrap();
        assert_eq!(
            metadata.uid().to_string(),
            porta_uid.trim(),
            "owned by porta"
        );
    }
    let guide = std::fs::read_to_string(repo.join("docs/admin-guide.md")).unwrap();
    let guide_init = "sudo -u porta porta-controller init --data /var/lib/porta";
    assert!(
        guide.contains(&format!("{guide_init} \\\n")),
        "the admin guide's step 2 is what this test runs"
    );
    let api = format!("127.0.0.1:{}", free_port());
    let wg = format!("127.0.0.1:{}", free_port());
    let mut init_command: Vec<&str> = guide_init.split(' ').collect();
    init_command.extend([
        "--api-endpoint",
        &api,
        "--endpoint",
        &wg,
        "--no-ipv6",
        "--json",
    ]);
    let init = run(&init_command);
    let init: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let key = Path::new(DATA).join("gateway.key");
    let key_before = std::fs::read(&key).unwrap();

    // Started as the unit starts it; answers; a laptop enrolls.
    let interface = format!("pkg{}", std::process::id() % 100_000);
    let profiles = work.path().join("portactl.toml");
    let serve_log = work.path().join("serve.log");
    let mut controller = serve(&api, &interface, &serve_log);
    let admin = init["admin_invitation"].as_str().unwrap();
    wait_while_running("the controller", &mut controller, &serve_log, WAIT, || {
        Command::new("/usr/bin/portactl")
            .args(["--config", profiles.to_str().unwrap(), "login", admin])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    let log = std::fs::read_to_string(work.path().join("serve.log")).unwrap();
    assert!(
        log.contains("embedded gateway up"),
        "the gateway needs only CAP_NET_ADMIN: {log}"
    );
    // The standard gRPC health check, over the pinned TLS connection.
    let fingerprint: porta_proto::CertFingerprint = init["certificate_sha256"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let serving = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let channel = porta_proto::connect::connect(&api, fingerprint)
            .await
            .unwrap();
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: "porta.v1.Admin".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let health = portactl(&profiles, &["--json", "whoami"]);
    let me: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(me["role"], "admin");
    let enrolled = portactl(
        &profiles,
        &[
            "--json",
            "enroll",
            "--user",
            "anna",
            "--device",
            "anna-laptop",
        ],
    );
    let enrolled: serde_json::Value = serde_json::from_slice(&enrolled.stdout).unwrap();
    let laptop = work.path().join("laptop");
    run(&[
        "/usr/bin/porta",
        "--state",
        laptop.to_str().unwrap(),
        "enroll",
        enrolled["invitation"].as_str().unwrap(),
    ]);
    assert!(laptop.join("private.key").exists());
    stop(controller);

    // Removing keeps the data, the keys and the edited configuration;
    // reinstalling (as an upgrade does) finds them and serves as before.
    let mut remove = vec!["dpkg", "-r"];
    remove.extend(PACKAGES);
    run(&remove);
    assert!(!Path::new("/usr/bin/porta-controller").exists());
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key_before,
        "the gateway key survived removal"
    );
    assert!(Path::new(DATA).join("store").exists());
    assert!(
        Path::new("/etc/porta/controller.toml").exists(),
        "a conffile stays until purge"
    );
    install();
    let serve_log = work.path().join("serve-again.log");
    let mut controller = serve(&api, &interface, &serve_log);
    wait_while_running(
        "the reinstalled controller",
        &mut controller,
        &serve_log,
        WAIT,
        || {
            Command::new("/usr/bin/portactl")
                .args(["--config", profiles.to_str().unwrap(), "whoami"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        },
    );
    let devices = portactl(&profiles, &["--json", "devices", "list"]);
    assert!(String::from_utf8_lossy(&devices.stdout).contains("anna-laptop"));
    stop(controller);

    let mut purge = vec!["dpkg", "--purge"];
    purge.extend(PACKAGES);
    run(&purge);
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key_before,
        "purging keeps the data too"
    );
}

#[test]
fn packaging_what_is_built_names_what_is_missing_and_builds_nothing() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(repo.join("packaging/build-debs.sh"))
        .args(["--profile", "release", "--no-build", "--out"])
        .arg(out.path())
        .env("CARGO_TARGET_DIR", empty.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("release/porta-controller is missing: build it first"),
        "{said}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing was built"
    );
}

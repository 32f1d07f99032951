//! The host a controller runs on: when its gateway cannot create the TUN
//! device, `serve` stops at once and says why, naming `/dev/net/tun`, what
//! it found and the fix.
//!
//! Each case runs the real `porta-controller serve` as the unprivileged
//! `nobody` user with only CAP_NET_ADMIN (as the packaged unit runs it as
//! `porta`), inside a private mount namespace (`unshare --mount`) whose
//! `/dev/net` is a fresh tmpfs: the host's own `/dev/net/tun` is never
//! touched.

use porta_tests::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the test's `/dev/net` holds.
enum TunNode {
    Missing,
    Mode(u32),
}

/// A `serve` started as `nobody` in its own mount and network namespace.
struct Serve {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// `serve` with its embedded gateway, as `nobody` with CAP_NET_ADMIN, with
/// `node` as `/dev/net/tun`, in fresh mount and network namespaces.
fn spawn_serve(node: TunNode) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let controller = binary("porta-controller");
    let api = format!("127.0.0.1:{}", free_port());
    let init = Command::new(&controller)
        .args(["init", "--data"])
        .arg(&data)
        .args(["--api-endpoint", &api, "--endpoint"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--no-ipv6", "--json"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    chown_nobody(dir.path());

    let make_node = match node {
        TunNode::Missing => String::new(),
        TunNode::Mode(mode) => {
            format!("mknod /dev/net/tun c 10 200 && chmod {mode:o} /dev/net/tun && ")
        }
    };
    let script = format!(
        "ip link set lo up && mkdir -p /dev/net && mount -t tmpfs tmpfs /dev/net && {make_node}\
         exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
         --inh-caps=+net_admin --ambient-caps=+net_admin -- \
         {controller} serve --data {data} --listen {api} --gateway-interface porta-host",
        controller = controller.display(),
        data = data.display(),
    );
    let log = dir.path().join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "private"])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Serve {
        child,
        log,
        _dir: dir,
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `serve` with `node` and returns what it printed once it failed
/// (it must fail, and promptly).
fn failed_serve(node: TunNode) -> String {
    let mut serve = spawn_serve(node);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve kept running without a usable TUN device: {}",
            read_log(&serve.log)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = read_log(&serve.log);
    assert!(!status.success(), "serve must fail: {status}: {log}");
    log
}

fn chown_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_root_only_tun_node_stops_serve_with_the_user_the_mode_and_the_fix() {
    netns::Lab::new().unwrap(); // checks for root with a clear message
    let error = failed_serve(TunNode::Mode(0o600));
    for needed in [
        "permission denied opening /dev/net/tun for user nobody",
        "0600",
        "chmod 0666 /dev/net/tun",
    ] {
        assert!(error.contains(needed), "{needed:?} missing from: {error}");
    }
}

#[test]
fn a_missing_tun_node_stops_serve_with_the_commands_that_create_it() {
    netns::Lab::new().unwrap();
    let error = failed_serve(TunNode::Missing);
    for needed in ["/dev/net/tun is missing", "mknod /dev/net/tun c 10 200"] {
        assert!(error.contains(needed), "{needed:?} missing from: {error}");
    }
}

#[test]
fn with_a_standard_tun_node_the_same_unprivileged_gateway_starts() {
    // The control case: the same user, capability and namespaces with a
    // standard 0666 node get the embedded gateway up.
    netns::Lab::new().unwrap();
    let mut serve = spawn_serve(TunNode::Mode(0o666));
    let log = serve.log.clone();
    wait_while_running(
        "the embedded gateway",
        &mut serve.child,
        &log,
        Duration::from_secs(30),
        || read_log(&log).contains("embedded gateway up"),
    );
}

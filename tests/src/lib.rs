//! Helpers for Porta's end-to-end tests.
//!
//! Everything here drives *real* processes: [`TestController`] runs
//! `porta-controller init` and `porta-controller serve` from the workspace's
//! target directory on a loopback port, with its data directory (sled store,
//! TLS key, gateway key) in a fresh temp dir; clients connect over TLS
//! pinning the fingerprint from the printed admin invitation, exactly as
//! `portactl` and `porta` do. Nothing is mocked.
//!
//! # Layout
//! * this file: [`TestController`] (a controller on loopback), [`binary`]
//!   (our programs from the target directory), [`build_debs`], waiting
//!   and port helpers.
//! * [`netns`]: the lab — network namespaces joined by veth pairs, with
//!   processes started inside them and everything removed on drop.
//! * [`town`]: a controller in the lab's `town` namespace with a logged-in
//!   `portactl`, and laptops enrolled in `home`.
//! * [`laptop`]: the tunnel service running in `home`, as
//!   `porta.service` runs it.

#![allow(missing_docs, clippy::unwrap_used)]

use anyhow::{Context, Result, bail};
use porta_proto::connect::{Bearer, connect};
use porta_proto::pb;
use porta_proto::pb::admin_client::AdminClient;
use porta_proto::pb::device_client::DeviceClient;
use porta_proto::pb::enrollment_client::EnrollmentClient;
use porta_proto::{CertFingerprint, Invitation};
use porta_tunnel::keys::PrivateKey;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

pub use porta_proto;

pub mod certs;
pub mod gateway_api;
pub mod laptop;
pub mod netns;
pub mod portactl;
pub mod rsyslog;
pub mod samba;
pub mod slapd;
pub mod smtp;
pub mod town;

pub use porta_proto::connect::Authed;

/// `cp -a from to`, replacing whatever `to` was (file or directory).
pub fn copy_replacing(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let _ = std::fs::remove_file(to);
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        copied.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// Path of one of the workspace's binaries (built by `cargo test --workspace`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (it builds every binary)",
        path.display()
    );
    path
}

/// The text of a process's log file (or why it could not be read).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("(could not read {}: {e})", path.display()))
}

/// Polls `ready` until it holds while `process` runs; panics at once with
/// the process's own log (`log`) if it exits first, and after `timeout`
/// otherwise.
pub fn wait_while_running(
    what: &str,
    process: &mut std::process::Child,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) {
    poll_process(what, log, timeout, || {
        if ready() {
            return Ok(());
        }
        Err(process.try_wait().ok().flatten())
    })
}

/// The loop behind [`wait_while_running`] and [`netns::Lab::wait_for`]:
/// `step` answers `Ok` when ready, `Err(Some(status))` when the process
/// has exited, `Err(None)` to keep waiting.
pub(crate) fn poll_process(
    what: &str,
    log: &Path,
    timeout: Duration,
    mut step: impl FnMut() -> Result<(), Option<std::process::ExitStatus>>,
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match step() {
            Ok(()) => return,
            Err(Some(status)) => panic!(
                "waiting for {what}: the process exited with {status}; its log:\n{}",
                read_log(log)
            ),
            Err(None) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what} after {timeout:?}; the process's log so far:\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Builds the Debian packages from this build's binaries, as they are
/// (`packaging/build-debs.sh --profile <this profile> --no-build`), into
/// `out`.
pub fn build_debs(out: &Path) -> Vec<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let profile = binary("porta")
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .expect("profile directory")
        .to_owned();
    let output = std::process::Command::new(repo.join("packaging/build-debs.sh"))
        .args(["--profile", &profile, "--no-build", "--out"])
        .arg(out)
        .output()
        .expect("packaging/build-debs.sh");
    assert!(output.status.success(), "build-debs.sh: {output:?}");
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("the packages")
        .map(|e| e.expect("an entry").path())
        .collect();
    assert_eq!(debs.len(), 4, "{debs:?}");
    debs
}

/// Headless LibreOffice converting `files` into `out_dir` with `args`
/// (its profile kept in `out_dir`).
pub fn soffice(files: &[&Path], args: &[&str], out_dir: &Path) -> std::process::Output {
    let output = std::process::Command::new("soffice")
        .arg(format!(
            "-env:UserInstallation=file://{}",
            out_dir.join("lo-profile").display()
        ))
        .arg("--headless")
        .args(args)
        .arg("--outdir")
        .arg(out_dir)
        .args(files)
        .output()
        .expect("soffice (Debian's libreoffice-calc-nogui; .ci/run installs it)");
    assert!(output.status.success(), "{output:?}");
    output
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Python for flood scripts (prepended to them): raises the script's
/// open-files limit, and `report(held)` prints as JSON how many of the
/// sockets `held` are open, then keeps them a while.
/// A small filesystem of its own (tmpfs: a real filesystem that fills
/// as a disk does), unmounted when dropped.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) at `at`.
    pub fn mount(at: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(mounted.success(), "mount tmpfs (the tests run as root)");
        Self(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

pub const PY_HOLD_AND_REPORT: &str = r#"
import json, resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
def report(held):
    time.sleep(2)
    print(json.dumps({"opened": len(held), "held": sum(1 for s in held if still_open(s))}), flush=True)
    time.sleep(30)
"#;

/// A running `porta-controller serve` with its own data directory.
pub struct TestController {
    pub dir: tempfile::TempDir,
    pub api: String,
    pub fingerprint: CertFingerprint,
    pub admin_invitation: String,
    child: Option<Child>,
}

impl TestController {
    /// `init` with defaults (plus `extra` flags) and `serve`.
    pub async fn start(extra: &[&str]) -> Result<Self> {
        Self::start_in(tempfile::tempdir()?, extra).await
    }

    /// Like [`TestController::start`] in `dir`, whose `data` (if it
    /// exists, e.g. as a mount point) must be empty.
    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Result<Self> {
        let api = format!("127.0.0.1:{}", free_port());
        let data = dir.path().join("data");
        let output = Command::new(binary("porta-controller"))
            .arg("init")
            .arg("--data")
            .arg(&data)
            .args([
                "--api-endpoint",
                &api,
                "--endpoint",
                "127.0.0.1:51820",
                "--json",
            ])
            .args(extra)
            .output()
            .await?;
        if !output.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("init --json output")?;
        let admin_invitation = report["admin_invitation"]
            .as_str()
            .context("admin_invitation")?
            .to_owned();
        let fingerprint = report["certificate_sha256"]
            .as_str()
            .context("fingerprint")?
            .parse()?;
        let mut controller = Self {
            dir,
            api,
            fingerprint,
            admin_invitation,
            child: None,
        };
        controller.serve().await?;
        Ok(controller)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The serving process's id, while it serves.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The serving process's resident memory in bytes (from /proc).
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.pid().expect("serving");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// Starts `serve` and waits until it accepts TLS connections.
    pub async fn serve(&mut self) -> Result<()> {
        self.serve_with(&[]).await
    }

    /// Like [`TestController::serve`], with more `serve` flags.
    pub async fn serve_with(&mut self, extra: &[&str]) -> Result<()> {
        assert!(self.child.is_none(), "already serving");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))?;
        let child = Command::new(binary("porta-controller"))
            .arg("serve")
            .arg("--data")
            .arg(self.data())
            .args([
                "--listen",
                &self.api,
                "--log-format",
                "json",
                "--no-gateway",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        for _ in 0..200 {
            if connect(&self.api, self.fingerprint).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait()? {
                self.child = None;
                bail!("serve exited with {status}: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("serve did not come up: {}", self.log())
    }

    /// What `serve` logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub async fn stop(&mut self) -> Result<bool> {
        let mut child = self.child.take().context("not serving")?;
        let pid = child.id().context("pid")?;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await??;
        Ok(status.success())
    }

    /// SIGKILL: no chance to flush or clean up.
    pub async fn kill9(&mut self) -> Result<()> {
        let mut child = self.child.take().context("not serving")?;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// A fresh pinned TLS channel.
    pub async fn channel(&self) -> Channel {
        connect(&self.api, self.fingerprint)
            .await
            .expect("connect to the controller")
    }

    /// Redeems the admin invitation (once per controller) and returns an
    /// admin client.
    pub async fn admin(&self) -> AdminClient<Authed> {
        let credential = self
            .login(&self.admin_invitation)
            .await
            .expect("admin login")
            .credential;
        self.admin_with(&credential).await
    }

    /// An Admin client sending `credential`.
    pub async fn admin_with(&self, credential: &str) -> AdminClient<Authed> {
        AdminClient::with_interceptor(self.channel().await, Bearer::new(credential))
    }

    /// A Device client sending `credential`.
    pub async fn device_with(&self, credential: &str) -> DeviceClient<Authed> {
        DeviceClient::with_interceptor(self.channel().await, Bearer::new(credential))
    }

    /// An unauthenticated Enrollment client.
    pub async fn enrollment(&self) -> EnrollmentClient<Channel> {
        EnrollmentClient::new(self.channel().await)
    }

    /// A new API credential named `name` with `role`, made by `admin` and
    /// redeemed: the credential to send.
    pub async fn api_credential(
        &self,
        admin: &mut AdminClient<Authed>,
        name: &str,
        role: pb::Role,
    ) -> String {
        let invitation = admin
            .create_api_credential(pb::CreateApiCredentialRequest {
                name: name.into(),
                role: role as i32,
                ttl_seconds: 0,
            })
            .await
            .expect("create an API credential")
            .into_inner()
            .invitation;
        self.login(&invitation).await.expect("login").credential
    }

    /// Redeems a login invitation.
    pub async fn login(&self, invitation: &str) -> Result<pb::LoginResponse, tonic::Status> {
        let invitation = Invitation::decode(invitation).expect("invitation");
        let request = pb::LoginRequest {
            token: invitation.token,
            client_name: "tests".into(),
        };
        Ok(self.enrollment().await.login(request).await?.into_inner())
    }
}

/// A device's side of enrollment: a key made here, the invitation redeemed.
pub struct EnrolledDevice {
    pub key: PrivateKey,
    pub credential: String,
    pub config: pb::DeviceConfig,
}

/// Redeems a device invitation with a fresh key.
pub async fn enroll(
    enrollment: &mut EnrollmentClient<Channel>,
    invitation: &str,
) -> Result<EnrolledDevice, tonic::Status> {
    let invitation = Invitation::decode(invitation).expect("invitation");
    let key = PrivateKey::generate();
    let response = enrollment
        .enroll(pb::EnrollRequest {
            token: invitation.token,
            public_key: key.public_key().to_base64(),
            hostname: "laptop".into(),
            os: "linux".into(),
            attempt: String::new(),
        })
        .await?
        .into_inner();
    Ok(EnrolledDevice {
        key,
        credential: response.credential,
        config: response.config.expect("config"),
    })
}

/// Creates a user (if missing) and an enrollment token; returns the invitation.
pub async fn invite(admin: &mut AdminClient<Authed>, user: &str, device: &str) -> String {
    let created = admin
        .create_user(pb::CreateUserRequest {
            name: user.into(),
            ..Default::default()
        })
        .await;
    if let Err(status) = created {
        assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
    }
    admin
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user: user.into(),
            device_name: device.into(),
            ttl_seconds: 0,
            ..Default::default()
        })
        .await
        .expect("create token")
        .into_inner()
        .invitation
}

/// Creates an empty group.
pub async fn add_group(admin: &mut AdminClient<Authed>, name: &str) {
    admin
        .create_group(pb::CreateGroupRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Creates a user in no group.
pub async fn add_user(admin: &mut AdminClient<Authed>, name: &str) {
    admin
        .create_user(pb::CreateUserRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Puts users into a group.
pub async fn join(admin: &mut AdminClient<Authed>, group: &str, users: &[&str]) {
    let users = users.iter().map(|u| u.to_string()).collect();
    admin
        .add_group_members(pb::GroupMembersRequest {
            group: group.into(),
            users,
        })
        .await
        .unwrap();
}

/// Creates `count` enrollment tokens for `user` (created first), devices
/// `pc-0000`, `pc-0001`, …, concurrently; returns their secret tokens.
pub async fn invite_many(admin: &mut AdminClient<Authed>, user: &str, count: usize) -> Vec<String> {
    add_user(admin, user).await;
    futures::future::join_all((0..count).map(|i| {
        let mut admin = admin.clone();
        async move {
            Invitation::decode(&invite(&mut admin, user, &format!("pc-{i:04}")).await)
                .unwrap()
                .token
        }
    }))
    .await
}

/// Everything an admin can list: compared before and after refused calls
/// to prove the store did not change.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub users: Vec<pb::User>,
    pub groups: Vec<pb::Group>,
    pub tokens: Vec<pb::EnrollmentToken>,
    pub devices: Vec<pb::DeviceInfo>,
    pub credentials: Vec<pb::ApiCredential>,
    pub gateways: Vec<pb::GatewayInfo>,
}

pub async fn snapshot(admin: &mut AdminClient<Authed>) -> Snapshot {
    Snapshot {
        users: admin
            .list_users(pb::ListUsersRequest {})
            .await
            .unwrap()
            .into_inner()
            .users,
        groups: admin
            .list_groups(pb::ListGroupsRequest {})
            .await
            .unwrap()
            .into_inner()
            .groups,
        tokens: admin
            .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {})
            .await
            .unwrap()
            .into_inner()
            .tokens,
        devices: admin
            .list_devices(pb::ListDevicesRequest {
                user: String::new(),
                include_revoked: true,
            })
            .await
            .unwrap()
            .into_inner()
            .devices,
        credentials: admin
            .list_api_credentials(pb::ListApiCredentialsRequest {
                include_revoked: true,
            })
            .await
            .unwrap()
            .into_inner()
            .credentials,
        gateways: admin
            .list_gateways(pb::ListGatewaysRequest {})
            .await
            .unwrap()
            .into_inner()
            .gateways,
    }
}

/// Checks that `png` holds a rendered window (`what`, for the message):
/// at least the app's minimum size, and more than one flat colour.
pub fn assert_window_rendered(png: &Path, what: &str) {
    let identify = std::process::Command::new("convert")
        .arg(png)
        .args(["-format", "%w %h %[fx:standard_deviation]", "info:"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&identify.stdout).into_owned();
    let parts: Vec<f64> = said
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        parts.len() == 3 && parts[0] >= 320.0 && parts[1] >= 400.0 && parts[2] > 0.02,
        "{what}: {said}"
    );
}

/// Where screenshots go: `temp`, or docs/screenshots when
/// PORTA_UPDATE_SCREENSHOTS is set.
pub fn screenshot_dir(temp: &Path) -> PathBuf {
    if std::env::var_os("PORTA_UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        docs
    } else {
        temp.to_owned()
    }
}

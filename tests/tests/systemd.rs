//! The Debian packages' units under a real systemd: Debian bookworm
//! containers (debootstrap, then `systemd-nspawn --boot`), each in one of
//! the lab's network namespaces, with the packages installed by `dpkg -i`.
//!
//! * the controller host: `porta-controller.service` starts under its
//!   sandboxing (ProtectSystem=strict, DeviceAllow, CapabilityBoundingSet,
//!   SystemCallFilter, MemoryDenyWriteExecute, StateDirectory…), answers,
//!   survives `systemctl restart`, logs clean lines to the journal and
//!   stops cleanly;
//! * a laptop: `porta.service` connects it to the controller's gateway;
//! * a branch host: `porta-gateway.service` starts from its environment
//!   file and reports to the controller.
//!
//! Two more tests run the README's and the admin and auditor guides' shell
//! blocks as written, in such containers, on a town's first day.
//!
//! The root file system is made once (about 40 s) in
//! /var/tmp/porta-test-rootfs and shared read-only; every container writes
//! to its own tmpfs (`--volatile=overlay`), so nothing of a run remains.
//!
//! Longer than our usual file on purpose: the container plumbing
//! (debootstrap, nspawn, waiting for units) and the guides' shell blocks
//! run as written belong together; neither is used anywhere else.

use porta_tests::netns::{Lab, addr};
use porta_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the root file system is kept between runs (the name changes
/// whenever the package list does).
const ROOTFS: &str = "/var/tmp/porta-test-rootfs/bookworm-3";

/// The Debian root file system the containers boot, made on first use
/// (once, however many tests ask at the same time).
fn rootfs() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY.get_or_init(make_rootfs).clone()
}

fn make_rootfs() -> PathBuf {
    let root = PathBuf::from(ROOTFS);
    if root.join("usr/lib/systemd/systemd").exists() {
        return root;
    }
    let partial = root.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    let output = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus,iproute2,adduser,sudo,procps,wireguard-tools",
            "bookworm",
        ])
        .arg(&partial)
        .arg("http://deb.debian.org/debian")
        .output()
        .expect("debootstrap (Debian's debootstrap package; .ci/run installs it)");
    assert!(
        output.status.success(),
        "debootstrap: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &root).unwrap();
    root
}

/// A booted container.
struct Container {
    name: String,
    nspawn: Child,
    log: PathBuf,
}

impl Container {
    /// Boots `root` in the lab's namespace `ns` with the packages in
    /// `debs` at /debs and the host's TUN device.
    fn boot(lab: &Lab, ns: &str, name: &str, debs: &Path, work: &Path) -> Self {
        let log = work.join(format!("{name}.console"));
        let nspawn = Command::new("systemd-nspawn")
            .arg("--directory")
            .arg(rootfs())
            .args([
                "--volatile=overlay",
                "--boot",
                // The host's PID 1 is not systemd: no machine registration.
                "--register=no",
                "--keep-unit",
                "--console=passive",
            ])
            .arg(format!("--machine={name}"))
            .arg(format!(
                "--network-namespace-path=/run/netns/{}",
                lab.ns(ns)
            ))
            // nspawn grants network administration only with a network of
            // its own making; this namespace is the container's own too.
            .arg("--capability=CAP_NET_ADMIN")
            .arg(format!("--bind-ro={}:/debs", debs.display()))
            .arg("--bind=/dev/net/tun")
            // /proc/sys/net is the namespace's own: let the container set
            // forwarding, as on a real host (the rest stays read-only).
            .env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "network")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("systemd-nspawn (Debian's systemd-container; .ci/run installs it)");
        let container = Self {
            name: name.to_owned(),
            nspawn,
            log,
        };
        container.wait("systemd to finish booting", Duration::from_secs(60), || {
            let state = container.sh("systemctl is-system-running 2>/dev/null || true");
            let state = String::from_utf8_lossy(&state.stdout);
            matches!(state.trim(), "running" | "degraded")
        });
        container
    }

    /// The container's PID 1, as the host sees it.
    fn leader(&self) -> Option<String> {
        let output = Command::new("pgrep")
            .args(["-P", &self.nspawn.id().to_string()])
            .output()
            .ok()?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    }

    /// Runs `script` with sh inside the container, whatever its status.
    fn sh(&self, script: &str) -> Output {
        let Some(leader) = self.leader() else {
            return Command::new("false").output().unwrap();
        };
        Command::new("nsenter")
            .args(["--target", &leader, "--all", "--", "sh", "-c", script])
            .output()
            .unwrap()
    }

    /// Runs `script` inside and returns its stdout; fails on an error.
    fn ok(&self, script: &str) -> String {
        let output = self.sh(script);
        assert!(
            output.status.success(),
            "{}: {script}: {}{}",
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls `ready` every 300 ms; fails with the container's console and
    /// journal after `timeout`.
    fn wait(&self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if Instant::now() > deadline {
                let journal = self.sh("journalctl --no-pager -n 60 -o short-monotonic");
                panic!(
                    "{}: timed out waiting for {what}\nconsole:\n{}\njournal:\n{}",
                    self.name,
                    read_log(&self.log),
                    String::from_utf8_lossy(&journal.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The unit's journal, as its lines were written.
    fn journal(&self, unit: &str) -> String {
        self.ok(&format!("journalctl -u {unit} --no-pager -o cat"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM asks the container's systemd to shut down cleanly.
        let _ = Command::new("kill")
            .arg(self.nspawn.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.nspawn.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_units_run_under_systemd_with_their_sandboxing() {
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    let work = tempfile::tempdir().unwrap();
    let debs = work.path().join("debs");
    build_debs(&debs);

    // The controller host, set up as the admin guide says (runuser for
    // `sudo -u`, which minimal Debian lacks).
    let town = Container::boot(&lab, "town", "porta-town", &debs, work.path());
    town.ok("dpkg -i /debs/porta-controller_*.deb /debs/portactl_*.deb");
    assert_eq!(
        town.ok("stat -c '%U %a' /var/lib/porta").trim(),
        "porta 700",
        "the package made the data directory"
    );
    let init = json(&town.ok(&format!(
        "runuser -u porta -- porta-controller init --data /var/lib/porta \
         --endpoint {town}:51820 --api-endpoint {town}:7443 --no-ipv6 --json",
        town = addr::TOWN_PUBLIC
    )));
    town.ok("systemctl enable --now porta-controller");
    let admin = init["admin_invitation"].as_str().unwrap();
    town.wait("the controller to answer", Duration::from_secs(30), || {
        town.sh(&format!("portactl login {admin}")).status.success()
    });
    assert_eq!(json(&town.ok("portactl --json whoami"))["role"], "admin");
    assert_eq!(
        town.ok("systemctl is-active porta-controller").trim(),
        "active"
    );
    let journal = town.journal("porta-controller");
    assert!(journal.contains("embedded gateway up"), "{journal}");
    for line in journal.lines().filter(|l| l.contains("listening")) {
        assert!(
            !line.contains('\u{1b}'),
            "colour codes in the journal: {line:?}"
        );
        assert!(
            !line.starts_with("20"),
            "a timestamp of its own (the journal has one): {line:?}"
        );
    }

    // Restart: it answers again, with the same data.
    town.ok("systemctl restart porta-controller");
    town.wait("the restarted controller", Duration::from_secs(30), || {
        town.sh("portactl whoami").status.success()
    });

    // A laptop: the package makes the `porta` group and starts the tunnel
    // service; a staff member in the group enrolls and connects without
    // root, through the embedded gateway.
    let invited = json(&town.ok("portactl --json enroll --user anna --device anna-laptop"));
    let home = Container::boot(&lab, "home", "porta-home", &debs, work.path());
    home.ok("dpkg -i /debs/porta_*.deb");
    assert_eq!(home.ok("systemctl is-active porta").trim(), "active");
    home.ok("getent group porta");
    home.ok("adduser --disabled-password --gecos '' anna >/dev/null && adduser anna porta");
    let enrolled = home.ok(&format!(
        "runuser -u anna -- porta enroll {}",
        invited["invitation"].as_str().unwrap()
    ));
    assert!(enrolled.contains("Enrolled anna-laptop"), "{enrolled}");
    home.ok("runuser -u anna -- porta up");
    wait_for_handshake(&home);
    // Restarted (as at boot), the service connects by itself.
    home.ok("systemctl restart porta");
    wait_for_handshake(&home);
    // Someone outside the group is told what IT must run.
    home.ok("adduser --disabled-password --gecos '' bob >/dev/null");
    let refused = home.sh("runuser -u bob -- porta status");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("sudo adduser bob porta"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    home.ok("runuser -u anna -- porta down");
    home.ok("systemctl stop porta");
    assert_eq!(
        home.ok("systemctl show -p Result --value porta").trim(),
        "success",
        "porta.service stopped cleanly: {}",
        home.journal("porta")
    );

    // A branch host: the remote gateway unit starts from its environment
    // file and reports to the controller.
    let added = json(&town.ok(&format!(
        "portactl --json gateways add annex --endpoint {}:51820",
        addr::BRANCH_PUBLIC
    )));
    let branch = Container::boot(&lab, "branch", "porta-branch", &debs, work.path());
    branch.ok("dpkg -i /debs/porta-gateway_*.deb");
    branch.ok(&format!(
        "echo PORTA_GATEWAY_INVITATION={} >> /etc/porta/gateway.env",
        added["invitation"].as_str().unwrap()
    ));
    branch.ok("systemctl start porta-gateway");
    wait_for_annex(&town);
    assert_eq!(
        branch.ok("systemctl is-active porta-gateway").trim(),
        "active"
    );

    // A clean stop.
    town.ok("systemctl stop porta-controller");
    assert_eq!(
        town.ok("systemctl show -p Result --value porta-controller")
            .trim(),
        "success"
    );
    assert!(town.journal("porta-controller").contains("stopped"));
}

/// The shell blocks of a guide, in order, each with the section heading
/// it is under.
fn guide_blocks(page: &str) -> Vec<(String, Vec<String>)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join(page)).unwrap();
    let mut heading = String::new();
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("## ") {
            heading = title.to_owned();
        }
        if line == "```sh" {
            let mut commands: Vec<String> = Vec::new();
            let mut continued = false;
            for line in lines.by_ref().take_while(|l| *l != "```") {
                if continued {
                    let last = commands.last_mut().unwrap();
                    last.push(' ');
                    last.push_str(line.trim());
                } else {
                    commands.push(line.to_owned());
                }
                continued = line.ends_with('\\');
                if continued {
                    let last = commands.last_mut().unwrap();
                    last.truncate(last.trim_end_matches('\\').trim_end().len());
                }
            }
            blocks.push((heading.clone(), commands));
        }
    }
    blocks
}

/// What a town's machines have before the docs' commands run: the town's
/// names (as its DNS would give them), a working directory with the
/// packages, and the spreadsheet the CSV enrollments read.
fn prepare_for_guides(container: &Container) {
    container.ok(&format!(
        "printf '{} vpn.example-town.cat\\n{} annex.example-town.cat\\n127.0.1.1 %s\\n' \
         \"$(hostname)\" >> /etc/hosts && mkdir -p /root/work && cp /debs/*.deb /root/work/ && \
         printf 'user,device,groups,display_name,email\\n\
         jordi,jordi-pc,gis,Jordi Roca,jordi@example-town.cat\\n\
         marta,marta-pc,gis,Marta Vila,marta@example-town.cat\\n' > /root/work/staff.csv",
        addr::TOWN_PUBLIC,
        addr::BRANCH_PUBLIC
    ));
}

/// Runs one line of a guide in `container`, as a person at a terminal
/// would (`script` gives it one; "y" answers a confirmation), in /root/work.
fn run_as_written(container: &Container, line: &str) -> String {
    let script = format!(
        "cd /root/work && printf 'y\\n' | script -qec {} /dev/null",
        shell_quote(line)
    );
    let output = container.sh(&script);
    let said = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert!(
        output.status.success(),
        "{}: `{line}` failed:\n{said}{}",
        container.name,
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[test]
fn the_admin_and_auditor_guides_run_as_written() {
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    let work = tempfile::tempdir().unwrap();
    let debs = work.path().join("debs");
    build_debs(&debs);
    let town = Container::boot(&lab, "town", "guide-town", &debs, work.path());
    let annex = Container::boot(&lab, "branch", "guide-annex", &debs, work.path());
    let home = Container::boot(&lab, "home", "guide-home", &debs, work.path());
    for container in [&town, &annex, &home] {
        prepare_for_guides(container);
    }

    let mut invitation = String::new();
    let mut on_annex = false;
    let mut said_by_guides = String::new();
    for page in ["docs/admin-guide.md", "docs/auditor-guide.md"] {
        for (heading, block) in guide_blocks(page) {
            if heading.starts_with("12. Following the town's directory")
                || heading.starts_with("13. Invitations by e-mail")
                || heading.starts_with("15. A feed for the SIEM")
            {
                // They need the town's directory, mail server and SIEM
                // collector, which these containers do not have: the
                // directory, email and feed tests run the same commands
                // against real ones.
                continue;
            }
            if heading.starts_with("5. Revoke") {
                // Between steps 4 and 5 anna connects, as the staff guide
                // tells her (its steps are inline, not a block).
                let anna = last_invitation(
                    &said_by_guides,
                    Some(porta_proto::pb::InvitationKind::Device),
                )
                .unwrap();
                home.ok("cd /root/work && dpkg -i porta_*.deb");
                home.ok(&format!("porta enroll {anna}"));
                home.ok("porta up");
                wait_for_handshake(&home);
            }
            for line in block {
                let command = line.split(" #").next().unwrap().trim().to_owned();
                if line.trim_start().starts_with("# on the annex host") {
                    // "…with the porta-gateway package installed".
                    annex.ok("cd /root/work && dpkg -i porta-gateway_*.deb");
                    on_annex = true;
                    continue;
                }
                if command.is_empty() || command.starts_with('#') {
                    continue;
                }
                if command.starts_with("packaging/") {
                    // Built by this test already (build_debs).
                    continue;
                }
                // What a person types instead of the placeholders.
                let command = command
                    .replace("porta1_…", &invitation)
                    .replace("_NEW.deb", "_*.deb")
                    .replace("porta-2026-11-23.tar.gz", "porta-*.tar.gz")
                    // A container may set only its own network's keys; the
                    // guide's --system also loads the kernel-wide ones.
                    .replace(
                        "sudo sysctl --system",
                        "sudo sysctl -p /etc/sysctl.d/60-porta.conf",
                    );
                let container = if command.starts_with("portactl") {
                    on_annex = false;
                    &town
                } else if on_annex {
                    &annex
                } else {
                    &town
                };
                let said = run_as_written(container, &command);
                if let Some(newer) = last_invitation(&said, None) {
                    invitation = newer;
                }
                said_by_guides.push_str(&said);
                if command.starts_with("sudo systemctl enable --now porta-controller")
                    || command.starts_with("sudo systemctl start porta-controller")
                {
                    town.wait("the controller", Duration::from_secs(30), || {
                        town.sh("ss -ltn | grep -q ':7443 '").status.success()
                    });
                }
                if command.starts_with("sudo systemctl enable --now porta-gateway") {
                    wait_for_annex(&town);
                }
            }
        }
    }
    // What the guides promise along the way.
    assert!(
        said_by_guides.contains("Revoked anna-laptop"),
        "{said_by_guides}"
    );
    assert!(said_by_guides.contains("role: auditor") || said_by_guides.contains("auditor"));
    assert!(
        said_by_guides.contains("OK"),
        "the logs verify: {said_by_guides}"
    );
}

/// The last invitation in `text` (of `kind`, if given).
fn last_invitation(text: &str, kind: Option<porta_proto::pb::InvitationKind>) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .rfind(|word| {
            word.starts_with("porta1_")
                && porta_proto::Invitation::decode(word)
                    .is_ok_and(|i| kind.is_none_or(|kind| i.kind == kind))
        })
        .map(str::to_owned)
}

/// Waits until the laptop's tunnel has completed a handshake.
fn wait_for_handshake(home: &Container) {
    home.wait("the laptop's handshake", Duration::from_secs(30), || {
        let status = home.sh("porta status --json");
        serde_json::from_slice::<Value>(&status.stdout).is_ok_and(|s| s["last_handshake"].is_u64())
    });
}

/// Waits until the annex gateway has reported to the controller.
fn wait_for_annex(town: &Container) {
    town.wait("the annex to report", Duration::from_secs(30), || {
        let list = town.sh("portactl --json gateways list");
        serde_json::from_slice::<Value>(&list.stdout).is_ok_and(|list| {
            list.as_array().is_some_and(|all| {
                all.iter()
                    .any(|g| g["name"] == "annex" && g["last_seen_at"].is_string())
            })
        })
    });
}

#[test]
fn the_readme_runs_as_written() {
    use porta_proto::pb::InvitationKind;
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    let work = tempfile::tempdir().unwrap();
    let debs = work.path().join("debs");
    build_debs(&debs);
    // The admin's computer is the town box; a laptop; the annex host. The
    // README's commands assume Porta's programs are installed.
    let town = Container::boot(&lab, "town", "readme-town", &debs, work.path());
    let home = Container::boot(&lab, "home", "readme-home", &debs, work.path());
    let annex = Container::boot(&lab, "branch", "readme-annex", &debs, work.path());
    for (container, packages) in [
        (&town, "porta-controller_*.deb portactl_*.deb"),
        (&home, "porta_*.deb"),
        (&annex, "porta-gateway_*.deb"),
    ] {
        prepare_for_guides(container);
        container.ok(&format!("cd /root/work && dpkg -i {packages}"));
    }

    let mut said = String::new();
    let mut background = 0;
    for (heading, block) in guide_blocks("README.md") {
        if block.iter().any(|l| l.contains("cargo ")) {
            // The two commands: CI runs the second; `serve --init` is
            // controller/tests/cli.rs's.
            continue;
        }
        for line in block {
            let command = line.split(" #").next().unwrap().trim().to_owned();
            if command.is_empty() || command.starts_with('#') {
                continue;
            }
            let kind = if command.contains("porta enroll") {
                InvitationKind::Device
            } else if command.contains("gateway --controller") {
                InvitationKind::Gateway
            } else {
                InvitationKind::Login
            };
            let command = match last_invitation(&said, Some(kind)) {
                Some(invitation) => command.replace("porta1_…", &invitation),
                None => command,
            };
            let container = if command.starts_with("sudo porta ")
                || command.starts_with("porta ")
                || command.starts_with("sudo wg")
            {
                &home
            } else if command.starts_with("porta-gateway") {
                &annex
            } else {
                &town
            };
            // Programs that stay in the foreground run in the background
            // here, until they are ready.
            let foreground = command.starts_with("porta-controller serve")
                || command.starts_with("porta-gateway");
            if foreground {
                background += 1;
                container.ok(&format!(
                    "cd /root/work && ({command}) > /root/work/background-{background}.log 2>&1 &"
                ));
                if command.starts_with("porta-controller serve") {
                    town.wait("the controller", Duration::from_secs(30), || {
                        town.sh("ss -ltn | grep -q ':7443 '").status.success()
                    });
                } else {
                    wait_for_annex(&town);
                }
                continue;
            }
            said.push_str(&run_as_written(container, &command));
            if command == "porta up" {
                wait_for_handshake(&home);
            }
        }
        let _ = heading;
    }
    assert!(said.contains("interface: porta0 (up)"), "{said}");
    assert!(said.contains("Revoked anna-laptop"), "{said}");
    assert!(said.contains("OK"), "the logs verify: {said}");
}

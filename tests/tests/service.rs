//! The tunnel service (`porta daemon`) and the `porta` CLI as its
//! unprivileged front end, with real users and groups of this machine: a
//! member of the `porta` group enrolls, connects and disconnects without
//! root; another user is refused, even through a socket opened to all; the
//! private key and the credential never cross the socket; the service
//! comes back connected after a restart, renews the tunnel when the
//! network changes, and shows a revocation.

use porta_proto::local;
use porta_tests::binary;
use porta_tests::laptop::{TunnelService, town_server_reachable};
use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, json, path, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

/// Users (and the `porta` group, if the tests made it) of this machine,
/// removed again when dropped.
struct Accounts {
    users: Vec<String>,
}

/// The `porta` group is one for the whole machine while tests run in
/// parallel: the first holder makes it if it is missing and the last one
/// removes it again, so no test pulls the group from under another one's
/// users. The same lock keeps `useradd`/`userdel` from racing for
/// `/etc/passwd`'s lock.
struct MachineGroup {
    holders: usize,
    made: bool,
}

static MACHINE_GROUP: std::sync::Mutex<MachineGroup> = std::sync::Mutex::new(MachineGroup {
    holders: 0,
    made: false,
});

fn machine_group() -> std::sync::MutexGuard<'static, MachineGroup> {
    MACHINE_GROUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Accounts {
    fn new() -> Self {
        let mut group = machine_group();
        if group.holders == 0 && !run(&["getent", "group", "porta"]).status.success() {
            ok(&["addgroup", "--system", "porta"]);
            group.made = true;
        }
        group.holders += 1;
        Self { users: Vec::new() }
    }

    /// A fresh user; in the `porta` group with `adduser NAME porta`, as the
    /// admin guide says, when `member`.
    fn user(&mut self, name: &str, member: bool) -> String {
        let _group = machine_group();
        let _ = run(&["userdel", name]);
        ok(&[
            "useradd",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]);
        self.users.push(name.to_owned());
        if member {
            ok(&["adduser", name, "porta"]);
        }
        name.to_owned()
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        let mut group = machine_group();
        for user in &self.users {
            let _ = run(&["userdel", user]);
        }
        group.holders -= 1;
        if group.holders == 0 && group.made {
            let _ = run(&["groupdel", "porta"]);
            group.made = false;
        }
    }
}

fn run(command: &[&str]) -> Output {
    std::process::Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap()
}

fn ok(command: &[&str]) {
    let output = run(command);
    assert!(
        output.status.success(),
        "{}: {}",
        command.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `porta` as `user` (with that user's groups), in the home namespace,
/// talking to the service on `socket`.
fn porta_as(lab: &Lab, user: &str, socket: &std::path::Path, args: &[&str]) -> Output {
    let porta = binary("porta");
    let mut command = vec![
        "setpriv",
        "--reuid",
        user,
        "--regid",
        user,
        "--init-groups",
        "--",
        path(&porta),
        "--socket",
        path(socket),
    ];
    command.extend_from_slice(args);
    lab.run("home", &command).unwrap()
}

/// Every answer of the local API, as the root test process gets it.
async fn every_answer(socket: &std::path::Path) -> Vec<Vec<u8>> {
    use prost::Message;
    let mut client = porta_client::local::connect(socket).await.unwrap();
    let mut answers = Vec::new();
    let status = client
        .get_status(local::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    answers.push(status.encode_to_vec());
    answers.push(format!("{status:?}").into_bytes());
    let mut stream = client
        .watch_status(local::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    answers.push(first.encode_to_vec());
    let diagnostics = client
        .diagnostics(local::DiagnosticsRequest {})
        .await
        .unwrap()
        .into_inner();
    answers.push(diagnostics.text.into_bytes());
    let settings = client
        .get_settings(local::SettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    answers.push(settings.encode_to_vec());
    answers
}

#[test]
fn a_group_member_connects_without_root_and_others_are_refused() {
    let mut accounts = Accounts::new();
    let anna = accounts.user("porta-t-anna", true);
    let bob = accounts.user("porta-t-bob", false);
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, true);
    town.admin(&lab, &["groups", "add", "lan"]);
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.2/32"]);
    let invitation = town.admin(
        &lab,
        &[
            "enroll",
            "--user",
            "anna",
            "--device",
            "anna-home",
            "--groups",
            "lan",
        ],
    )["invitation"]
        .as_str()
        .unwrap()
        .to_owned();

    let tunnel = lab.iface("s");
    let mut service = TunnelService::start(&mut lab, &town, &tunnel);
    let (socket, state) = (service.socket.clone(), service.state.clone());
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "root:porta 0660");

    // Anna, in the group: enroll, connect, status — no root anywhere.
    let enrolled = porta_as(&lab, &anna, &socket, &["enroll", &invitation]);
    assert!(enrolled.status.success(), "{}", text(&enrolled));
    assert!(
        text(&enrolled).contains("Enrolled anna-home for anna"),
        "{}",
        text(&enrolled)
    );
    let up = porta_as(&lab, &anna, &socket, &["up"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("Connected anna-home"), "{}", text(&up));
    let reachable = town_server_reachable;
    wait_until(
        "the town server through the tunnel",
        Duration::from_secs(30),
        || reachable(&lab),
    );
    wait_until("a connected status", Duration::from_secs(10), || {
        json(porta_as(&lab, &anna, &socket, &["status", "--json"]))["state"] == "connected"
    });
    let status = porta_as(&lab, &anna, &socket, &["status"]);
    let said = text(&status);
    assert!(
        said.contains(&format!("interface: {tunnel} (up)")),
        "{said}"
    );
    assert!(
        said.contains("latest handshake:") && !said.contains("never"),
        "{said}"
    );
    // `wg show` keeps working against the service's tunnel.
    let wg = lab.exec("home", &["wg", "show", &tunnel]).unwrap();
    assert!(text(&wg).contains("latest handshake"), "{}", text(&wg));

    // Diagnostics for the help desk: state and reachability, no secrets.
    let diagnostics = porta_as(&lab, &anna, &socket, &["diagnostics"]);
    let report = text(&diagnostics);
    assert!(report.contains("state: connected"), "{report}");
    assert!(
        report.contains(&format!(
            "controller: {}:7443 (reachable)",
            addr::TOWN_PUBLIC
        )),
        "{report}"
    );
    assert!(report.contains("172.31.2.2"), "the town's routes: {report}");

    // The private key and the device credential never cross the socket.
    let key = std::fs::read_to_string(state.join("private.key")).unwrap();
    let key = key.trim();
    let key_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key).unwrap();
    let credential = toml_credential(&std::fs::read_to_string(state.join("device.toml")).unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut answers = runtime.block_on(every_answer(&socket));
    answers.extend([
        enrolled.stdout,
        up.stdout,
        status.stdout,
        diagnostics.stdout,
    ]);
    for answer in &answers {
        let lossy = String::from_utf8_lossy(answer);
        assert!(!lossy.contains(key), "the key in {lossy}");
        assert!(!lossy.contains(&credential), "the credential in {lossy}");
        assert!(
            !answer
                .windows(key_bytes.len())
                .any(|w| w == key_bytes.as_slice()),
            "the key's bytes in an answer"
        );
    }

    // Bob, not in the group: refused by the socket's mode, with the
    // command IT must run…
    let refused = porta_as(&lab, &bob, &socket, &["status"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains(&format!("sudo adduser {bob} porta")),
        "{}",
        text(&refused)
    );
    // …and his diagnostics say what is known (the service runs, he may not
    // ask it) and why the rest is not — no false "not running".
    let report = text(&porta_as(&lab, &bob, &socket, &["diagnostics"]));
    assert!(
        report.contains(&format!("service: running, but {bob} may not ask it"))
            && report.contains(&format!("sudo adduser {bob} porta"))
            && report.contains("state: unknown")
            && !report.contains("not running")
            && !report.contains("1970"),
        "{report}"
    );
    // …and by the service itself when the socket is opened to everyone
    // by mistake.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["status"][..], &["down"], &["diagnostics"]] {
        let refused = porta_as(&lab, &bob, &socket, args);
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            text(&refused).contains(&format!("sudo adduser {bob} porta")),
            "{args:?}: {}",
            text(&refused)
        );
    }
    assert!(reachable(&lab), "bob's attempts changed nothing");
    assert!(
        service
            .log()
            .contains("refused a caller outside the porta group")
    );
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).unwrap();

    // The network changes under the tunnel (a new address, as from Wi-Fi
    // to cable): the service renews it by itself.
    let home_if = lab.iface("hometown");
    let moved = "172.31.1.7";
    lab.exec(
        "home",
        &[
            "ip",
            "addr",
            "del",
            &format!("{}/24", addr::HOME),
            "dev",
            &home_if,
        ],
    )
    .unwrap();
    lab.exec(
        "home",
        &["ip", "addr", "add", &format!("{moved}/24"), "dev", &home_if],
    )
    .unwrap();
    wait_until("the renewal", Duration::from_secs(15), || {
        service.log().contains("renewing the tunnel")
    });
    wait_until(
        "the town server after the move",
        Duration::from_secs(30),
        || reachable(&lab),
    );

    // Stopped and started again (a reboot), the service connects by itself.
    assert_eq!(lab.stop(service.handle).unwrap(), Some(0));
    assert!(!reachable(&lab), "the tunnel went with the service");
    // Meanwhile anna is told the service does not run — not that this
    // computer is not enrolled, which she cannot know without it.
    let stopped = porta_as(&lab, &anna, &socket, &["status"]);
    assert_eq!(stopped.status.code(), Some(3));
    assert!(
        text(&stopped).contains("The Porta service is not running")
            && !text(&stopped).contains("not enrolled"),
        "{}",
        text(&stopped)
    );
    service.start_again(&mut lab);
    wait_until(
        "the tunnel after the restart",
        Duration::from_secs(30),
        || reachable(&lab),
    );

    // Disconnect from the CLI, as anna; stays down after a restart.
    let down = porta_as(&lab, &anna, &socket, &["down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(!reachable(&lab));
    let settings = runtime.block_on(async {
        let mut client = porta_client::local::connect(&socket).await.unwrap();
        client
            .get_settings(local::SettingsRequest {})
            .await
            .unwrap()
            .into_inner()
    });
    assert!(!settings.connect_at_start, "the last choice is remembered");

    // Revoked by IT while connected: the service takes the tunnel down and
    // says so, and refuses to connect again.
    assert!(porta_as(&lab, &anna, &socket, &["up"]).status.success());
    wait_until("the tunnel again", Duration::from_secs(30), || {
        reachable(&lab)
    });
    town.admin(&lab, &["devices", "revoke", "anna-home"]);
    wait_until("the revoked status", Duration::from_secs(30), || {
        json(porta_as(&lab, &anna, &socket, &["status", "--json"]))["state"] == "revoked"
    });
    assert!(!reachable(&lab));
    let status = porta_as(&lab, &anna, &socket, &["status"]);
    assert_eq!(status.status.code(), Some(3));
    assert!(
        text(&status).contains("withdrew this computer's access"),
        "{}",
        text(&status)
    );
    let again = porta_as(&lab, &anna, &socket, &["up"]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("withdrew this computer's access"),
        "{}",
        text(&again)
    );
    assert_eq!(lab.stop(service.handle).unwrap(), Some(0));
    drop(lab);
    drop(accounts);
}

/// The `credential` value of a device.toml.
fn toml_credential(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("credential = "))
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

/// Accepts connections on `127.0.0.1:PORT` and never answers: a controller
/// (or a `porta:` link to one) that hangs whoever calls it.
const SILENT: &str = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
"#;

/// Opens `count` connections to the Unix socket at `path` and reports
/// how many the service still holds ([`porta_tests::PY_HOLD_AND_REPORT`]).
const LOCAL_FLOOD: &str = r#"
path, count = sys.argv[1], int(sys.argv[2])
held = []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
report(held)
"#;

/// A second controller in the home namespace (someone's own, on
/// loopback there); returns an invitation of its for a computer.
fn rogue_controller(lab: &mut Lab, dir: &std::path::Path) -> String {
    let controller = binary("porta-controller");
    let data = dir.join("rogue");
    let init = json(
        lab.exec(
            "home",
            &[
                path(&controller),
                "init",
                "--data",
                path(&data),
                "--api-endpoint",
                "127.0.0.1:7450",
                "--endpoint",
                "127.0.0.1:51821",
                "--json",
            ],
        )
        .unwrap(),
    );
    lab.spawn(
        "home",
        &[
            path(&controller),
            "serve",
            "--data",
            path(&data),
            "--listen",
            "127.0.0.1:7450",
            "--no-gateway",
        ],
        &dir.join("rogue.log"),
    )
    .unwrap();
    let profile = dir.join("rogue.toml");
    let portactl = binary("portactl");
    let admin = |args: &[&str]| {
        let mut all = vec![path(&portactl), "--config", path(&profile), "--json"];
        all.extend_from_slice(args);
        lab.run("home", &all).unwrap()
    };
    let invitation = init["admin_invitation"].as_str().unwrap().to_owned();
    wait_until("the other controller", Duration::from_secs(10), || {
        admin(&["login", &invitation]).status.success()
    });
    json(admin(&[
        "enroll",
        "--user",
        "mallory",
        "--device",
        "family-pc",
    ]))["invitation"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_member_can_connect_but_not_move_the_computer_nor_freeze_the_service() {
    let mut accounts = Accounts::new();
    let anna = accounts.user("porta-t-anna2", true);
    let carla = accounts.user("porta-t-carla", true);
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, true);
    let invite = |lab: &Lab, device: &str| {
        town.admin(lab, &["enroll", "--user", "anna", "--device", device])["invitation"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let invitation = invite(&lab, "anna-family-pc");
    let tunnel = lab.iface("m");
    let service = TunnelService::start(&mut lab, &town, &tunnel);
    let (socket, state) = (service.socket.clone(), service.state.clone());
    let dir = town.dir.path().to_owned();

    // A `porta:` link to a controller that accepts and never answers: the
    // enrollment gives up and says so, and meanwhile the service answers
    // everyone else at once.
    std::fs::write(dir.join("silent.py"), SILENT).unwrap();
    lab.spawn(
        "home",
        &["python3", path(&dir.join("silent.py")), "7460"],
        &dir.join("silent.log"),
    )
    .unwrap();
    let silent = porta_proto::Invitation {
        controller: "127.0.0.1:7460".into(),
        ..porta_proto::Invitation::decode(&invitation).unwrap()
    }
    .encode();
    std::thread::sleep(Duration::from_millis(500));
    let porta = binary("porta");
    let as_anna = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = [
            "setpriv",
            "--reuid",
            &anna,
            "--regid",
            &anna,
            "--init-groups",
            "--",
        ]
        .map(str::to_owned)
        .to_vec();
        all.extend([
            path(&porta).to_owned(),
            "--socket".into(),
            path(&socket).to_owned(),
        ]);
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let hanging_log = dir.join("hanging-enroll.log");
    let command = as_anna(&["enroll", "--yes", &silent]);
    let hanging = lab
        .spawn(
            "home",
            &command.iter().map(String::as_str).collect::<Vec<_>>(),
            &hanging_log,
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for (who, args) in [
        (&anna, &["status"][..]),
        (&carla, &["up"]),
        (&carla, &["down"]),
    ] {
        let started = std::time::Instant::now();
        let answered = porta_as(&lab, who, &socket, args);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} waited for the enrollment: {}",
            text(&answered)
        );
    }
    lab.wait_for(
        hanging,
        "the hanging enrollment to give up",
        Duration::from_secs(40),
        |_| {
            // Connecting times out (10 s), or the call (15 s): either is said.
            std::fs::read_to_string(&hanging_log).is_ok_and(|l| {
                l.contains("127.0.0.1:7460")
                    && (l.contains("did not answer") || l.contains("deadline has elapsed"))
            })
        },
    );
    assert!(!state.join("device.toml").exists(), "nothing was saved");

    // Anna enrolls the computer (it holds no enrollment) and connects.
    let enrolled = porta_as(&lab, &anna, &socket, &["enroll", "--yes", &invitation]);
    assert!(enrolled.status.success(), "{}", text(&enrolled));
    let saved = std::fs::read(state.join("device.toml")).unwrap();
    let key = std::fs::read(state.join("private.key")).unwrap();

    // She cannot move it to a controller she runs, replace the enrollment
    // the town still accepts, or throw it away.
    let rogue = rogue_controller(&mut lab, &dir);
    let second = invite(&lab, "anna-second");
    for args in [
        &["enroll", "--yes", &rogue][..],
        &["enroll", "--yes", &second],
        &["leave", "--yes"],
    ] {
        let refused = porta_as(&lab, &anna, &socket, args);
        assert!(!refused.status.success(), "{args:?}: {}", text(&refused));
        assert!(
            text(&refused).contains("needs an administrator of this computer"),
            "{args:?}: {}",
            text(&refused)
        );
    }
    assert_eq!(std::fs::read(state.join("device.toml")).unwrap(), saved);
    assert_eq!(std::fs::read(state.join("private.key")).unwrap(), key);
    let log = service.log();
    for said in [
        "refused: moving this computer",
        "refused: replacing a valid enrollment",
        "refused: leaving",
    ] {
        assert!(log.contains(said), "{said}: {log}");
    }
    assert!(
        log.contains(&format!("user={anna}")),
        "the caller is named: {log}"
    );

    // A thousand connections from one member: she gets her share, and
    // others (and the service's own work) are still served.
    let flood_log = dir.join("local-flood.log");
    // Debian's python3 (root's may be elsewhere), the script inline: a
    // user cannot read the test's private directory.
    let script = format!("{}{LOCAL_FLOOD}", porta_tests::PY_HOLD_AND_REPORT);
    let command = [
        "setpriv",
        "--reuid",
        &anna,
        "--regid",
        &anna,
        "--init-groups",
        "--",
        "/usr/bin/python3",
        "-c",
        &script,
        path(&socket),
        "1100",
    ];
    let flood = lab.spawn("home", &command, &flood_log).unwrap();
    lab.wait_for(flood, "the local flood", Duration::from_secs(30), |_| {
        std::fs::read_to_string(&flood_log)
            .unwrap_or_default()
            .contains("held")
    });
    let report: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&flood_log).unwrap().trim()).unwrap();
    assert_eq!(report["opened"], 1100, "{report}");
    assert!(report["held"].as_u64().unwrap() <= 16, "{report}");
    let carla_status = porta_as(&lab, &carla, &socket, &["status", "--json"]);
    assert_eq!(json(carla_status)["device"], "anna-family-pc");
    let _ = lab.stop(flood);

    // A service that stopped answering: the CLI says so instead of hanging.
    let pid = lab.pid(service.handle).to_string();
    lab.exec("home", &["kill", "-STOP", &pid]).unwrap();
    let started = std::time::Instant::now();
    let stuck = porta_as(&lab, &carla, &socket, &["status"]);
    lab.exec("home", &["kill", "-CONT", &pid]).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        text(&stuck).contains("the Porta service did not answer within"),
        "{}",
        text(&stuck)
    );

    // Root, the computer's administrator, may move it.
    let moved = lab
        .run(
            "home",
            &[
                path(&porta),
                "--socket",
                path(&socket),
                "enroll",
                "--yes",
                &rogue,
            ],
        )
        .unwrap();
    assert!(moved.status.success(), "{}", text(&moved));
    assert!(text(&moved).contains("family-pc"), "{}", text(&moved));
    drop(lab);
    drop(accounts);
}

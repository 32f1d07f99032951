//! Faults an operations team meets that must not lose the truth, played
//! with real processes in the lab's namespaces: a remote gateway whose
//! disk fills (a real filesystem, a small tmpfs), and a controller restored
//! from a backup after a gateway applied later changes.

use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, path, wait_until};
use porta_tests::{Tmpfs, binary, copy_replacing, read_log};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Fills the filesystem holding `dir` to the last byte (a file `filler`
/// that `dd` writes until it is refused).
fn fill(dir: &Path) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output()
        .unwrap();
    filler
}

/// The value of the series `name` on the annex's metrics endpoint.
fn annex_metric(lab: &Lab, name: &str) -> Option<f64> {
    let script = format!(
        "import urllib.request\n\
         print(urllib.request.urlopen('http://{}:9465/metrics', timeout=5).read().decode())",
        addr::BRANCH_PUBLIC
    );
    let out = lab
        .run("branch", &["/usr/bin/python3", "-c", &script])
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let (series, value) = line.split_once(' ')?;
            (series == name).then(|| value.trim().parse().ok())?
        })
}

/// Enrolls `pau-laptop` through the annex (group `annex-staff`, allowed
/// the branch's network), connects it with `porta up --foreground` and
/// waits until it reaches the branch server; returns its handle.
fn laptop_through_annex(lab: &mut Lab, town: &Town) -> usize {
    town.admin(lab, &["groups", "add", "annex-staff"]);
    town.admin(lab, &["groups", "allow", "annex-staff", "172.31.4.0/24"]);
    let state = town.enroll_through(lab, "pau", "pau-laptop", "annex-staff", Some("annex"));
    let tunnel = lab.iface("c2");
    let laptop = porta_tests::laptop::up_in_foreground(
        lab,
        &state,
        &tunnel,
        &town.dir.path().join("laptop.log"),
    );
    wait_until(
        "the branch server through the annex",
        Duration::from_secs(15),
        || {
            lab.run("home", &["ping", "-c", "1", "-W", "1", addr::BRANCH_SERVER])
                .unwrap()
                .status
                .success()
        },
    );
    laptop
}

#[test]
fn a_gateway_whose_disk_fills_says_so_once_keeps_its_events_and_always_starts_again() {
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    let town = Town::start(&mut lab, true);
    let endpoint = format!("{}:51820", addr::BRANCH_PUBLIC);
    let added = town.admin(&lab, &["gateways", "add", "annex", "--endpoint", &endpoint]);
    let invitation = added["invitation"].as_str().unwrap().to_owned();
    // The gateway's data directory is a small filesystem of its own.
    let data = town.dir.path().join("annex");
    let disk = Tmpfs::mount(&data, "8m");
    let gateway_if = lab.iface("rgw");
    let logs = town.dir.path().to_owned();
    let gateway = binary("porta-gateway");
    let metrics_listen = format!("{}:9465", addr::BRANCH_PUBLIC);
    let start = |lab: &mut Lab, log: &str, invitation: Option<&str>| {
        let mut args = vec![
            path(&gateway),
            "--data",
            path(&data),
            "--interface",
            &gateway_if,
            "--session-idle",
            "3s",
            "--metrics-listen",
            &metrics_listen,
        ];
        if let Some(invitation) = invitation {
            args.extend(["--controller", invitation]);
        }
        lab.spawn("branch", &args, &logs.join(log)).unwrap()
    };
    let annex = start(&mut lab, "annex.log", Some(&invitation));
    wait_until("the annex to follow", Duration::from_secs(20), || {
        town.admin(&lab, &["gateways", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "annex" && g["last_seen_at"].is_string())
    });

    // A laptop through the annex opens a session.
    let laptop = laptop_through_annex(&mut lab, &town);
    wait_until(
        "the session start in the log",
        Duration::from_secs(15),
        || {
            town.sessions_of(&lab, "pau-laptop")
                .iter()
                .any(|r| r["kind"] == "session_start")
        },
    );
    assert_eq!(
        annex_metric(&lab, "porta_gateway_data_write_failing"),
        Some(0.0)
    );

    // The disk fills while the session runs; the laptop goes away, so the
    // session ends (3 s idle) and the set of open sessions changes.
    let filler = fill(&data);
    lab.kill(laptop).unwrap();
    wait_until("the annex to notice", Duration::from_secs(20), || {
        annex_metric(&lab, "porta_gateway_data_write_failing") == Some(1.0)
    });
    std::thread::sleep(Duration::from_secs(5));
    let said = read_log(&logs.join("annex.log"));
    let complaints = said
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("cannot write to its data directory"))
        .count();
    assert_eq!(complaints, 1, "said once, not every second: {said}");
    assert!(said.contains("open sessions"), "{said}");

    // Space is freed: the gateway writes again, and the session's end —
    // kept through the full disk — is in the controller's log.
    std::fs::remove_file(&filler).unwrap();
    wait_until("the annex to write again", Duration::from_secs(20), || {
        annex_metric(&lab, "porta_gateway_data_write_failing") == Some(0.0)
    });
    assert!(
        read_log(&logs.join("annex.log")).contains("writes to its data directory again"),
        "{}",
        read_log(&logs.join("annex.log"))
    );
    wait_until(
        "the session end in the log",
        Duration::from_secs(20),
        || {
            town.sessions_of(&lab, "pau-laptop")
                .iter()
                .any(|r| r["kind"] == "session_end")
        },
    );

    // The disk fills again and the peer changes keep coming (a group's
    // destinations, one by one): the annex cannot keep them, and retries
    // with a growing delay rather than twice a second.
    let filler = fill(&data);
    let before = read_log(&logs.join("annex.log")).len();
    for n in 0..40 {
        town.admin(
            &lab,
            &["groups", "allow", "annex-staff", &format!("10.9.{n}.0/24")],
        );
    }
    std::thread::sleep(Duration::from_secs(15));
    let said = read_log(&logs.join("annex.log"));
    let retries = said[before..].matches("lost the controller").count();
    assert!(
        (1..=7).contains(&retries),
        "{retries} reconnects in about 20 s: {}",
        &said[before..]
    );
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "the annex to apply the changes",
        Duration::from_secs(30),
        || {
            town.admin(&lab, &["gateways", "list"])
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["applied_revision"].as_u64())
                .collect::<std::collections::HashSet<_>>()
                .len()
                == 1
        },
    );

    // Stopped, then started on a full disk, again and again: every start
    // that fails names the directory; the snapshot a failed start leaves
    // half-written (sled's empty `snap.*.generating`) never stops the next.
    assert_eq!(lab.stop(annex).unwrap(), Some(0), "a clean stop");
    let filler = fill(&data);
    std::fs::write(data.join("events/snap.00000000000FFFFF.generating"), b"").ok();
    for attempt in 0..3 {
        let log = format!("annex-full-{attempt}.log");
        let full = start(&mut lab, &log, None);
        std::thread::sleep(Duration::from_secs(3));
        match lab.exited(full).unwrap() {
            Some(code) => {
                let said = read_log(&logs.join(&log));
                assert_ne!(code, 0, "{said}");
                assert!(
                    said.contains(path(&data)) && said.contains("no space left"),
                    "a failed start names the directory and the reason: {said}"
                );
            }
            None => {
                lab.stop(full).unwrap();
            }
        }
    }
    std::fs::write(data.join("events/snap.00000000000FFFFF.generating"), b"").ok();
    std::fs::remove_file(&filler).unwrap();
    let again = start(&mut lab, "annex-again.log", None);
    lab.wait_for(
        again,
        "the annex to start with space freed",
        Duration::from_secs(20),
        |lab| annex_metric(lab, "porta_gateway_peers") == Some(1.0),
    );
    let said = read_log(&logs.join("annex-again.log"));
    assert!(
        said.contains("removed a snapshot that an earlier start left unfinished"),
        "{said}"
    );
    assert_eq!(lab.stop(again).unwrap(), Some(0));
    drop(disk);
}

/// The annex's entry in `portactl gateways list`.
fn annex_listed(town: &Town, lab: &Lab) -> Value {
    town.admin(lab, &["gateways", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "annex")
        .cloned()
        .unwrap()
}

/// The embedded gateway's confirmed revision: the controller's own.
fn controller_revision(town: &Town, lab: &Lab) -> u64 {
    town.admin(lab, &["gateways", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["kind"] == "embedded")
        .unwrap()["applied_revision"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_gateway_that_applied_changes_a_restore_undid_confirms_nothing_until_an_admin_resyncs_it() {
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    let mut town = Town::start(&mut lab, true);
    let endpoint = format!("{}:51820", addr::BRANCH_PUBLIC);
    let added = town.admin(&lab, &["gateways", "add", "annex", "--endpoint", &endpoint]);
    let data = town.dir.path().join("annex");
    let gateway_if = lab.iface("rgw");
    let metrics_listen = format!("{}:9465", addr::BRANCH_PUBLIC);
    let annex_log = town.dir.path().join("annex.log");
    let gateway = binary("porta-gateway");
    let start_annex = |lab: &mut Lab, invitation: Option<&str>| {
        let mut args = vec![
            path(&gateway),
            "--data",
            path(&data),
            "--interface",
            &gateway_if,
            "--metrics-listen",
            &metrics_listen,
        ];
        if let Some(invitation) = invitation {
            args.extend(["--controller", invitation]);
        }
        lab.spawn("branch", &args, &annex_log).unwrap()
    };
    let annex = start_annex(&mut lab, added["invitation"].as_str());
    wait_until("the annex to follow", Duration::from_secs(20), || {
        annex_listed(&town, &lab)["last_seen_at"].is_string()
    });
    town.admin(&lab, &["groups", "add", "annex-staff"]);
    town.admin(&lab, &["groups", "allow", "annex-staff", "172.31.4.0/24"]);
    let peers = |lab: &Lab, n: f64| {
        wait_until(
            &format!("{n} peers at the annex"),
            Duration::from_secs(20),
            || annex_metric(lab, "porta_gateway_peers") == Some(n),
        );
    };
    town.enroll_through(&lab, "anna", "anna-laptop", "annex-staff", Some("annex"));
    peers(&lab, 1.0);

    // The admin guide's backup: the whole data directory, service stopped.
    town.stop(&mut lab);
    let backup = town.dir.path().join("backup");
    copy_replacing(&town.data(), &backup);
    town.start_again(&mut lab);

    // After the backup: a second laptop, applied by the annex.
    town.enroll_through(&lab, "pau", "pau-laptop", "annex-staff", Some("annex"));
    peers(&lab, 2.0);
    wait_until("the annex to confirm", Duration::from_secs(20), || {
        annex_listed(&town, &lab)["applied_revision"].as_u64()
            == Some(controller_revision(&town, &lab))
    });
    let held = controller_revision(&town, &lab);

    // The annex is away (its host rebooting) while the controller is
    // restored as the guide says and makes other changes, until its
    // revision numbers pass the ones the annex applied.
    assert_eq!(lab.stop(annex).unwrap(), Some(0));
    town.stop(&mut lab);
    copy_replacing(&backup, &town.data());
    town.start_again(&mut lab);
    let mut n = 0;
    while controller_revision(&town, &lab) <= held + 1 {
        town.admin(&lab, &["groups", "add", &format!("filler{n}")]);
        n += 1;
    }
    // Back, it claims a revision number the controller has written too,
    // but of another history.
    start_annex(&mut lab, None);
    wait_until(
        "the annex to be seen not following",
        Duration::from_secs(30),
        || annex_listed(&town, &lab)["following"] == false,
    );
    let listed = annex_listed(&town, &lab);
    let why = listed["not_following"].as_str().unwrap().to_owned();
    assert!(
        why.contains(&format!("holds revision {held} of another history")),
        "{listed}"
    );

    // A revocation of a device live in both histories is not confirmed by
    // the annex, and says why.
    let revoked = town.admin(&lab, &["devices", "revoke", "anna-laptop"]);
    assert_eq!(
        revoked["not_following_gateways"],
        serde_json::json!(["annex"]),
        "{revoked}"
    );
    assert!(
        !revoked["confirmed_gateways"]
            .as_array()
            .unwrap()
            .contains(&Value::from("annex")),
        "{revoked}"
    );
    assert_eq!(
        annex_metric(&lab, "porta_gateway_peers"),
        Some(2.0),
        "it takes nothing"
    );
    assert!(
        read_log(&annex_log).contains("NOT following the controller"),
        "{}",
        read_log(&annex_log)
    );

    // Still so after a controller restart (the annex retries meanwhile).
    town.restart(&mut lab);
    std::thread::sleep(Duration::from_secs(12));
    let listed = annex_listed(&town, &lab);
    assert_eq!(listed["following"], false, "{listed}");
    assert_eq!(annex_metric(&lab, "porta_gateway_peers"), Some(2.0));

    // The admin decides: the annex takes the controller's set — without
    // the revoked laptop and the one the restore lost — and confirms again.
    let resynced = town.admin(&lab, &["gateways", "resync", "annex"]);
    assert_eq!(resynced["resync_pending"], true, "{resynced}");
    wait_until("the annex to follow again", Duration::from_secs(30), || {
        let annex = annex_listed(&town, &lab);
        annex["following"] == true
            && annex["applied_revision"].as_u64() == Some(controller_revision(&town, &lab))
    });
    peers(&lab, 0.0);
    assert!(
        read_log(&annex_log).contains("chose to replace this gateway's peer set"),
        "{}",
        read_log(&annex_log)
    );
    let actions: Vec<String> = town
        .export(&lab, "admin")
        .iter()
        .map(|r| r["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    for action in ["gateway.diverged", "gateway.resync", "gateway.follows"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }

    // From now on its confirmations count again.
    town.enroll_through(&lab, "carla", "carla-laptop", "annex-staff", Some("annex"));
    peers(&lab, 1.0);
    let revoked = town.admin(&lab, &["devices", "revoke", "carla-laptop"]);
    assert!(
        revoked["confirmed_gateways"]
            .as_array()
            .unwrap()
            .contains(&Value::from("annex")),
        "{revoked}"
    );
    peers(&lab, 0.0);
}

/// A TCP relay on 127.0.0.1:PORT to HOST:TPORT that passes what the client
/// sends at once and what the server answers DELAY seconds late — a slow
/// or failing path on the way back, for an answer to be lost.
const SLOW_ANSWERS: &str = r#"
import queue, socket, sys, threading, time
port, host, tport, delay = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

def relay(src, dst, lag):
    pending = queue.Queue()
    def send():
        while True:
            due, data = pending.get()
            time.sleep(max(0.0, due - time.monotonic()))
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    threading.Thread(target=send, daemon=True).start()
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        pending.put((time.monotonic() + lag, data))
        if not data:
            break

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(16)
while True:
    client, _ = listener.accept()
    server = socket.create_connection((host, tport))
    threading.Thread(target=relay, args=(client, server, 0.0), daemon=True).start()
    threading.Thread(target=relay, args=(server, client, delay), daemon=True).start()
"#;

#[test]
fn an_enrollment_whose_answer_was_lost_gets_the_same_device_when_asked_again() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, true);
    town.admin(&lab, &["groups", "add", "staff"]);
    let invitation = town.admin(
        &lab,
        &[
            "enroll", "--user", "anna", "--device", "anna-pc", "--groups", "staff",
        ],
    )["invitation"]
        .as_str()
        .unwrap()
        .to_owned();
    let decoded = porta_proto::Invitation::decode(&invitation).unwrap();
    let (host, port) = decoded.controller.rsplit_once(':').unwrap();
    let dir = town.dir.path().to_owned();
    std::fs::write(dir.join("slow.py"), SLOW_ANSWERS).unwrap();
    lab.spawn(
        "home",
        &[
            "python3",
            path(&dir.join("slow.py")),
            "7471",
            host,
            port,
            "4",
        ],
        &dir.join("slow.log"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let slow = porta_proto::Invitation {
        controller: "127.0.0.1:7471".into(),
        ..decoded
    }
    .encode();

    // The controller enrolls the device, but its answer is still on the
    // way when the laptop gives up (here: is killed).
    let state = dir.join("anna-pc");
    let porta = binary("porta");
    let first = lab
        .spawn(
            "home",
            &[path(&porta), "--state", path(&state), "enroll", &slow],
            &dir.join("first-enroll.log"),
        )
        .unwrap();
    let devices = |lab: &Lab| -> Vec<Value> {
        town.admin(lab, &["devices", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["name"] == "anna-pc")
            .cloned()
            .collect()
    };
    lab.wait_for(
        first,
        "the device to be enrolled",
        Duration::from_secs(20),
        |lab| !devices(lab).is_empty(),
    );
    lab.kill(first).unwrap();
    assert!(!state.join("device.toml").exists(), "the answer never came");
    let enrolled = devices(&lab);

    // Asked again with the same invitation: the same device, not "already
    // used", and nothing half-done.
    let again = lab
        .run(
            "home",
            &[path(&porta), "--state", path(&state), "enroll", &invitation],
        )
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let now = devices(&lab);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["id"], enrolled[0]["id"]);
    assert_eq!(now[0]["addresses"], enrolled[0]["addresses"]);
    assert!(state.join("device.toml").exists());
    assert!(!state.join("enrolling.toml").exists());
    let actions: Vec<Value> = town.export(&lab, "admin");
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "device.enroll_retried"),
        "{actions:?}"
    );

    // Its new credential works: asked once more, the controller still
    // accepts this computer's enrollment (it checks the credential).
    let once_more = lab
        .run(
            "home",
            &[path(&porta), "--state", path(&state), "enroll", &invitation],
        )
        .unwrap();
    assert!(
        String::from_utf8_lossy(&once_more.stderr).contains("the controller still accepts it"),
        "{}",
        String::from_utf8_lossy(&once_more.stderr)
    );

    // Anyone else presenting the spent invitation is still refused.
    let other = lab
        .run(
            "home",
            &[
                path(&porta),
                "--state",
                path(&dir.join("someone-else")),
                "enroll",
                &invitation,
            ],
        )
        .unwrap();
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

#[test]
fn a_gateway_whose_clock_runs_ahead_loses_no_session_from_the_log() {
    let mut lab = Lab::new().unwrap();
    lab.add_branch().unwrap();
    let town = Town::start(&mut lab, true);
    let endpoint = format!("{}:51820", addr::BRANCH_PUBLIC);
    let added = town.admin(&lab, &["gateways", "add", "annex", "--endpoint", &endpoint]);
    let dir = town.dir.path().to_owned();
    let gateway_if = lab.iface("rgw");
    // The annex's wall clock runs ten minutes fast (libfaketime).
    lab.spawn(
        "branch",
        &[
            "faketime",
            "-f",
            "+600s",
            path(&binary("porta-gateway")),
            "--data",
            path(&dir.join("annex")),
            "--interface",
            &gateway_if,
            "--session-idle",
            "3s",
            "--controller",
            added["invitation"].as_str().unwrap(),
        ],
        &dir.join("annex.log"),
    )
    .unwrap();
    wait_until("the annex to follow", Duration::from_secs(20), || {
        annex_listed(&town, &lab)["last_seen_at"].is_string()
    });
    let laptop = laptop_through_annex(&mut lab, &town);
    lab.kill(laptop).unwrap();

    // Both ends of the session are in the log, at the controller's time,
    // each saying what the gateway's clock said.
    let mut records = Vec::new();
    wait_until(
        "the session's start and end",
        Duration::from_secs(30),
        || {
            records = town.sessions_of(&lab, "pau-laptop");
            records.iter().any(|r| r["kind"] == "session_end")
        },
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for record in &records {
        let reason = record["reason"].as_str().unwrap();
        assert!(
            reason.contains("clock: the gateway said") && reason.contains(", recorded at "),
            "{record}"
        );
        let at = humantime::parse_rfc3339(record["at"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(at <= now + 5, "recorded at the controller's time: {record}");
    }
    assert!(
        records.iter().any(|r| r["kind"] == "session_end"
            && r["reason"].as_str().unwrap().starts_with("idle; clock:")),
        "{records:?}"
    );
    assert_eq!(
        town.admin(&lab, &["logs", "sessions"])
            .as_array()
            .map(Vec::len),
        Some(0),
        "nothing left open"
    );
    assert!(
        town.log()
            .contains("the gateway's clock is ahead of the controller's"),
        "{}",
        town.log()
    );
    let verified = town.admin(&lab, &["logs", "verify"]);
    assert!(
        verified.as_array().unwrap().iter().all(|l| l["ok"] == true),
        "{verified}"
    );
}

/// Seconds since the Unix epoch of an RFC 3339 time in a JSON value.
fn unix_of(value: &Value) -> u64 {
    humantime::parse_rfc3339(value.as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A wall clock of a process's own: libfaketime, shifted by the offset a
/// file holds (read at every call, so it can be stepped while the process
/// runs); the monotonic clock stays true.
struct FakeClock {
    dir: tempfile::TempDir,
}

impl FakeClock {
    fn new() -> Self {
        let clock = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        clock.set("+0");
        clock
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("offset")
    }

    /// Shifts the clock: "+3600", "-172800" (seconds).
    fn set(&self, offset: &str) {
        std::fs::write(self.file(), offset).unwrap();
    }

    /// The command prefix that runs a program on this clock.
    fn wrapper(&self) -> Vec<String> {
        vec![
            "env".into(),
            "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".into(),
            format!("FAKETIME_TIMESTAMP_FILE={}", self.file().display()),
            "FAKETIME_NO_CACHE=1".into(),
            "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
        ]
    }
}

#[test]
fn the_controllers_clock_stepped_both_ways_leaves_no_ghost_session_and_no_long_invitation() {
    let clock = FakeClock::new();
    let mut lab = Lab::new().unwrap();
    let town = Town::start_under(
        &mut lab,
        true,
        &[],
        &["--session-idle", "3s"],
        &clock
            .wrapper()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let set_clock = |offset: &str| clock.set(offset);
    town.admin(&lab, &["groups", "add", "lan"]);
    town.admin(&lab, &["groups", "allow", "lan", "172.31.2.2/32"]);
    let state = town.enroll(&lab, "anna", "anna-laptop", "lan");
    let tunnel = lab.iface("c1");
    porta_tests::laptop::up_in_foreground(
        &mut lab,
        &state,
        &tunnel,
        &town.dir.path().join("laptop.log"),
    );
    let ping = |lab: &Lab| {
        lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
            .unwrap()
            .status
            .success()
    };
    wait_until("the town server", Duration::from_secs(20), || ping(&lab));
    let no_open_sessions = |lab: &Lab| {
        town.admin(lab, &["logs", "sessions"])
            .as_array()
            .is_some_and(Vec::is_empty)
    };
    wait_until("the first session to end", Duration::from_secs(20), || {
        no_open_sessions(&lab)
    });

    // An hour ahead, a session starts; the clock is set right and the
    // session ends: its end is on record and nobody is left connected.
    set_clock("+3600");
    std::thread::sleep(Duration::from_secs(5));
    assert!(ping(&lab));
    wait_until("the session an hour ahead", Duration::from_secs(10), || {
        !no_open_sessions(&lab)
    });
    set_clock("+0");
    wait_until("the session to end", Duration::from_secs(30), || {
        no_open_sessions(&lab)
    });
    let records = town.sessions_of(&lab, "anna-laptop");
    let last = records.last().unwrap();
    assert_eq!(last["kind"], "session_end", "{records:?}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with("idle; clock: the gateway said"),
        "{last}"
    );

    // Four days ahead, a one-hour invitation is made; once the clock is
    // set right it is valid for an hour from then, not for four days.
    set_clock("+345600");
    std::thread::sleep(Duration::from_secs(5));
    town.admin(
        &lab,
        &[
            "enroll",
            "--user",
            "bob",
            "--device",
            "bob-pc",
            "--groups",
            "lan",
            "--expires",
            "1h",
        ],
    );
    set_clock("+0");
    let expires = || {
        town.admin(&lab, &["tokens", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["device"] == "bob-pc")
            .map(|t| unix_of(&t["expires_at"]))
            .unwrap()
    };
    assert!(expires() > unix_now() + 3 * 86_400, "made four days ahead");
    wait_until(
        "the invitation's validity to count from now",
        Duration::from_secs(30),
        || expires() <= unix_now() + 3_600 + 60,
    );
    let actions: Vec<Value> = town.export(&lab, "admin");
    assert!(
        actions
            .iter()
            .any(|a| a["action"] == "clock.invitations_rebased"),
        "{actions:?}"
    );
    assert!(town.log().contains("the controller's wall clock stepped"));
}

#[test]
fn a_laptop_whose_clock_went_back_is_told_so_and_reconnects_once_it_is_right() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, true);
    let invitation = town.invite_to_lan(&lab, "anna", "anna-pc");
    let clock = FakeClock::new();
    let tunnel = lab.iface("m");
    let wrapper = clock.wrapper();
    let mut service = porta_tests::laptop::TunnelService::start_under(
        &mut lab,
        &town,
        &tunnel,
        &wrapper.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let porta = binary("porta");
    let socket = service.socket.clone();
    let porta_says = |lab: &Lab, args: &[&str]| {
        let mut all = vec![path(&porta), "--socket", path(&socket)];
        all.extend_from_slice(args);
        lab.run("home", &all).unwrap()
    };
    service.enroll_and_connect(&lab, &invitation);
    let reachable = |lab: &Lab| porta_tests::laptop::town_server_reachable(lab);

    // The laptop restarts with its clock two days behind: the gateway
    // refuses handshakes stamped before the ones it saw, and the laptop
    // says why instead of "the gateway does not answer".
    assert_eq!(lab.stop(service.handle).unwrap(), Some(0));
    clock.set("-172800");
    service.start_again(&mut lab);
    let status = |lab: &Lab| {
        serde_json::from_slice::<Value>(&porta_says(lab, &["status", "--json"]).stdout)
            .unwrap_or(Value::Null)
    };
    wait_until(
        "the laptop to say its clock is wrong",
        Duration::from_secs(60),
        || status(&lab)["problems"] == serde_json::json!(["clock_wrong"]),
    );
    assert!(!reachable(&lab));
    let offset = status(&lab)["clock_offset_secs"].as_i64().unwrap();
    assert!((172_700..172_900).contains(&offset), "{offset}");

    // The clock is set right: within a minute the laptop is back, by
    // itself, and says nothing is wrong.
    clock.set("+0");
    wait_until(
        "the laptop back with its clock right",
        Duration::from_secs(60),
        || reachable(&lab),
    );
    wait_until("no problem said", Duration::from_secs(30), || {
        status(&lab)["problems"] == serde_json::json!([])
    });
    assert!(
        service.log().contains("this computer's clock was stepped"),
        "{}",
        service.log()
    );
}

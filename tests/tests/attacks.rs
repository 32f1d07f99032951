//! Attacks on the controller by holders of some credential (or none), and
//! faults of its host (a damaged store, a full disk): each test plays the
//! attack or fault against a real `porta-controller` and asserts that the
//! log, the store and honest callers are unaffected.
//!
//! Longer than our usual file on purpose: one test per attack or fault,
//! each self-contained so that it can be read (and reviewed) on its own.

use porta_proto::connect::Bearer;
use porta_proto::invitation::Invitation;
use porta_proto::pb;
use porta_tests::gateway_api::{enroll_on, event, gateway_login, unix_now};
use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, path, wait_until};
use porta_tests::*;
use std::time::Duration;

#[tokio::test]
async fn a_gateway_cannot_forge_connection_history() {
    let ctl = TestController::start(&[]).await.unwrap();
    let admin_credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let mut admin = ctl.admin_with(&admin_credential).await;
    let mut annex = gateway_login(&ctl, &mut admin, "annex", "192.0.2.7:51820").await;
    let mut branch = gateway_login(&ctl, &mut admin, "branch", "192.0.2.8:51820").await;
    let ours = enroll_on(&ctl, &mut admin, "anna", "anna-laptop", "annex").await;
    let theirs = enroll_on(&ctl, &mut admin, "bernat", "bernat-pc", "branch").await;
    let embedded = enroll_on(&ctl, &mut admin, "carme", "carme-pc", "").await;
    let revoked = enroll_on(&ctl, &mut admin, "anna", "anna-old", "annex").await;
    admin
        .revoke_device(pb::RevokeDeviceRequest {
            name: "anna-old".into(),
        })
        .await
        .unwrap();
    let now = unix_now();

    // The branch gateway's laptop really connects.
    let real = branch
        .report_events(pb::ReportEventsRequest {
            events: vec![event("real-start", "session_start", now - 30, &theirs)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((real.accepted, real.refused.len()), (1, 0));

    // The annex gateway tries everything the attack found.
    let mut huge = event("huge", "session_start", now - 60, &ours);
    huge.rx_bytes = 1_000_000_000_000_000;
    let mut formula = event("formula", "session_start", now, &ours);
    formula.public_address = "=HYPERLINK(\"http://evil\",\"x\")".into();
    let forgeries = vec![
        event("other-gateway", "session_start", now, &theirs),
        event("embedded-device", "session_start", now, &embedded),
        event("revoked", "session_start", now + 60, &revoked),
        event("in-2001", "session_start", 978_307_200, &ours),
        huge,
        formula,
        event("end-theirs", "session_end", now, &theirs),
    ];
    let attempted = forgeries.len();
    let report = annex
        .report_events(pb::ReportEventsRequest {
            events: forgeries
                .into_iter()
                .chain([
                    event("honest", "session_start", now, &ours),
                    // Dated next year: a clock that far ahead cannot put a
                    // session in the future; it is recorded now, with what
                    // the gateway said kept in its reason.
                    event("next-year", "session_end", now + 365 * 86_400, &ours),
                ])
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.accepted, 2, "only the honest events: {report:?}");
    assert_eq!(report.refused.len(), attempted, "{report:?}");
    let reasons: Vec<_> = report.refused.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons.iter().all(|r| !r.is_empty()), "{reasons:?}");

    // The chain holds only true records, and the real session is still open.
    let mut audit = porta_proto::pb::audit_client::AuditClient::with_interceptor(
        ctl.channel().await,
        Bearer::new(&admin_credential),
    );
    let mut records = audit
        .export_connections(pb::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut ids = vec![];
    while let Some(page) = futures::StreamExt::next(&mut records).await {
        for record in page.unwrap().records {
            assert!(record.at + 3_600 > now, "a back-dated record: {record:?}");
            assert!(
                record.at <= unix_now() + 5,
                "a record in the future: {record:?}"
            );
            assert!(record.rx_bytes < 1_000_000_000, "{record:?}");
            if record.event_id == "next-year" {
                assert!(
                    record.reason.contains("clock: the gateway said"),
                    "{record:?}"
                );
            }
            ids.push((record.device, record.gateway));
        }
    }
    assert_eq!(
        ids,
        [
            ("bernat-pc".to_owned(), "branch".to_owned()),
            ("anna-laptop".to_owned(), "annex".to_owned()),
            ("anna-laptop".to_owned(), "annex".to_owned())
        ]
    );
    let sessions = audit
        .list_sessions(pb::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert!(
        sessions
            .iter()
            .any(|s| s.device == "bernat-pc" && s.gateway == "branch"),
        "the branch's real session was ended by another gateway: {sessions:?}"
    );

    // Counted per gateway, and in the controller's log.
    let gateways = admin
        .list_gateways(pb::ListGatewaysRequest {})
        .await
        .unwrap()
        .into_inner()
        .gateways;
    let refused = |name: &str| {
        gateways
            .iter()
            .find(|g| g.name == name)
            .unwrap()
            .refused_events
    };
    assert_eq!((refused("annex"), refused("branch")), (attempted as u64, 0));
    let log = ctl.log();
    assert!(
        log.matches("connection event refused").count() >= attempted,
        "{log}"
    );
}

/// Opens idle TLS connections and half-open ones (five bytes of a TLS
/// record header, then nothing) from one address, then reports once a
/// second how many the server still holds open, as JSON lines.
const FLOODER: &str = r#"
import json, socket, ssl, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
idle = [ctx.wrap_socket(socket.create_connection((host, port))) for _ in range(3)]
half = []
for _ in range(count):
    s = socket.create_connection((host, port))
    try:
        s.sendall(b"\x16\x03\x01\x02\x00")
    except OSError:
        pass
    half.append(s)
for s in idle + half:
    s.setblocking(False)

def still_open(s):
    try:
        while True:
            if not s.recv(4096):
                return False
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except (OSError, ssl.SSLError):
        return False

start = time.time()
while True:
    time.sleep(1)
    half = [s for s in half if still_open(s)]
    idle = [s for s in idle if still_open(s)]
    print(json.dumps({"t": round(time.time() - start), "half_open": len(half), "tls_idle": len(idle)}), flush=True)
    if not half and not idle or time.time() - start > 60:
        break
"#;

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[test]
fn half_open_connections_are_capped_and_closed_and_the_admin_is_served() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, false);
    let dir = town.dir.path();
    std::fs::write(dir.join("flood.py"), FLOODER).unwrap();
    let log = dir.join("flood.log");
    let flood = lab
        .spawn(
            "home",
            &[
                "python3",
                path(&dir.join("flood.py")),
                addr::TOWN_PUBLIC,
                "7443",
                "500",
            ],
            &log,
        )
        .unwrap();
    lab.wait_for(flood, "the flood", Duration::from_secs(30), |_| {
        !json_lines(&log).is_empty()
    });
    // Mid-flood, the admin (another address) is served.
    let whoami = town.admin(&lab, &["whoami"]);
    assert_eq!(whoami["role"], "admin", "{whoami}");
    wait_until("the flood to end", Duration::from_secs(90), || {
        lab_exited(&mut lab, flood)
    });
    let reports = json_lines(&log);
    let first = &reports[0];
    let held = first["half_open"].as_u64().unwrap() + first["tls_idle"].as_u64().unwrap();
    assert!(
        held <= 256,
        "one address held {held} connections (the cap is 256): {}",
        std::fs::read_to_string(&log).unwrap()
    );
    let last = reports.last().unwrap();
    assert_eq!(
        (last["half_open"].as_u64(), last["tls_idle"].as_u64()),
        (Some(0), Some(0)),
        "the controller still holds connections that never sent a request: {reports:?}"
    );
    assert!(
        town.log().contains("connection refused from 172.31.1.2"),
        "{}",
        town.log()
    );
}

fn lab_exited(lab: &mut Lab, handle: usize) -> bool {
    lab.exited(handle).unwrap().is_some()
}

#[test]
fn guessing_is_logged_for_fail2ban_and_throttled() {
    let mut lab = Lab::new().unwrap();
    let town = Town::start(&mut lab, false);
    let real = Invitation::decode(town.init["admin_invitation"].as_str().unwrap()).unwrap();
    let guess_secret = "guessedsecretguessedsecretguessedsecret";
    let guess = Invitation {
        organization: String::new(),
        token: format!("0123456789abcdef.{guess_secret}"),
        ..real
    }
    .encode();
    let profiles = town.dir.path().join("guesser.toml");
    let login = |lab: &Lab| {
        lab.run(
            "home",
            &[
                path(&binary("portactl")),
                "--config",
                path(&profiles),
                "login",
                &guess,
            ],
        )
        .unwrap()
    };
    for attempt in 0..=guard_limit() {
        let output = login(&lab);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("not valid"), "attempt {attempt}: {stderr}");
    }
    // Throttled now: even a valid credential from that address is refused
    // unread, while the same admin elsewhere is served.
    let throttled = login(&lab);
    let stderr = String::from_utf8_lossy(&throttled.stderr);
    assert!(
        stderr.contains("too many failed sign-in attempts from 172.31.1.2"),
        "{stderr}"
    );
    let valid_from_home = lab
        .run(
            "home",
            &[
                path(&binary("portactl")),
                "--config",
                path(&town.profiles()),
                "whoami",
            ],
        )
        .unwrap();
    assert!(!valid_from_home.status.success());
    assert!(
        String::from_utf8_lossy(&valid_from_home.stderr)
            .contains("too many failed sign-in attempts")
    );
    assert_eq!(town.admin(&lab, &["whoami"])["role"], "admin");

    // One line per failure, with the source and the secret's id only.
    let log = town.log();
    assert!(!log.contains(guess_secret), "a secret reached the log");
    assert!(log.contains("0123456789abcdef"), "{log}");
    // fail2ban's own tool finds every failure with the shipped filter.
    let filter =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/fail2ban/filter.conf");
    let report = std::process::Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(town.dir.path().join("serve.log"))
        .arg(&filter)
        .output()
        .expect("fail2ban-regex (apt install fail2ban)");
    let report = String::from_utf8_lossy(&report.stdout);
    let matched: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Failregex: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(matched > u64::from(guard_limit()), "{report}");
    assert!(report.contains("172.31.1.2"), "{report}");
}

/// Failures a source may have before it is throttled.
fn guard_limit() -> u32 {
    porta_controller::guard::Ledger::LIMIT
}

#[tokio::test]
async fn names_that_deceive_are_refused() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    add_user(&mut admin, "alice").await;
    add_user(&mut admin, "núria").await;
    let create = |name: &str, display_name: &str| pb::CreateUserRequest {
        name: name.into(),
        display_name: display_name.into(),
        ..Default::default()
    };
    for (name, code, says) in [
        ("\u{430}lice", tonic::Code::InvalidArgument, "mixes letters"),
        (
            "ａｌｉｃｅ",
            tonic::Code::InvalidArgument,
            "not allowed in names",
        ),
        (
            "aIice",
            tonic::Code::AlreadyExists,
            "looks like the existing user \"alice\"",
        ),
        (
            "\u{430}\u{406}\u{456}\u{441}\u{435}",
            tonic::Code::AlreadyExists,
            "looks like",
        ),
    ] {
        let refused = admin.create_user(create(name, "")).await.unwrap_err();
        assert_eq!(refused.code(), code, "{name}: {refused:?}");
        assert!(refused.message().contains(says), "{name}: {refused:?}");
    }
    // Invisible characters in text fields.
    for text in ["evil\u{202e}exe.txt", "Anna\u{200b}Ferrer", "\u{feff}Anna"] {
        let refused = admin.create_user(create("anna", text)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("invisible character"),
            "{refused:?}"
        );
    }
    let refused = admin
        .create_group(pb::CreateGroupRequest {
            name: "gis".into(),
            description: "GIS\u{2066}team".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    // Lookalike groups and devices, and a device's reported host name.
    add_group(&mut admin, "gis").await;
    add_group(&mut admin, "rooms").await;
    let refused = admin
        .create_group(pb::CreateGroupRequest {
            name: "roorns".into(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::AlreadyExists, "{refused:?}");
    let invitation = invite(&mut admin, "alice", "alice-pc").await;
    let lookalike = admin
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user: "alice".into(),
            device_name: "aIice-pc".into(),
            ttl_seconds: 0,
            gateway: String::new(),
            email: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        lookalike.code(),
        tonic::Code::AlreadyExists,
        "{lookalike:?}"
    );
    let mut enrollment = ctl.enrollment().await;
    let refused = enrollment
        .enroll(pb::EnrollRequest {
            token: Invitation::decode(&invitation).unwrap().token,
            public_key: porta_tunnel::keys::PrivateKey::generate()
                .public_key()
                .to_base64(),
            hostname: "evil\u{202e}cod.exe".into(),
            os: "linux".into(),
            attempt: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    // Nothing refused was stored; the real names are intact.
    let users: Vec<String> = admin
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(users, ["alice", "núria"]);
}

#[tokio::test]
async fn a_store_that_lost_acknowledged_changes_is_refused_until_the_operator_says_so() {
    let mut ctl = TestController::start(&[]).await.unwrap();
    let credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let mut admin = ctl.admin_with(&credential).await;
    let laptop = invite(&mut admin, "anna", "anna-laptop").await;
    enroll(&mut ctl.enrollment().await, &laptop).await.unwrap();
    // An auditor logs in with portactl.
    let auditor = admin
        .create_api_credential(pb::CreateApiCredentialRequest {
            name: "auditor".into(),
            role: pb::Role::Auditor as i32,
            ttl_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .invitation;
    let config = ctl.dir.path().join("auditor.toml");
    let portactl = |args: &[&str]| {
        std::process::Command::new(binary("portactl"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(portactl(&["login", &auditor]).status.success());
    assert!(ctl.stop().await.unwrap());
    let store = ctl.data().join("store");
    let before_revocation = ctl.dir.path().join("store-before");
    copy_replacing(&store, &before_revocation);

    // Acknowledged: the laptop is revoked.
    ctl.serve().await.unwrap();
    let mut admin = ctl.admin_with(&credential).await;
    admin
        .revoke_device(pb::RevokeDeviceRequest {
            name: "anna-laptop".into(),
        })
        .await
        .unwrap();
    // The auditor verifies the logs; portactl remembers their heads.
    assert!(portactl(&["logs", "verify"]).status.success());
    assert!(ctl.stop().await.unwrap());

    // The store goes back to before the revocation (as sled does after
    // damage to its log): the controller refuses it and says why.
    copy_replacing(&before_revocation, &store);
    let refused = ctl.serve().await.unwrap_err().to_string();
    assert!(
        refused.contains("behind what this controller acknowledged")
            && refused.contains("admin log ends at record")
            && refused.contains("--accept-store-rollback")
            && !refused.contains("another porta-controller"),
        "{refused}"
    );
    // An operator who restored that backup on purpose starts it knowingly.
    ctl.serve_with(&["--accept-store-rollback"]).await.unwrap();
    let mut admin = ctl.admin_with(&credential).await;
    let devices = admin
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(devices.len(), 1);
    // The restored logs verify on their own, but not against what the
    // auditor verified before; once accepted, verification is clean again.
    let behind = portactl(&["logs", "verify"]);
    let said = String::from_utf8_lossy(&behind.stdout);
    assert!(!behind.status.success());
    assert!(
        said.contains("admin log: BROKEN: it went backwards"),
        "{said}"
    );
    let again = portactl(&["logs", "verify"]);
    assert!(!again.status.success(), "it keeps saying so");
    assert!(
        portactl(&["logs", "verify", "--accept-rollback"])
            .status
            .success()
    );
    assert!(portactl(&["logs", "verify"]).status.success());
    assert!(ctl.stop().await.unwrap());
    // From then on the witness follows the restored store.
    ctl.serve().await.unwrap();
}

#[tokio::test]
async fn a_full_disk_is_named_and_the_controller_recovers_when_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("data"), "16m");
    let mut ctl = TestController::start_in(dir, &[]).await.unwrap();
    let credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let mut admin = ctl.admin_with(&credential).await;
    let filler = ctl.data().join("filler");
    let fill = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=15"])
        .arg(format!("of={}", filler.display()))
        .output()
        .unwrap();
    assert!(fill.status.success(), "{fill:?}");
    let create = |i: usize| pb::CreateUserRequest {
        name: format!("user{i}"),
        display_name: "x".repeat(250),
        ..Default::default()
    };
    let mut refused = None;
    for i in 0..5_000 {
        if let Err(status) = admin.create_user(create(i)).await {
            refused = Some(status);
            break;
        }
    }
    let refused = refused.expect("the disk filled");
    let errors: Vec<String> = ctl
        .log()
        .lines()
        .filter(|l| l.contains("ERROR") && !l.contains("sled::"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?} {errors:?}"
    );
    assert!(
        refused.message().contains("the disk holding") && refused.message().contains("is full"),
        "{refused:?}"
    );
    // Still full: still refused, clearly.
    let again = admin.create_user(create(9_999)).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::ResourceExhausted);

    // Space is freed: within seconds writes work again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match admin.create_user(create(10_000)).await {
            Ok(_) => break,
            Err(status) if std::time::Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("still refused 10 s after space was freed: {status:?}"),
        }
    }
    assert!(
        ctl.log().contains("the store writes again"),
        "{}",
        ctl.log()
    );
    assert!(ctl.stop().await.unwrap());
    // What was refused was not kept; what was acknowledged was.
    ctl.serve().await.unwrap();
    let names: Vec<String> = ctl
        .admin_with(&credential)
        .await
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert!(names.contains(&"user10000".to_owned()));
    assert!(!names.contains(&"user9999".to_owned()));
    assert!(ctl.stop().await.unwrap());
    drop(disk);
}

#[tokio::test]
async fn sessions_of_a_gateway_gone_past_the_idle_time_are_no_longer_listed() {
    let mut ctl = TestController::start(&[]).await.unwrap();
    let credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    assert!(ctl.stop().await.unwrap());
    ctl.serve_with(&["--session-idle", "2s"]).await.unwrap();
    let mut admin = ctl.admin_with(&credential).await;
    let mut annex = gateway_login(&ctl, &mut admin, "annex", "192.0.2.7:51820").await;
    let device = enroll_on(&ctl, &mut admin, "anna", "anna-laptop", "annex").await;
    // The annex is connected (it follows the peer set) and reports a session.
    let stream = annex
        .watch_peers(pb::WatchPeersRequest::default())
        .await
        .unwrap()
        .into_inner();
    annex
        .report_events(pb::ReportEventsRequest {
            events: vec![event("start", "session_start", unix_now(), &device)],
        })
        .await
        .unwrap();
    let audit = porta_proto::pb::audit_client::AuditClient::with_interceptor(
        ctl.channel().await,
        Bearer::new(&credential),
    );
    let listed = || {
        let mut audit = audit.clone();
        async move {
            audit
                .list_sessions(pb::ListSessionsRequest {})
                .await
                .unwrap()
                .into_inner()
                .sessions
                .len()
        }
    };
    // Connected: listed however long it lasts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(listed().await, 1);
    // The annex dies without ending it: once it has been gone for the idle
    // time, the session is over.
    drop(stream);
    drop(annex);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while listed().await == 1 {
        assert!(std::time::Instant::now() < deadline, "still listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn verify_admin_log(ctl: &TestController, credential: &str) -> pb::VerifyLogResponse {
    pb::audit_client::AuditClient::with_interceptor(ctl.channel().await, Bearer::new(credential))
        .verify_log(pb::VerifyLogRequest {
            kind: pb::LogKind::Admin as i32,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_deleted_witness_is_said_at_every_verification_until_an_operator_rebuilds_it() {
    let mut ctl = TestController::start(&[]).await.unwrap();
    let credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let user = |name: &str| pb::CreateUserRequest {
        name: name.into(),
        ..Default::default()
    };
    ctl.admin_with(&credential)
        .await
        .create_user(user("anna"))
        .await
        .unwrap();
    assert!(ctl.stop().await.unwrap());
    let witness = ctl.data().join("store.witness");
    std::fs::remove_file(&witness).unwrap();

    // It starts (staff keep working) but says so, at start and to every
    // auditor who verifies the logs, and does not quietly make a new one.
    ctl.serve().await.unwrap();
    assert!(
        ctl.log()
            .contains("STARTING WITHOUT THE STORE'S ROLLBACK CHECK"),
        "{}",
        ctl.log()
    );
    let verified = verify_admin_log(&ctl, &credential).await;
    assert!(!verified.ok, "{verified:?}");
    assert!(
        verified.problem.contains("witness")
            && verified.problem.contains("is missing")
            && verified.problem.contains("--accept-store-rollback"),
        "{verified:?}"
    );
    ctl.admin_with(&credential)
        .await
        .create_user(user("bernat"))
        .await
        .unwrap();
    assert!(!witness.exists(), "not rebuilt without being asked");
    assert!(ctl.stop().await.unwrap());

    // The operator decides: rebuilt from the store as it is, and checked
    // from then on.
    ctl.serve_with(&["--accept-store-rollback"]).await.unwrap();
    assert!(witness.exists());
    assert!(verify_admin_log(&ctl, &credential).await.ok);
    assert!(ctl.stop().await.unwrap());
    ctl.serve().await.unwrap();
    assert!(verify_admin_log(&ctl, &credential).await.ok);
}

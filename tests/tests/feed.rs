//! The SIEM feed against a real rsyslog (Debian's, with rsyslog-relp) on
//! loopback over TLS: every admin action and connection event reaches the
//! collector's file, in order, through a collector outage and a controller
//! restart; what the collector wrote converts back (`portactl logs feed
//! extract`) into exports that `portactl logs verify --file` accepts and
//! that equal the controller's own export.
//!
//! Connection events come from gateways registered through the Gateway
//! API (porta_tests::gateway_api): the subject here is the log and its
//! feed, not the data plane.

use porta_proto::pb;
use porta_tests::gateway_api::{enroll_on, event, gateway_login, unix_now};
use porta_tests::portactl::Portactl;
use porta_tests::rsyslog::Rsyslog;
use porta_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Some of everything: five users, a gateway, a device on it, and ten
/// connection events from that gateway (`round` keeps names apart).
async fn activity(ctl: &TestController, credential: &str, round: u32) {
    let mut admin = ctl.admin_with(credential).await;
    for i in 0..5 {
        admin
            .create_user(pb::CreateUserRequest {
                name: format!("r{round}-person{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let gateway_name = format!("gw{round}");
    let mut gateway = gateway_login(
        ctl,
        &mut admin,
        &gateway_name,
        &format!("192.0.2.{round}:51820"),
    )
    .await;
    let device = enroll_on(
        ctl,
        &mut admin,
        &format!("r{round}-staff"),
        &format!("r{round}-laptop"),
        &gateway_name,
    )
    .await;
    let now = unix_now();
    let events = (0..10)
        .map(|i| {
            let kind = if i % 2 == 0 {
                "session_start"
            } else {
                "session_end"
            };
            event(&format!("r{round}-event{i}"), kind, now, &device)
        })
        .collect();
    let report = gateway
        .report_events(pb::ReportEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.accepted, 10, "{report:?}");
}

/// The admin's credential (the admin works through the API), and
/// `portactl` logged in as an auditor (who watches the feed).
async fn admin_and_auditor(ctl: &TestController, dir: &Path) -> (String, Portactl) {
    let credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let auditor = ctl
        .admin_with(&credential)
        .await
        .create_api_credential(pb::CreateApiCredentialRequest {
            name: "auditor".into(),
            role: pb::Role::Auditor as i32,
            ttl_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let cli = Portactl::new(dir);
    cli.json(&["login", &auditor.invitation]).await;
    (credential, cli)
}

/// `portactl logs feed status --json`.
async fn status(cli: &Portactl) -> Value {
    cli.json(&["logs", "feed", "status"]).await
}

/// Waits until the collector has every record of both logs.
async fn wait_until_delivered(cli: &Portactl, collector: &Rsyslog) {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = status(cli).await;
        if last["connected"] == true
            && last["connection"]["behind"] == 0
            && last["admin"]["behind"] == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the feed did not catch up: {last}\nrsyslogd: {}",
        collector.output()
    );
}

/// Each log's sequences in the order the collector wrote them, and the
/// records by sequence (a duplicate must equal the first copy).
fn arrivals(file: &Path) -> BTreeMap<&'static str, Vec<u64>> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut order: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let mut seen: BTreeMap<(&'static str, u64), serde_json::Map<String, Value>> = BTreeMap::new();
    for line in text.lines() {
        let received = porta_proto::feed::parse_line(line)
            .unwrap()
            .unwrap_or_else(|| panic!("a line without a record: {line}"));
        let log = porta_proto::feed::log_name(received.log);
        order.entry(log).or_default().push(received.sequence);
        let first = seen
            .entry((log, received.sequence))
            .or_insert_with(|| received.record.clone());
        assert_eq!(*first, received.record, "a duplicate differs");
    }
    order
}

/// Every record 1..=head arrived, each run in order; the only steps back
/// are resends after a reconnect (at most `reconnects`).
fn assert_complete_and_in_order(log: &str, sequences: &[u64], head: u64, reconnects: usize) {
    let mut steps_back = 0;
    for pair in sequences.windows(2) {
        if pair[1] == pair[0] + 1 {
            continue;
        }
        assert!(
            pair[1] <= pair[0],
            "{log}: a gap after {} (next {})",
            pair[0],
            pair[1]
        );
        steps_back += 1;
    }
    assert!(
        steps_back <= reconnects,
        "{log}: {steps_back} steps back: {sequences:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = sequences.iter().copied().collect();
    assert_eq!(
        distinct,
        (1..=head).collect(),
        "{log}: every record, from the first"
    );
}

/// The collector's file, extracted per log, verifies and equals the
/// controller's own export.
async fn assert_extracts_verify_and_match_the_export(cli: &Portactl, file: &Path, dir: &Path) {
    for kind in ["connections", "admin"] {
        let extracted = dir.join(format!("{kind}-from-siem.jsonl"));
        let out = cli
            .run(&[
                "logs",
                "feed",
                "extract",
                path_str(file),
                "--kind",
                kind,
                "--out",
                path_str(&extracted),
            ])
            .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let verified = cli
            .run(&["logs", "verify", "--file", path_str(&extracted)])
            .await;
        assert!(
            verified.status.success(),
            "{kind}: {}{}",
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
        let exported = dir.join(format!("{kind}-export.jsonl"));
        cli.run(&[
            "logs",
            "export",
            "--kind",
            kind,
            "--format",
            "jsonl",
            "--out",
            path_str(&exported),
        ])
        .await;
        let read = |p: &PathBuf| -> Vec<Value> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        assert_eq!(
            read(&extracted),
            read(&exported),
            "{kind}: the SIEM has the log"
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn every_record_reaches_rsyslog_over_relp_through_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let collector_dir = dir.path().join("collector");
    std::fs::create_dir(&collector_dir).unwrap();
    let mut collector = Rsyslog::start(&collector_dir);
    let config = dir.path().join("controller.toml");
    std::fs::write(&config, collector.feed_toml("relp")).unwrap();
    let mut ctl = TestController::start(&[]).await.unwrap();
    ctl.stop().await.unwrap();
    ctl.serve_with(&["--config", path_str(&config)])
        .await
        .unwrap();
    // The admin works through the API; the auditor watches with portactl.
    let (credential, cli) = admin_and_auditor(&ctl, dir.path()).await;

    activity(&ctl, &credential, 1).await;
    wait_until_delivered(&cli, &collector).await;
    let first = status(&cli).await;
    assert_eq!(first["acknowledged"], true, "{first}");
    assert!(first["connection"]["head"].as_u64().unwrap() >= 10);

    // The collector goes away; records keep being appended, and the
    // status says the feed is behind and why.
    collector.stop();
    activity(&ctl, &credential, 2).await;
    let mut during = Value::Null;
    for _ in 0..100 {
        during = status(&cli).await;
        // First the collector's goodbye, then refused reconnections.
        if during["connected"] == false
            && during["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("refused"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(during["connected"], false, "{during}");
    assert!(
        during["admin"]["behind"].as_u64().unwrap() > 0
            && during["connection"]["behind"].as_u64().unwrap() > 0,
        "{during}"
    );
    assert!(
        during["last_error"].as_str().unwrap().contains("refused"),
        "{during}"
    );
    let text = cli.run(&["logs", "feed", "status"]).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("connected:   no") && text.contains("behind"),
        "{text}"
    );

    // The controller restarts during the outage, and more happens.
    ctl.stop().await.unwrap();
    ctl.serve_with(&["--config", path_str(&config)])
        .await
        .unwrap();
    activity(&ctl, &credential, 3).await;

    // The collector comes back: the feed resumes where it stopped.
    collector.start_again();
    wait_until_delivered(&cli, &collector).await;
    let end = status(&cli).await;
    let received = arrivals(&collector.file("relp"));
    // Two reconnects: after the outage (the controller's second run never
    // reached it) and after the restart.
    assert_complete_and_in_order(
        "connection",
        &received["connection"],
        end["connection"]["head"].as_u64().unwrap(),
        2,
    );
    assert_complete_and_in_order(
        "admin",
        &received["admin"],
        end["admin"]["head"].as_u64().unwrap(),
        2,
    );
    assert_extracts_verify_and_match_the_export(&cli, &collector.file("relp"), dir.path()).await;
}

#[tokio::test]
async fn syslog_and_json_lines_over_tls_carry_every_record_once_and_a_wrong_ca_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let collector_dir = dir.path().join("collector");
    std::fs::create_dir(&collector_dir).unwrap();
    let collector = Rsyslog::start(&collector_dir);
    let mut ctl = TestController::start(&[]).await.unwrap();
    let (credential, cli) = admin_and_auditor(&ctl, dir.path()).await;
    activity(&ctl, &credential, 1).await;
    // Without [feed], the status says so.
    assert_eq!(status(&cli).await["configured"], false);

    // Each target starts from the first record: the whole log so far.
    let config = dir.path().join("controller.toml");
    for (scheme, input) in [("syslog-tls", "syslog"), ("jsonl-tls", "jsonl")] {
        std::fs::write(&config, collector.feed_toml(scheme)).unwrap();
        ctl.stop().await.unwrap();
        ctl.serve_with(&["--config", path_str(&config)])
            .await
            .unwrap();
        wait_until_delivered(&cli, &collector).await;
        let end = status(&cli).await;
        assert_eq!(end["acknowledged"], false, "{end}");
        let received = arrivals(&collector.file(input));
        for log in ["connection", "admin"] {
            let head = end[log]["head"].as_u64().unwrap();
            assert_eq!(
                received[log],
                (1..=head).collect::<Vec<_>>(),
                "{input}: {log}"
            );
        }
        assert_extracts_verify_and_match_the_export(&cli, &collector.file(input), dir.path()).await;
    }
    let syslog = std::fs::read_to_string(collector.file("syslog")).unwrap();
    assert!(
        syslog
            .lines()
            .all(|l| l.starts_with('<') && l.contains(" [porta@32473 ")),
        "RFC 5424 with structured data: {syslog}"
    );

    // A collector whose certificate comes from another CA: refused, and
    // the status says why.
    let wrong = collector
        .feed_toml("syslog-tls")
        .replace("ca.pem", "other-ca.pem");
    std::fs::write(&config, wrong).unwrap();
    ctl.stop().await.unwrap();
    ctl.serve_with(&["--config", path_str(&config)])
        .await
        .unwrap();
    let mut refused = Value::Null;
    for _ in 0..100 {
        refused = status(&cli).await;
        if refused["last_error"] != "" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused["connected"], false, "{refused}");
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{refused}"
    );
}

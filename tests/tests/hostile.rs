//! Attacks by anyone on the network and by a read-only role on the
//! controller's resources — memory, file descriptors, the threads the
//! write path needs — each played against a real `porta-controller`.

use bytes::Bytes;
use porta_proto::pb;
use porta_tests::gateway_api::{enroll_on, event, gateway_login, unix_now};
use porta_tests::netns::{Lab, addr};
use porta_tests::town::{Town, path, wait_until};
use porta_tests::*;
use std::time::Duration;
use tonic::codegen::Service;

/// Sends a gRPC request on `path` whose first message declares
/// `declared` bytes, then sends 64 KiB pieces of it as fast as the
/// controller takes them, and never finishes it.
async fn half_sent(mut channel: tonic::transport::Channel, path: &'static str, declared: u32) {
    let mut first = vec![0u8];
    first.extend_from_slice(&declared.to_be_bytes());
    let pieces = std::iter::once(Bytes::from(first))
        .chain(std::iter::repeat_n(Bytes::from(vec![0u8; 64 * 1024]), 60))
        .map(|piece| Ok::<_, std::convert::Infallible>(http_body::Frame::data(piece)));
    let body = http_body_util::StreamBody::new(futures::StreamExt::chain(
        futures::stream::iter(pieces),
        futures::stream::pending(),
    ));
    let request = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(format!("http://controller{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(body))
        .unwrap();
    if std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .is_ok()
    {
        // Holds the response (and so the stream) for as long as it lives.
        if let Ok(response) = channel.call(request).await {
            std::future::pending::<()>().await;
            drop(response);
        }
    }
}

#[tokio::test]
async fn messages_declared_huge_and_never_finished_stay_within_a_memory_bound() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let before = ctl.rss_bytes();
    // Two connections of 100 streams each, on the services that need no
    // credential (reflection, health) and on one that does.
    let mut attack = Vec::new();
    for _ in 0..2 {
        let channel = ctl.channel().await;
        for i in 0..100 {
            let path = match i % 3 {
                0 => "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                1 => "/grpc.health.v1.Health/Check",
                _ => "/porta.v1.Enrollment/Enroll",
            };
            attack.push(tokio::spawn(half_sent(channel.clone(), path, 4_000_000)));
        }
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = ctl.rss_bytes();
    let users = tokio::time::timeout(
        Duration::from_secs(10),
        admin.list_users(pb::ListUsersRequest {}),
    )
    .await
    .expect("the admin is answered during the attack");
    assert!(users.is_ok(), "{users:?}");
    for task in &attack {
        task.abort();
    }
    let grown = during.saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "200 half-sent 4 MB messages grew the controller by {} MiB (from {} MiB)",
        grown >> 20,
        before >> 20
    );
}

#[tokio::test]
async fn an_auditor_who_stops_reading_cannot_stall_writes() {
    let ctl = TestController::start(&[]).await.unwrap();
    let admin_credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let mut admin = ctl.admin_with(&admin_credential).await;
    // A connection log of 16 pages, more than a reader's windows hold.
    let mut annex = gateway_login(&ctl, &mut admin, "annex", "192.0.2.7:51820").await;
    let device = enroll_on(&ctl, &mut admin, "anna", "anna-laptop", "annex").await;
    let now = unix_now();
    // (200 events per report: 1,000 exceed the message size cap.)
    for batch in 0..80 {
        let events = (0..200)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    "session_start"
                } else {
                    "session_end"
                };
                event(&format!("e{batch}-{i}"), kind, now, &device)
            })
            .collect();
        annex
            .report_events(pb::ReportEventsRequest { events })
            .await
            .unwrap();
    }
    let auditor = ctl
        .api_credential(&mut admin, "auditor", pb::Role::Auditor)
        .await;

    // 540 exports on 9 connections, none of them ever read.
    let mut stalled = Vec::new();
    let mut refused = 0;
    for _ in 0..9 {
        let channel = ctl.channel().await;
        let opened = (0..60).map(|_| {
            let mut audit = pb::audit_client::AuditClient::with_interceptor(
                channel.clone(),
                porta_proto::connect::Bearer::new(&auditor),
            );
            async move { audit.export_connections(pb::ExportRequest::default()).await }
        });
        for answer in futures::future::join_all(opened).await {
            match answer {
                Ok(stream) => stalled.push(stream.into_inner()),
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                    refused += 1;
                }
            }
        }
    }
    assert!(
        stalled.len() <= 4,
        "{} exports for one credential",
        stalled.len()
    );
    assert_eq!(stalled.len() + refused, 540);

    // Writes and revocations go on.
    for (i, write) in ["users add", "devices revoke"].iter().enumerate() {
        let done = tokio::time::timeout(Duration::from_secs(10), async {
            if i == 0 {
                admin
                    .create_user(pb::CreateUserRequest {
                        name: "bernat".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            } else {
                admin
                    .revoke_device(pb::RevokeDeviceRequest {
                        name: "anna-laptop".into(),
                    })
                    .await
                    .map(drop)
            }
        })
        .await;
        assert!(
            matches!(done, Ok(Ok(()))),
            "{write} while exports stall: {done:?}"
        );
    }

    // A reader that takes nothing is dropped: its export ends with an
    // error, never as if complete, and its place comes back.
    let mut first = stalled.remove(0);
    tokio::time::sleep(Duration::from_secs(25)).await;
    // (The others' unread data holds the connection's window: let it go.)
    stalled.clear();
    let ending = loop {
        match first.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    match ending {
        Err(status) => assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}"),
        Ok(None) => panic!("a stalled export ended as if complete"),
        Ok(Some(_)) => unreachable!(),
    }
    let mut audit = pb::audit_client::AuditClient::with_interceptor(
        ctl.channel().await,
        porta_proto::connect::Bearer::new(&auditor),
    );
    let mut fresh = audit
        .export_connections(pb::ExportRequest::default())
        .await
        .expect("the stalled exports' places came back")
        .into_inner();
    let mut records = 0;
    while let Some(page) = fresh.message().await.unwrap() {
        records += page.records.len();
    }
    assert!(records >= 16_000, "{records}");
}

/// Opens `per_source` plain TCP connections to `host:port` from each of
/// `sources`, sends nothing, and reports how many the server still holds
/// ([`PY_HOLD_AND_REPORT`]).
const HOLDER: &str = r#"
host, port, per_source = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for source in sys.argv[4:]:
    for _ in range(per_source):
        s = socket.socket()
        s.bind((source, 0))
        s.connect((host, port))
        held.append(s)
report(held)
"#;

#[test]
fn many_sources_under_their_cap_cannot_take_every_descriptor() {
    let mut lab = Lab::new().unwrap();
    // systemd's default soft limit, with a hard limit above it.
    let town = Town::start_under(
        &mut lab,
        false,
        &[],
        &[],
        &["prlimit", "--nofile=1024:1400", "--"],
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", lab.pid(town.serve))).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some("1400"),
        "the soft limit is raised to the hard one at start: {open_files}"
    );
    // Five addresses at home, 250 connections each (each under its cap of
    // 256): more than the process could hold without a total cap.
    let home_if = lab.iface("hometown");
    let sources: Vec<String> = (2..7).map(|i| format!("172.31.1.{i}")).collect();
    for source in &sources[1..] {
        lab.exec(
            "home",
            &[
                "ip",
                "addr",
                "add",
                &format!("{source}/24"),
                "dev",
                &home_if,
            ],
        )
        .unwrap();
    }
    let dir = town.dir.path();
    std::fs::write(dir.join("hold.py"), format!("{PY_HOLD_AND_REPORT}{HOLDER}")).unwrap();
    let log = dir.join("hold.log");
    let script = dir.join("hold.py");
    let mut command = vec!["python3", path(&script), addr::TOWN_PUBLIC, "7443", "250"];
    command.extend(sources.iter().map(String::as_str));
    let holder = lab.spawn("home", &command, &log).unwrap();
    lab.wait_for(holder, "the connections", Duration::from_secs(60), |_| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("held")
    });
    // While they are held, the admin (on the controller's host) is served.
    let whoami = town.admin(&lab, &["whoami"]);
    assert_eq!(whoami["role"], "admin", "{whoami}");
    let report: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["opened"], 1250, "{report}");
    let held = report["held"].as_u64().unwrap();
    assert!(
        held <= 1400 - 512,
        "the controller held {held} connections with 1,400 descriptors"
    );
    wait_until("the refusal in the log", Duration::from_secs(5), || {
        town.log().contains("its total cap")
    });
    let _ = lab.stop(holder);
}

#[tokio::test]
async fn the_metrics_endpoint_holds_few_connections() {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut ctl = TestController::start(&[]).await.unwrap();
    ctl.stop().await.unwrap();
    ctl.serve_with(&["--metrics-listen", &listen])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hold.py");
    std::fs::write(&script, format!("{PY_HOLD_AND_REPORT}{HOLDER}")).unwrap();
    let (host, port) = listen.split_once(':').unwrap();
    let mut holder = tokio::process::Command::new("python3")
        .arg(&script)
        .args([host, port, "100", "127.0.0.1"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(holder.stdout.take().unwrap()));
    let first = lines.next_line().await.unwrap().unwrap();
    let report: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(report["opened"], 100, "{report}");
    assert!(
        report["held"].as_u64().unwrap() <= 16,
        "the metrics endpoint held {report}"
    );
}

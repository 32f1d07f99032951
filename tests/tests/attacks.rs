//! Attacks on the controller by holders of some credential (or none): each
//! test plays the attack against a real `porta-controller` and asserts that
//! the log, the store and honest callers are unaffected.

use porta_proto::connect::Bearer;
use porta_proto::invitation::Invitation;
use porta_proto::pb;
use porta_proto::pb::gateway_client::GatewayClient;
use porta_tests::*;
use std::time::{SystemTime, UNIX_EPOCH};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A registered remote gateway named `name`, as its own Gateway client.
async fn gateway_login(
    ctl: &TestController,
    admin: &mut porta_proto::pb::admin_client::AdminClient<porta_proto::connect::Authed>,
    name: &str,
    endpoint: &str,
) -> GatewayClient<porta_proto::connect::Authed> {
    let created = admin
        .create_gateway(pb::CreateGatewayRequest {
            name: name.into(),
            endpoint: endpoint.into(),
            ttl_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let credential = ctl.login(&created.invitation).await.unwrap().credential;
    let mut gateway =
        GatewayClient::with_interceptor(ctl.channel().await, Bearer::new(&credential));
    gateway
        .register(pb::RegisterGatewayRequest {
            public_key: porta_tunnel::keys::PrivateKey::generate()
                .public_key()
                .to_base64(),
        })
        .await
        .unwrap();
    gateway
}

/// Enrolls `device` for `user`, to connect through `gateway` ("" for the
/// embedded one); returns its device id.
async fn enroll_on(
    ctl: &TestController,
    admin: &mut porta_proto::pb::admin_client::AdminClient<porta_proto::connect::Authed>,
    user: &str,
    device: &str,
    gateway: &str,
) -> String {
    let _ = admin
        .create_user(pb::CreateUserRequest {
            name: user.into(),
            ..Default::default()
        })
        .await;
    let invitation = admin
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user: user.into(),
            device_name: device.into(),
            ttl_seconds: 0,
            gateway: gateway.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .invitation;
    Invitation::decode(&invitation).unwrap();
    enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .unwrap()
        .config
        .device_id
}

fn event(id: &str, kind: &str, at: u64, device_id: &str) -> pb::ConnectionEvent {
    pb::ConnectionEvent {
        event_id: id.into(),
        kind: kind.into(),
        at,
        device_id: device_id.into(),
        public_address: "192.0.2.50:41000".into(),
        previous_public_address: String::new(),
        rx_bytes: 4_000,
        tx_bytes: 9_000,
        reason: if kind == "session_end" {
            "idle".into()
        } else {
            String::new()
        },
        session_start: 0,
    }
}

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
        event("next-year", "session_start", now + 365 * 86_400, &ours),
        huge,
        formula,
        event("end-theirs", "session_end", now, &theirs),
    ];
    let attempted = forgeries.len();
    let report = annex
        .report_events(pb::ReportEventsRequest {
            events: forgeries
                .into_iter()
                .chain([event("honest", "session_start", now, &ours)])
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.accepted, 1, "only the honest event: {report:?}");
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
    while let Some(record) = futures::StreamExt::next(&mut records).await {
        let record = record.unwrap();
        assert!(record.at + 3_600 > now, "a back-dated record: {record:?}");
        assert!(record.rx_bytes < 1_000_000_000, "{record:?}");
        ids.push((record.device, record.gateway));
    }
    assert_eq!(
        ids,
        [
            ("bernat-pc".to_owned(), "branch".to_owned()),
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

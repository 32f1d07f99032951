//! The controller's flows, as admins and devices live them.
//!
//! Longer than our usual file on purpose: one test per flow, sharing the
//! small request builders at the top; each flow is read top to bottom.

use futures::StreamExt;
use porta_proto::connect::{ConnectError, connect};
use porta_proto::pb;
use porta_proto::{CertFingerprint, Invitation};
use porta_tests::*;
use std::time::Duration;
use tonic::Code;

fn destination(cidr: &str, protocol: pb::Protocol, ports: &[u32]) -> Option<pb::Destination> {
    Some(pb::Destination {
        cidr: cidr.into(),
        protocol: protocol as i32,
        ports: ports
            .iter()
            .map(|&p| pb::PortRange { first: p, last: p })
            .collect(),
    })
}

/// Waits for the next stream item, failing the test after 10 s.
fn porta_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn next<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("stream item within 10 s")
        .expect("stream still open")
}

/// The config stream of the device holding `credential`.
async fn watch_config(
    ctl: &TestController,
    credential: &str,
) -> tonic::Streaming<pb::DeviceConfig> {
    ctl.device_with(credential)
        .await
        .watch_config(pb::WatchConfigRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn enroll_watch_route_change_and_revoke() {
    let ctl = TestController::start(&["--route", "10.1.0.53/32", "--dns", "10.1.0.53"])
        .await
        .unwrap();
    let mut admin = ctl.admin().await;

    // The admin invitation works once only.
    let again = ctl.login(&ctl.admin_invitation).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("already used"), "{again:?}");

    admin
        .create_group(pb::CreateGroupRequest {
            name: "gis".into(),
            description: "GIS".into(),
        })
        .await
        .unwrap();
    admin
        .allow_destination(pb::AllowDestinationRequest {
            group: "gis".into(),
            destination: destination("10.1.20.0/24", pb::Protocol::Tcp, &[443]),
        })
        .await
        .unwrap();
    admin
        .create_user(pb::CreateUserRequest {
            name: "anna".into(),
            display_name: "Anna Ferrer".into(),
            groups: vec!["gis".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let invitation = invite(&mut admin, "anna", "anna-laptop").await;
    let parsed = Invitation::decode(&invitation).unwrap();
    assert_eq!(parsed.controller, ctl.api);
    assert_eq!(parsed.fingerprint, ctl.fingerprint);
    assert_eq!(parsed.kind, pb::InvitationKind::Device);

    let device = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .unwrap();
    let config = &device.config;
    assert_eq!(config.device_name, "anna-laptop");
    assert_eq!(config.user, "anna");
    assert_eq!(
        config.addresses[0], "10.77.0.2/32",
        "first device address after the gateway's"
    );
    assert!(
        config.addresses[1].starts_with("fd") && config.addresses[1].ends_with("::2/128"),
        "{config:?}"
    );
    assert_eq!(config.routes, vec!["10.1.0.53/32", "10.1.20.0/24"]);
    assert_eq!(config.dns_servers, vec!["10.1.0.53"]);
    assert_eq!(config.gateways.len(), 1);
    let gateways = admin
        .list_gateways(pb::ListGatewaysRequest {})
        .await
        .unwrap()
        .into_inner()
        .gateways;
    assert_eq!(config.gateways[0].public_key, gateways[0].public_key);
    assert_eq!(config.gateways[0].endpoint, "127.0.0.1:51820");

    // The invitation is spent.
    let reuse = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .err()
        .unwrap();
    assert_eq!(reuse.code(), Code::FailedPrecondition);

    // The device watches its config; a route change arrives live.
    let mut device_api = ctl.device_with(&device.credential).await;
    let mut stream = device_api
        .watch_config(pb::WatchConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await.unwrap();
    assert_eq!(first.routes, config.routes);
    admin
        .allow_destination(pb::AllowDestinationRequest {
            group: "gis".into(),
            destination: destination("10.1.30.0/24", pb::Protocol::Any, &[]),
        })
        .await
        .unwrap();
    let changed = next(&mut stream).await.unwrap();
    assert_eq!(
        changed.routes,
        vec!["10.1.0.53/32", "10.1.20.0/24", "10.1.30.0/24"]
    );
    assert!(changed.revision > first.revision);

    // A change that does not affect this device sends nothing new: the next
    // item after an unrelated change and a related one is the related one.
    add_group(&mut admin, "rdp").await;
    join(&mut admin, "rdp", &["anna"]).await;
    admin
        .allow_destination(pb::AllowDestinationRequest {
            group: "rdp".into(),
            destination: destination("10.1.40.10/32", pb::Protocol::Tcp, &[3389]),
        })
        .await
        .unwrap();
    let with_rdp = next(&mut stream).await.unwrap();
    assert!(
        with_rdp.routes.contains(&"10.1.40.10/32".to_string()),
        "{with_rdp:?}"
    );

    device_api
        .report_status(pb::DeviceStatusReport {
            client_version: "porta 0.1.0".into(),
            hostname: "anna-pc".into(),
            os: "Debian 13".into(),
            tunnel_up: true,
            // A laptop whose clock runs an hour ahead.
            last_handshake_at: porta_now() + 3600,
        })
        .await
        .unwrap();
    let shown = admin
        .get_device(pb::GetDeviceRequest {
            name: "anna-laptop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.client_version, "porta 0.1.0");
    assert_eq!(shown.hostname, "anna-pc");
    assert!(shown.last_seen_at > 0);
    assert!(
        shown.last_handshake_at > 0 && shown.last_handshake_at <= porta_now(),
        "a handshake time from the future is taken as now: {shown:?}"
    );

    // Revocation ends the stream with a message a person can read.
    let revoked = admin
        .revoke_device(pb::RevokeDeviceRequest {
            name: "anna-laptop".into(),
        })
        .await
        .unwrap();
    assert!(revoked.into_inner().device.unwrap().revoked);
    let end = next(&mut stream).await.unwrap_err();
    assert_eq!(
        porta_proto::refusal::Refusal::of(&end),
        Some(porta_proto::refusal::Refusal::DeviceRevoked),
        "{end:?}"
    );
    assert!(
        end.message().contains("revoked by your IT administrator"),
        "{end:?}"
    );
    // …and the old credential is refused everywhere.
    let refused = device_api
        .watch_config(pb::WatchConfigRequest {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.code(),
            Code::PermissionDenied | Code::Unauthenticated
        ),
        "{refused:?}"
    );
    let refused = device_api
        .report_status(pb::DeviceStatusReport::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.code(),
            Code::PermissionDenied | Code::Unauthenticated
        ),
        "{refused:?}"
    );

    // The name is free again; the key is not; the address is in quarantine.
    let invitation = invite(&mut admin, "anna", "anna-laptop").await;
    let token = Invitation::decode(&invitation).unwrap().token;
    let same_key = ctl
        .enrollment()
        .await
        .enroll(pb::EnrollRequest {
            token,
            public_key: device.key.public_key().to_base64(),
            hostname: "laptop".into(),
            os: "linux".into(),
            attempt: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(same_key.code(), Code::AlreadyExists, "{same_key:?}");
    let second = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .unwrap();
    assert_eq!(
        second.config.addresses[0], "10.77.0.3/32",
        "the revoked address stays in quarantine"
    );
    let listed = admin
        .list_devices(pb::ListDevicesRequest {
            user: "anna".into(),
            include_revoked: true,
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().filter(|d| d.revoked).count(), 1);
}

#[tokio::test]
async fn a_disabled_user_is_refused_until_enabled() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let invitation = invite(&mut admin, "jordi", "jordi-pc").await;
    let device = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .unwrap();
    let mut device_api = ctl.device_with(&device.credential).await;
    let mut stream = device_api
        .watch_config(pb::WatchConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await.unwrap();

    admin
        .set_user_disabled(pb::SetUserDisabledRequest {
            name: "jordi".into(),
            disabled: true,
        })
        .await
        .unwrap();
    let end = next(&mut stream).await.unwrap_err();
    assert_eq!(end.code(), Code::PermissionDenied);
    assert_eq!(
        porta_proto::refusal::Refusal::of(&end),
        Some(porta_proto::refusal::Refusal::UserDisabled),
        "{end:?}"
    );
    assert!(end.message().contains("disabled"), "{end:?}");
    assert_eq!(
        device_api
            .report_status(pb::DeviceStatusReport::default())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let token = admin
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user: "jordi".into(),
            device_name: "jordi-phone".into(),
            ttl_seconds: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(token.code(), Code::FailedPrecondition);

    admin
        .set_user_disabled(pb::SetUserDisabledRequest {
            name: "jordi".into(),
            disabled: false,
        })
        .await
        .unwrap();
    device_api
        .report_status(pb::DeviceStatusReport::default())
        .await
        .unwrap();
    let mut stream = device_api
        .watch_config(pb::WatchConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut stream).await.unwrap().device_name, "jordi-pc");
}

#[tokio::test]
async fn api_credentials_are_invitations_and_can_be_revoked() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let created = admin
        .create_api_credential(pb::CreateApiCredentialRequest {
            name: "auditor-2026".into(),
            role: pb::Role::Auditor as i32,
            ttl_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.credential.as_ref().unwrap().pending);
    assert_eq!(
        Invitation::decode(&created.invitation).unwrap().kind,
        pb::InvitationKind::Login
    );
    let login = ctl.login(&created.invitation).await.unwrap();
    assert_eq!(login.role, pb::Role::Auditor as i32);
    assert_eq!(login.name, "auditor-2026");

    let listed = admin
        .list_api_credentials(pb::ListApiCredentialsRequest {
            include_revoked: false,
        })
        .await
        .unwrap()
        .into_inner()
        .credentials;
    let auditor = listed.iter().find(|c| c.name == "auditor-2026").unwrap();
    assert!(!auditor.pending);
    assert_eq!(auditor.client_name, "tests");

    let mut as_auditor = ctl.admin_with(&login.credential).await;
    assert_eq!(
        as_auditor
            .list_users(pb::ListUsersRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    admin
        .revoke_api_credential(pb::RevokeApiCredentialRequest {
            id: "auditor-2026".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        as_auditor
            .list_users(pb::ListUsersRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let gone = admin
        .revoke_api_credential(pb::RevokeApiCredentialRequest {
            id: "auditor-2026".into(),
        })
        .await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn tokens_devices_and_groups_are_managed_by_name() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let first = invite(&mut admin, "núria", "núria-laptop").await;
    let dup = admin
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user: "núria".into(),
            device_name: "núria-laptop".into(),
            ttl_seconds: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        dup.code(),
        Code::AlreadyExists,
        "an open token reserves the device name"
    );

    let tokens = admin
        .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].device_name, "núria-laptop");
    admin
        .delete_enrollment_token(pb::DeleteEnrollmentTokenRequest {
            id: tokens[0].id.clone(),
        })
        .await
        .unwrap();
    let deleted = enroll(&mut ctl.enrollment().await, &first)
        .await
        .err()
        .unwrap();
    assert_eq!(deleted.code(), Code::Unauthenticated);

    let second = invite(&mut admin, "núria", "núria-laptop").await;
    enroll(&mut ctl.enrollment().await, &second).await.unwrap();
    let renamed = admin
        .rename_device(pb::RenameDeviceRequest {
            name: "núria-laptop".into(),
            new_name: "núria-old".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "núria-old");
    let by_id = admin
        .get_device(pb::GetDeviceRequest {
            name: renamed.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.name, "núria-old");
    assert_eq!(
        admin
            .get_device(pb::GetDeviceRequest {
                name: "núria-laptop".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    add_group(&mut admin, "files").await;
    join(&mut admin, "files", &["núria"]).await;
    let group = admin
        .get_group(pb::GetGroupRequest {
            name: "files".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(group.members, vec!["núria"]);
    admin
        .delete_group(pb::DeleteGroupRequest {
            name: "files".into(),
        })
        .await
        .unwrap();
    let user = admin
        .get_user(pb::GetUserRequest {
            name: "núria".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        user.groups.is_empty(),
        "deleting a group removes its memberships"
    );
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let mut ctl = TestController::start(&[]).await.unwrap();
    let mut admin_login = ctl.login(&ctl.admin_invitation).await.unwrap();
    let mut admin = ctl.admin_with(&admin_login.credential).await;
    add_group(&mut admin, "gis").await;
    let invitation = invite(&mut admin, "pau", "pau-laptop").await;
    let device = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .unwrap();
    let pending = invite(&mut admin, "pau", "pau-phone").await;
    let before = snapshot(&mut admin).await;

    assert!(ctl.stop().await.unwrap(), "SIGTERM is a clean exit");
    ctl.serve().await.unwrap();

    let mut admin = ctl.admin_with(&admin_login.credential).await;
    assert_eq!(snapshot(&mut admin).await, before);
    let mut stream = watch_config(&ctl, &device.credential).await;
    assert_eq!(
        next(&mut stream).await.unwrap().addresses,
        device.config.addresses
    );
    // An invitation issued before the restart still works after it, and
    // the next address is not one handed out before.
    let phone = enroll(&mut ctl.enrollment().await, &pending).await.unwrap();
    assert_eq!(phone.config.addresses[0], "10.77.0.3/32");

    // Nothing secret reached the log: not the credentials, not the tokens.
    let log = ctl.log();
    let secret_part = |s: &str| s.split_once('.').unwrap().1.to_owned();
    for secret in [
        &admin_login.credential,
        &device.credential,
        &phone.credential,
    ] {
        assert!(
            !log.contains(&secret_part(secret)),
            "a credential was logged"
        );
    }
    for invitation in [&invitation, &pending, &ctl.admin_invitation] {
        let token = Invitation::decode(invitation).unwrap().token;
        assert!(
            !log.contains(&secret_part(&token)) && !log.contains(invitation.as_str()),
            "a token was logged"
        );
    }
    admin_login.credential.clear();
}

#[tokio::test]
async fn a_revoked_address_returns_to_the_pool_after_its_quarantine() {
    let ctl = TestController::start(&[
        "--vpn-prefix",
        "10.98.0.0/30",
        "--no-ipv6",
        "--address-quarantine",
        "2s",
    ])
    .await
    .unwrap();
    let mut admin = ctl.admin().await;
    let first = enroll(
        &mut ctl.enrollment().await,
        &invite(&mut admin, "ona", "ona-pc").await,
    )
    .await
    .unwrap();
    assert_eq!(first.config.addresses, vec!["10.98.0.2/32"]);
    admin
        .revoke_device(pb::RevokeDeviceRequest {
            name: "ona-pc".into(),
        })
        .await
        .unwrap();
    let invitation = invite(&mut admin, "ona", "ona-new").await;
    let early = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .err()
        .unwrap();
    assert_eq!(early.code(), Code::ResourceExhausted, "still in quarantine");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let later = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .unwrap();
    assert_eq!(later.config.addresses, vec!["10.98.0.2/32"]);
}

#[tokio::test]
async fn a_wrong_certificate_pin_is_refused_with_a_clear_message() {
    let ctl = TestController::start(&[]).await.unwrap();
    let wrong = CertFingerprint([0x42; 32]);
    let error = connect(&ctl.api, wrong).await.unwrap_err();
    assert!(
        matches!(error, ConnectError::FingerprintMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&ctl.fingerprint.to_string()) && message.contains(&wrong.to_string()),
        "{message}"
    );
    assert!(message.contains("refusing to connect"), "{message}");
}

#[tokio::test]
async fn health_checks_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let ctl = TestController::start(&[]).await.unwrap();
    let mut health = HealthClient::new(ctl.channel().await);
    for service in ["", "porta.v1.Admin", "porta.v1.Enrollment"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(ctl.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        next(&mut responses).await.unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for name in [
        "porta.v1.Admin",
        "porta.v1.Audit",
        "porta.v1.Device",
        "porta.v1.Enrollment",
        "porta.v1.Gateway",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
}

#[tokio::test]
async fn an_exhausted_prefix_gives_a_clear_error_and_quarantine_holds() {
    // /29: .1 is the gateway, .2–.6 for devices.
    let ctl = TestController::start(&["--vpn-prefix", "10.99.0.0/29", "--no-ipv6"])
        .await
        .unwrap();
    let mut admin = ctl.admin().await;
    for i in 0..5 {
        let invitation = invite(&mut admin, "staff", &format!("pc-{i}")).await;
        let device = enroll(&mut ctl.enrollment().await, &invitation)
            .await
            .unwrap();
        assert_eq!(
            device.config.addresses,
            vec![format!("10.99.0.{}/32", i + 2)]
        );
    }
    let invitation = invite(&mut admin, "staff", "pc-5").await;
    let full = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .err()
        .unwrap();
    assert_eq!(full.code(), Code::ResourceExhausted);
    assert!(
        full.message().contains("10.99.0.0/29") && full.message().contains("no free address"),
        "{full:?}"
    );

    // Revoking frees no address before the quarantine ends (30 days).
    admin
        .revoke_device(pb::RevokeDeviceRequest {
            name: "pc-0".into(),
        })
        .await
        .unwrap();
    let still_full = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .err()
        .unwrap();
    assert_eq!(still_full.code(), Code::ResourceExhausted);
    // The failed attempts did not spend the invitation.
    let tokens = admin
        .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(tokens.len(), 1);
}

/// `porta-controller invite-admin --data DATA --json` (as `user`, if given);
/// the new invitation, or the failed output.
fn invite_admin(data: &std::path::Path, user: Option<&str>) -> Result<String, String> {
    let controller = binary("porta-controller");
    let mut command = match user {
        Some(user) => {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                &format!("--reuid={user}"),
                "--regid=nogroup",
                "--clear-groups",
                "--",
            ])
            .arg(&controller);
            c
        }
        None => std::process::Command::new(&controller),
    };
    let output = command
        .args(["invite-admin", "--name", "rescue", "--json", "--data"])
        .arg(data)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    Ok(report["admin_invitation"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_lost_admin_invitation_is_replaced_by_the_local_operator() {
    // The first invitation is never used: it was lost.
    let mut ctl = TestController::start(&[]).await.unwrap();

    // While serve runs (it holds the store): through the operator socket.
    let while_serving = invite_admin(&ctl.data(), None).unwrap();
    let credential = ctl.login(&while_serving).await.unwrap().credential;
    let mut admin = ctl.admin_with(&credential).await;
    add_user(&mut admin, "anna").await;

    // Someone else on the host cannot.
    let refused = invite_admin(&ctl.data(), Some("nobody")).unwrap_err();
    assert!(refused.contains("cannot read"), "{refused}");

    // While serve is stopped: directly in the store.
    assert!(ctl.stop().await.unwrap());
    let while_stopped = invite_admin(&ctl.data(), None).unwrap();
    ctl.serve().await.unwrap();
    let credential = ctl.login(&while_stopped).await.unwrap().credential;
    let mut audit = pb::audit_client::AuditClient::with_interceptor(
        ctl.channel().await,
        porta_proto::connect::Bearer::new(&credential),
    );
    let mut records = audit
        .export_admin_actions(pb::ExportRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut by_operator = 0;
    while let Some(page) = futures::StreamExt::next(&mut records).await {
        for record in page.unwrap().records {
            if record.action == "credential.create" && record.actor == "local operator" {
                assert_eq!(record.target, "rescue");
                by_operator += 1;
            }
        }
    }
    assert_eq!(by_operator, 2, "both invitations are on record");
}

/// The controller's `porta_controller_config_watchers` gauge, scraped from
/// its metrics listener over plain HTTP (what Prometheus does).
fn config_watchers(metrics: &str) -> f64 {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(metrics).unwrap();
    write!(
        http,
        "GET /metrics HTTP/1.0\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix("porta_controller_config_watchers "))
        .unwrap_or_else(|| panic!("no watcher gauge in:\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn config_watchers_are_counted_until_they_go_and_told_when_the_controller_stops() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut ctl = TestController::start(&[]).await.unwrap();
    assert!(ctl.stop().await.unwrap());
    ctl.serve_with(&["--metrics-listen", &metrics])
        .await
        .unwrap();
    let mut admin = ctl.admin().await;
    let invitation = invite(&mut admin, "anna", "anna-laptop").await;
    let device = enroll(&mut ctl.enrollment().await, &invitation)
        .await
        .unwrap();
    let watch = || async {
        let mut stream = watch_config(&ctl, &device.credential).await;
        next(&mut stream).await.unwrap();
        stream
    };
    let (leaving, mut staying) = (watch().await, watch().await);
    assert_eq!(config_watchers(&metrics), 2.0);

    // A client that goes away (its laptop sleeps, its app quits) is
    // forgotten: nothing keeps its stream alive on the controller.
    drop(leaving);
    let since = std::time::Instant::now();
    while config_watchers(&metrics) != 1.0 {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "a watcher that left is still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Stopping the controller ends the remaining stream with a status the
    // client retries on, not a silent hang.
    assert!(ctl.stop().await.unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(10), staying.next())
        .await
        .expect("the stream ends when the controller stops");
    match ended {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

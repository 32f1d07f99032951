//! Bad input gets a clear error and changes nothing.

use porta_proto::pb;
use porta_proto::{Invitation, PublicKey};
use porta_tests::*;
use std::time::Duration;
use tonic::Code;

fn assert_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("must fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "{:?} lacks {needle:?}",
        status.message()
    );
}

#[tokio::test]
async fn bad_requests_are_refused_clearly_and_change_nothing() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    add_group(&mut admin, "gis").await;
    let invitation = invite(&mut admin, "anna", "anna-laptop").await;
    let token = Invitation::decode(&invitation).unwrap().token;
    let before = snapshot(&mut admin).await;
    let mut enrollment = ctl.enrollment().await;
    let enroll_with = |key: &str| pb::EnrollRequest {
        token: token.clone(),
        public_key: key.into(),
        hostname: "laptop".into(),
        os: "linux".into(),
        attempt: String::new(),
    };

    // Malformed WireGuard keys.
    for key in [
        "",
        "short",
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=",
        &"A".repeat(44),
    ] {
        assert_code(
            enrollment.enroll(enroll_with(key)).await,
            Code::InvalidArgument,
            "public_key",
        );
    }
    assert_code(
        enrollment
            .enroll(enroll_with(&PublicKey([0; 32]).to_base64()))
            .await,
        Code::InvalidArgument,
        "degenerate",
    );
    // Low-order and non-canonical Curve25519 points: refused before the
    // token is spent (the snapshot below proves nothing changed).
    for (hex, said) in [
        (
            "0100000000000000000000000000000000000000000000000000000000000000",
            "degenerate",
        ),
        (
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "degenerate",
        ),
        (
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "degenerate",
        ),
        (
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "degenerate",
        ),
        (
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "canonical",
        ),
        (
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "canonical",
        ),
        (
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "canonical",
        ),
    ] {
        let bytes: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_code(
            enrollment.enroll(enroll_with(&key)).await,
            Code::InvalidArgument,
            said,
        );
    }
    // The gateway's own key.
    let gateway_key = admin
        .list_gateways(pb::ListGatewaysRequest {})
        .await
        .unwrap()
        .into_inner()
        .gateways[0]
        .public_key
        .clone();
    assert_code(
        enrollment.enroll(enroll_with(&gateway_key)).await,
        Code::AlreadyExists,
        "gateway",
    );
    // Garbage and unknown tokens.
    for bad in ["", "nonsense", "0123456789abcdef.unknownsecret"] {
        let request = pb::EnrollRequest {
            token: bad.into(),
            ..enroll_with(&PublicKey([9; 32]).to_base64())
        };
        assert_code(
            enrollment.enroll(request).await,
            Code::Unauthenticated,
            "not valid",
        );
    }
    // The right token id with a wrong secret says nothing about the token.
    let wrong_secret = format!("{}.{}", &token[..16], "b".repeat(52));
    let request = pb::EnrollRequest {
        token: wrong_secret,
        ..enroll_with(&PublicKey([9; 32]).to_base64())
    };
    assert_code(
        enrollment.enroll(request).await,
        Code::Unauthenticated,
        "not valid",
    );
    // A login attempt with a device token.
    let login = enrollment
        .login(pb::LoginRequest {
            token: token.clone(),
            client_name: String::new(),
        })
        .await;
    assert_code(login, Code::InvalidArgument, "porta enroll");
    // A huge value comes back as a short prefix, in a reply that arrives
    // (a whole 60,000-character name would break HTTP/2's header limit).
    let huge_name = "x".repeat(60_000);
    for result in [
        admin
            .create_user(pb::CreateUserRequest {
                name: format!("!{huge_name}"),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        admin
            .get_device(pb::GetDeviceRequest {
                name: huge_name.clone(),
            })
            .await
            .map(|_| ()),
    ] {
        let status = result.expect_err("refused");
        assert!(
            matches!(status.code(), Code::InvalidArgument | Code::NotFound),
            "{status:?}"
        );
        assert!(
            status.message().len() < 300 && status.message().contains("characters"),
            "{}",
            &status.message()[..status.message().len().min(300)]
        );
    }
    // Oversized messages are cut off before any handler runs.
    let huge = pb::EnrollRequest {
        hostname: "h".repeat(200_000),
        ..enroll_with(&PublicKey([9; 32]).to_base64())
    };
    let status = enrollment.enroll(huge).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    let long_host = pb::EnrollRequest {
        hostname: "h".repeat(300),
        ..enroll_with(&PublicKey([9; 32]).to_base64())
    };
    assert_code(
        enrollment.enroll(long_host).await,
        Code::InvalidArgument,
        "hostname",
    );

    // Invalid names, CIDRs, ports and unknown things through Admin.
    for name in ["", "with space", "-dash", "semi;colon"] {
        let r = admin
            .create_user(pb::CreateUserRequest {
                name: name.into(),
                ..Default::default()
            })
            .await;
        assert_code(r, Code::InvalidArgument, "not a valid name");
    }
    let r = admin
        .create_user(pb::CreateUserRequest {
            name: "eve".into(),
            groups: vec!["nope".into()],
            ..Default::default()
        })
        .await;
    assert_code(r, Code::NotFound, "group \"nope\"");
    for (cidr, needle) in [
        ("10.1.20.0/33", "CIDR"),
        ("10.1.20", "CIDR"),
        ("banana", "CIDR"),
    ] {
        let r = admin
            .allow_destination(pb::AllowDestinationRequest {
                group: "gis".into(),
                destination: Some(pb::Destination {
                    cidr: cidr.into(),
                    protocol: 0,
                    ports: vec![],
                }),
            })
            .await;
        assert_code(r, Code::InvalidArgument, needle);
    }
    let bad_ports = pb::Destination {
        cidr: "10.1.0.0/16".into(),
        protocol: pb::Protocol::Tcp as i32,
        ports: vec![pb::PortRange {
            first: 70000,
            last: 70000,
        }],
    };
    let r = admin
        .allow_destination(pb::AllowDestinationRequest {
            group: "gis".into(),
            destination: Some(bad_ports),
        })
        .await;
    assert_code(r, Code::InvalidArgument, "port range");
    let r = admin
        .allow_destination(pb::AllowDestinationRequest {
            group: "nope".into(),
            destination: Some(pb::Destination {
                cidr: "10.0.0.0/8".into(),
                protocol: 0,
                ports: vec![],
            }),
        })
        .await;
    assert_code(r, Code::NotFound, "nope");
    assert_code(
        admin
            .get_user(pb::GetUserRequest {
                name: "nobody".into(),
            })
            .await,
        Code::NotFound,
        "nobody",
    );
    assert_code(
        admin
            .revoke_device(pb::RevokeDeviceRequest {
                name: "ghost".into(),
            })
            .await,
        Code::NotFound,
        "ghost",
    );
    let r = admin
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user: "nobody".into(),
            device_name: "x".into(),
            ttl_seconds: 0,
            ..Default::default()
        })
        .await;
    assert_code(r, Code::NotFound, "nobody");
    // Membership changes are all or nothing.
    let r = admin
        .add_group_members(pb::GroupMembersRequest {
            group: "gis".into(),
            users: vec!["anna".into(), "nobody".into()],
        })
        .await;
    assert_code(r, Code::NotFound, "nobody");
    let r = admin
        .create_api_credential(pb::CreateApiCredentialRequest {
            name: "x".into(),
            role: pb::Role::Device as i32,
            ttl_seconds: 0,
        })
        .await;
    assert_code(r, Code::InvalidArgument, "role");

    assert_eq!(
        snapshot(&mut admin).await,
        before,
        "bad input changed the store"
    );
    // …and the untouched invitation still works.
    enroll(&mut enrollment, &invitation).await.unwrap();
}

#[tokio::test]
async fn reused_and_expired_tokens_are_refused() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    add_user(&mut admin, "marta").await;
    let short = admin
        .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
            user: "marta".into(),
            device_name: "marta-pc".into(),
            ttl_seconds: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let used = invite(&mut admin, "marta", "marta-laptop").await;
    enroll(&mut ctl.enrollment().await, &used).await.unwrap();
    let reused = enroll(&mut ctl.enrollment().await, &used)
        .await
        .err()
        .unwrap();
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert!(reused.message().contains("already used"), "{reused:?}");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = snapshot(&mut admin).await;
    let expired = enroll(&mut ctl.enrollment().await, &short.invitation)
        .await
        .err()
        .unwrap();
    assert_eq!(expired.code(), Code::FailedPrecondition);
    assert!(expired.message().contains("expired"), "{expired:?}");
    assert_eq!(snapshot(&mut admin).await, before);
    // An expired token no longer holds its device name.
    enroll(
        &mut ctl.enrollment().await,
        &invite(&mut admin, "marta", "marta-pc").await,
    )
    .await
    .unwrap();
}

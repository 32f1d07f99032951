//! The controller's Gateway API used as a remote gateway uses it —
//! register, report connection events — for tests whose subject is what
//! the controller does with those events (attacks on the log, the SIEM
//! feed), without a data plane.

use crate::{TestController, enroll};
use porta_proto::connect::Bearer;
use porta_proto::invitation::Invitation;
use porta_proto::pb;
use porta_proto::pb::gateway_client::GatewayClient;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A registered remote gateway named `name`, as its own Gateway client.
pub async fn gateway_login(
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
pub async fn enroll_on(
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
            email: false,
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

pub fn event(id: &str, kind: &str, at: u64, device_id: &str) -> pb::ConnectionEvent {
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

//! Concurrency and crash safety of enrollment.

use futures::future::join_all;
use porta_proto::PublicKey;
use porta_proto::pb;
use porta_tests::*;
use porta_tunnel::keys::PrivateKey;
use std::collections::{HashMap, HashSet};
use tonic::Code;

fn request(token: &str, key: PublicKey) -> pb::EnrollRequest {
    pb::EnrollRequest {
        token: token.into(),
        public_key: key.to_base64(),
        hostname: "pc".into(),
        os: "linux".into(),
        attempt: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_enrollments_get_distinct_addresses_and_each_token_works_once() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    let tokens = invite_many(&mut admin, "staff", 1000).await;

    // Every token is presented twice at once, with two different keys.
    let channels = join_all((0..8).map(|_| ctl.channel())).await;
    let attempts = tokens.iter().enumerate().flat_map(|(i, token)| {
        let channels = &channels;
        (0..2).map(move |copy| {
            let mut client =
                pb::enrollment_client::EnrollmentClient::new(channels[(i * 2 + copy) % 8].clone());
            let key = PrivateKey::generate().public_key();
            async move { (i, client.enroll(request(token, key)).await) }
        })
    });
    let results = join_all(attempts).await;

    let mut wins: HashMap<usize, usize> = HashMap::new();
    let mut addresses = HashSet::new();
    for (i, result) in results {
        match result {
            Ok(response) => {
                *wins.entry(i).or_default() += 1;
                let config = response.into_inner().config.unwrap();
                assert!(
                    addresses.insert(config.addresses[0].clone()),
                    "address {} given twice",
                    config.addresses[0]
                );
            }
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(status.message().contains("already used"), "{status:?}");
            }
        }
    }
    assert_eq!(wins.len(), 1000, "every token was redeemed");
    assert!(
        wins.values().all(|&n| n == 1),
        "no token was redeemed twice"
    );
    assert_eq!(addresses.len(), 1000);
    let devices = admin
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(devices.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_acknowledged_enrollment_and_leaves_none_half_done() {
    let mut ctl = TestController::start(&[]).await.unwrap();
    let admin_credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let mut admin = ctl.admin_with(&admin_credential).await;
    let tokens = invite_many(&mut admin, "staff", 1000).await;
    let keys: Vec<PublicKey> = tokens
        .iter()
        .map(|_| PrivateKey::generate().public_key())
        .collect();

    // Fire every enrollment; kill -9 the controller once some have been
    // acknowledged.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let channel = ctl.channel().await;
    let burst = tokio::spawn({
        let (tokens, keys) = (tokens.clone(), keys.clone());
        async move {
            join_all(
                tokens
                    .iter()
                    .zip(&keys)
                    .enumerate()
                    .map(|(i, (token, key))| {
                        let mut client =
                            pb::enrollment_client::EnrollmentClient::new(channel.clone());
                        let acked_tx = acked_tx.clone();
                        async move {
                            if let Ok(response) = client.enroll(request(token, *key)).await {
                                let _ = acked_tx.send((i, response.into_inner()));
                            }
                        }
                    }),
            )
            .await
        }
    });
    let mut acked = Vec::new();
    while acked.len() < 60 {
        let Some(ack) = acked_rx.recv().await else {
            panic!("the burst ended early; server log:\n{}", ctl.log())
        };
        acked.push(ack);
    }
    ctl.kill9().await.unwrap();
    burst.await.unwrap();
    while let Ok(more) = acked_rx.try_recv() {
        acked.push(more);
    }
    assert!(
        acked.len() < tokens.len(),
        "the kill landed mid-burst ({} of {} acked)",
        acked.len(),
        tokens.len()
    );

    ctl.serve().await.unwrap();
    let mut admin = ctl.admin_with(&admin_credential).await;
    let devices = admin
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .devices;
    let by_key: HashMap<&str, &pb::DeviceInfo> =
        devices.iter().map(|d| (d.public_key.as_str(), d)).collect();

    // Every acknowledged enrollment is there, as acknowledged, and works.
    let acked_ids: HashSet<usize> = acked.iter().map(|(i, _)| *i).collect();
    for (i, response) in &acked {
        let device = by_key
            .get(keys[*i].to_base64().as_str())
            .expect("acknowledged device survived");
        let config = response.config.as_ref().unwrap();
        assert_eq!(format!("{}/32", device.addresses[0]), config.addresses[0]);
        ctl.device_with(&response.credential)
            .await
            .report_status(pb::DeviceStatusReport::default())
            .await
            .expect("acknowledged credential works after the crash");
    }
    // Every other enrollment either happened completely (token spent,
    // device present) or not at all (token still redeemable).
    let mut enrollment = ctl.enrollment().await;
    for (i, token) in tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| !acked_ids.contains(i))
    {
        match enrollment.enroll(request(token, keys[i])).await {
            Ok(_) => assert!(
                !by_key.contains_key(keys[i].to_base64().as_str()),
                "token {i} spent twice"
            ),
            Err(status) => {
                // The key is already on record: the enrollment committed but
                // its reply was lost with the process.
                assert!(
                    matches!(
                        status.code(),
                        Code::FailedPrecondition | Code::AlreadyExists
                    ),
                    "token {i}: {status:?}"
                );
                assert!(
                    by_key.contains_key(keys[i].to_base64().as_str()),
                    "token {i} spent but no device"
                );
            }
        }
    }
    let devices = admin
        .list_devices(pb::ListDevicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(
        devices.len(),
        tokens.len(),
        "each token became exactly one device"
    );
    let addresses: HashSet<_> = devices.iter().map(|d| d.addresses[0].clone()).collect();
    assert_eq!(
        addresses.len(),
        tokens.len(),
        "no address was handed out twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tokens_for_one_device_name_let_exactly_one_through() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;
    add_user(&mut admin, "anna").await;
    let results = join_all((0..50).map(|_| {
        let mut admin = admin.clone();
        async move {
            admin
                .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
                    user: "anna".into(),
                    device_name: "anna-laptop".into(),
                    ttl_seconds: 0,
                    ..Default::default()
                })
                .await
        }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    }
}

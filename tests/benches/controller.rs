//! Controller benchmark: enrollment throughput, and the delay from
//! `RevokeDevice` to the revoked device's config stream ending, with 1,000
//! devices watching. Figures, not pass/fail. Run with `bench/controller.sh`.
//!
//! Reference printed alongside: the cost of one durable sled write on this
//! disk (insert + flush), the floor under any acknowledged change.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::durable_sled_write;
use futures::StreamExt;
use futures::future::join_all;
use porta_proto::pb;
use porta_tests::*;
use porta_tunnel::keys::PrivateKey;
use std::time::{Duration, Instant};

const DEVICES: usize = 1000;
const REVOCATIONS: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let ctl = TestController::start(&[]).await.unwrap();
    let mut admin = ctl.admin().await;

    let fsync = durable_sled_write();

    let started = Instant::now();
    let tokens = invite_many(&mut admin, "staff", DEVICES).await;
    let token_rate = DEVICES as f64 / started.elapsed().as_secs_f64();

    let enroll = |token: String, channel| async move {
        let mut client = pb::enrollment_client::EnrollmentClient::new(channel);
        let key = PrivateKey::generate().public_key().to_base64();
        let request = pb::EnrollRequest {
            token,
            public_key: key,
            hostname: "pc".into(),
            os: "linux".into(),
            ..Default::default()
        };
        client.enroll(request).await.unwrap().into_inner()
    };
    let channel = ctl.channel().await;
    // Sequential: one staff member at a time.
    let sequential = 100;
    let started = Instant::now();
    let mut devices = Vec::new();
    for token in &tokens[..sequential] {
        devices.push(enroll(token.clone(), channel.clone()).await);
    }
    let sequential_rate = sequential as f64 / started.elapsed().as_secs_f64();
    // Concurrent: a morning's bulk enrollment.
    let started = Instant::now();
    devices.extend(
        join_all(
            tokens[sequential..]
                .iter()
                .map(|t| enroll(t.clone(), channel.clone())),
        )
        .await,
    );
    let concurrent_rate = (DEVICES - sequential) as f64 / started.elapsed().as_secs_f64();

    // Every device watches its config.
    let channels = join_all((0..8).map(|_| ctl.channel())).await;
    let mut streams = join_all(devices.iter().enumerate().map(|(i, d)| {
        let mut client = pb::device_client::DeviceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            porta_proto::connect::Bearer::new(&d.credential),
        );
        async move {
            let mut stream = client
                .watch_config(pb::WatchConfigRequest {})
                .await
                .unwrap()
                .into_inner();
            stream.next().await.unwrap().unwrap();
            stream
        }
    }))
    .await;

    let mut delays = Vec::with_capacity(REVOCATIONS);
    for (device, stream) in devices.iter().zip(streams.iter_mut()).take(REVOCATIONS) {
        let name = device.config.as_ref().unwrap().device_name.clone();
        let started = Instant::now();
        admin
            .revoke_device(pb::RevokeDeviceRequest { name })
            .await
            .unwrap();
        let end = stream.next().await.unwrap();
        delays.push(started.elapsed());
        assert_eq!(end.unwrap_err().code(), tonic::Code::PermissionDenied);
    }
    delays.sort();

    println!("porta controller benchmark ({DEVICES} devices, release build, one box)");
    println!(
        "  reference: durable sled write (insert + flush) on this disk  {}  → ≤ {:.0} sequential writes/s",
        ms(fsync),
        1.0 / fsync.as_secs_f64()
    );
    println!("  enrollment tokens created (concurrent)                      {token_rate:.0} /s");
    println!(
        "  enrollments, one at a time                                  {sequential_rate:.0} /s"
    );
    println!(
        "  enrollments, {} concurrent                                 {concurrent_rate:.0} /s",
        DEVICES - sequential
    );
    println!(
        "  revoke → device stream ended, {DEVICES} watching ({REVOCATIONS} revocations)  p50 {}  p99 {}  max {}",
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(*delays.last().unwrap())
    );
}

//! A city's fleet: 50,000 devices (5,000 staff, ten devices each) on
//! three gateways — the controller's embedded one and two remote
//! `porta-gateway` processes — with 2,000 devices watching their config.
//! Measures enrollment through the API, revoke → confirmed by all three
//! gateways, the controller's memory, and its restart to serving.
//! Figures, not pass/fail. Run with `sudo bench/fleet.sh` (root: the
//! gateways create TUN devices; everything is on 127.0.0.1).
//!
//! Reference printed alongside: one durable sled write on this disk (the
//! floor under any acknowledged change).

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::durable_sled_write;
use futures::StreamExt;
use futures::stream;
use porta_proto::connect::Bearer;
use porta_proto::pb;
use porta_tests::*;
use porta_tunnel::keys::PrivateKey;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Staff (ten devices each); `PORTA_FLEET_USERS` overrides it for a
/// smaller run (profiling).
const USERS: usize = 5_000;
const DEVICES_PER_USER: usize = 10;
const WATCHERS: usize = 2_000;
const REVOCATIONS: usize = 200;
/// Requests in flight at once while enrolling.
const CONCURRENCY: usize = 64;
const REMOTE: [&str; 2] = ["annex", "branch"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn serve(ctl: &TestController) -> Child {
    Command::new(binary("porta-controller"))
        .arg("serve")
        .arg("--data")
        .arg(ctl.data())
        .args([
            "--listen",
            &ctl.api,
            "--gateway-interface",
            "pfleet0",
            "--log-level",
            "warn",
        ])
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn until_serving(ctl: &TestController) {
    for _ in 0..2_000 {
        if porta_proto::connect::connect(&ctl.api, ctl.fingerprint)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the controller did not come up");
}

#[tokio::main]
async fn main() {
    let fsync = durable_sled_write();

    // The controller, with its embedded gateway.
    let mut ctl = TestController::start(&[]).await.unwrap();
    ctl.stop().await.unwrap();
    let mut controller = serve(&ctl);
    until_serving(&ctl).await;
    let credential = ctl.login(&ctl.admin_invitation).await.unwrap().credential;
    let mut admin = ctl.admin_with(&credential).await;

    // Two remote gateways, real porta-gateway processes.
    let mut gateways = Vec::new();
    for (i, name) in REMOTE.iter().enumerate() {
        let created = admin
            .create_gateway(pb::CreateGatewayRequest {
                name: (*name).into(),
                endpoint: format!("127.0.0.1:{}", 51_921 + i),
                ttl_seconds: 0,
            })
            .await
            .unwrap()
            .into_inner();
        gateways.push(
            Command::new(binary("porta-gateway"))
                .arg("--data")
                .arg(ctl.dir.path().join(name))
                .args([
                    "--interface",
                    &format!("pfleet{}", i + 1),
                    "--controller",
                    &created.invitation,
                    "--log-level",
                    "warn",
                ])
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        );
    }
    loop {
        let listed = admin
            .list_gateways(pb::ListGatewaysRequest {})
            .await
            .unwrap()
            .into_inner()
            .gateways;
        if listed
            .iter()
            .filter(|g| !g.public_key.is_empty() && !g.embedded)
            .count()
            == REMOTE.len()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 5,000 staff.
    let users: usize = std::env::var("PORTA_FLEET_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(USERS);
    let started = Instant::now();
    let channel = ctl.channel().await;
    stream::iter(0..users)
        .map(|u| {
            let mut admin = pb::admin_client::AdminClient::with_interceptor(
                channel.clone(),
                Bearer::new(&credential),
            );
            async move {
                admin
                    .create_user(pb::CreateUserRequest {
                        name: format!("staff{u}"),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let users_took = started.elapsed();

    // 50,000 devices: a token each, redeemed with a fresh key; a third on
    // each gateway.
    let devices = users * DEVICES_PER_USER;
    let started = Instant::now();
    let enrolled: Vec<pb::EnrollResponse> = stream::iter(0..devices)
        .map(|d| {
            let mut admin = pb::admin_client::AdminClient::with_interceptor(
                channel.clone(),
                Bearer::new(&credential),
            );
            let mut enrollment = pb::enrollment_client::EnrollmentClient::new(channel.clone());
            async move {
                let gateway = match d % 3 {
                    0 => String::new(),
                    g => REMOTE[g - 1].to_owned(),
                };
                let invitation = admin
                    .create_enrollment_token(pb::CreateEnrollmentTokenRequest {
                        user: format!("staff{}", d % users),
                        device_name: format!("pc{d}"),
                        ttl_seconds: 0,
                        gateway,
                        email: false,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .invitation;
                let token = porta_proto::Invitation::decode(&invitation).unwrap().token;
                enrollment
                    .enroll(pb::EnrollRequest {
                        token,
                        public_key: PrivateKey::generate().public_key().to_base64(),
                        hostname: "pc".into(),
                        os: "linux".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let enroll_took = started.elapsed();
    let (rss_enrolled, _) = rss_mib(controller.id().unwrap());

    // 2,000 of them watch their config.
    let channels = futures::future::join_all((0..8).map(|_| ctl.channel())).await;
    let mut watchers = Vec::with_capacity(WATCHERS);
    for (i, device) in enrolled.iter().take(WATCHERS).enumerate() {
        let mut client = pb::device_client::DeviceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            Bearer::new(&device.credential),
        );
        let mut stream = client
            .watch_config(pb::WatchConfigRequest {})
            .await
            .unwrap()
            .into_inner();
        stream.next().await.unwrap().unwrap();
        watchers.push(stream);
    }

    // Revocations of devices that are not watching, one after another;
    // each returns once all three gateways confirmed.
    let mut delays = Vec::with_capacity(REVOCATIONS);
    for device in enrolled.iter().skip(WATCHERS).take(REVOCATIONS + 5) {
        let name = device.config.as_ref().unwrap().device_name.clone();
        let started = Instant::now();
        let revoked = admin
            .revoke_device(pb::RevokeDeviceRequest { name })
            .await
            .unwrap()
            .into_inner();
        let took = started.elapsed();
        assert!(revoked.pending_gateways.is_empty(), "{revoked:?}");
        assert_eq!(revoked.confirmed_gateways.len(), 3, "{revoked:?}");
        delays.push(took);
    }
    // The first few warm caches up.
    let mut delays = delays.split_off(5);
    delays.sort();
    let (rss, peak) = rss_mib(controller.id().unwrap());

    // Restart: stop, start, until the API answers.
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &controller.id().unwrap().to_string()])
        .status()
        .await
        .unwrap();
    controller.wait().await.unwrap();
    let stop_took = started.elapsed();
    let started = Instant::now();
    let mut controller = serve(&ctl);
    until_serving(&ctl).await;
    let restart_took = started.elapsed();
    let (rss_restarted, _) = rss_mib(controller.id().unwrap());
    drop(watchers);
    let _ = controller.kill().await;
    for mut gateway in gateways {
        let _ = gateway.kill().await;
    }

    println!(
        "porta fleet benchmark: {devices} devices ({users} staff), 3 gateways, {WATCHERS} watching; release build, one box"
    );
    println!(
        "  reference: durable sled write (insert + flush) on this disk   {}  → ≤ {:.0} sequential writes/s",
        ms(fsync),
        1.0 / fsync.as_secs_f64()
    );
    println!(
        "  staff created through the API ({CONCURRENCY} in flight)           {:.0} /s",
        users as f64 / users_took.as_secs_f64()
    );
    println!(
        "  devices enrolled (token + redeem, {CONCURRENCY} in flight)         {:.0} /s ({:.1} s)",
        devices as f64 / enroll_took.as_secs_f64(),
        enroll_took.as_secs_f64()
    );
    println!(
        "  revoke → confirmed by 3 gateways ({REVOCATIONS} revocations)     p50 {}  p99 {}  max {}",
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(*delays.last().unwrap())
    );
    println!(
        "  controller RSS: after enrolling {rss_enrolled:.0} MiB, after revoking {rss:.0} MiB (peak {peak:.0} MiB), after a restart {rss_restarted:.0} MiB"
    );
    println!(
        "  stop (SIGTERM → exit) {}   start → API serving {}",
        ms(stop_took),
        ms(restart_took)
    );
}

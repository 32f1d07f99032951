//! Fills a controller's store with synthetic connection records for
//! bench/logs.sh: `logs <store dir> <count>` adds one device and `count`
//! connection events through the same path gateways use
//! (`porta_controller::logs::record_events`, batches of 2,000), and prints
//! the append rate. The controller must not be running.

#![allow(missing_docs, clippy::unwrap_used)]

use porta_controller::logs::record_events;
use porta_controller::store::records::{DeviceRecord, GatewayRecord};
use porta_controller::store::{Store, T};
use porta_gateway::event::{EndReason, EventKind, GatewayEvent};
use std::time::Instant;

const BATCH: u64 = 2_000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let dir = args.next().expect("usage: logs <store dir> <count>");
    let count: u64 = args.next().map(|c| c.parse().unwrap()).unwrap_or(1_000_000);
    let store = Store::open(std::path::Path::new(&dir)).unwrap();
    let device = DeviceRecord::new(
        "bench-device",
        "núria-laptop",
        "núria",
        porta_proto::PublicKey([1; 32]),
        "10.77.0.2".parse().unwrap(),
        "bench",
        1,
    );
    store
        .write(|t| t.put(T::Devices, device.id.as_bytes(), &device))
        .await
        .unwrap();
    let gateway = GatewayRecord::new("embedded", "192.0.2.1:51820", true, None);
    let kinds = EventKind::ALL;
    let started = Instant::now();
    let mut next = 0u64;
    while next < count {
        let events: Vec<GatewayEvent> = (next..(next + BATCH).min(count))
            .map(|i| GatewayEvent {
                event_id: format!("bench-{i:016x}"),
                kind: kinds[(i % 3) as usize],
                at: 1_790_000_000 + i,
                device_id: "bench-device".into(),
                public_address: format!("192.0.2.{}:{}", i % 250 + 1, 40_000 + i % 20_000),
                previous_public_address: if i % 3 == 1 {
                    "198.51.100.7:51000".into()
                } else {
                    String::new()
                },
                rx_bytes: i * 1_300,
                tx_bytes: i * 4_100,
                reason: (i % 3 == 2).then_some(EndReason::Idle),
                session_start: 0,
            })
            .collect();
        record_events(&store, &gateway, &events, 1_790_000_000 + count)
            .await
            .unwrap();
        next += BATCH;
    }
    store.flush().await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "appended {count} connection records in {seconds:.1} s ({:.0} records/s, hash-chained, durable per batch of {BATCH})",
        count as f64 / seconds
    );
}

//! Gateway node with 10,000 peers: memory, time to configure, and the cost
//! of removing one peer (what a revocation does to the data plane). Writes
//! the same peers as a `wg setconf` file (path in argv[1], if given) so
//! bench/gateway.sh can load them into wireguard-go as the reference.

#![allow(missing_docs, clippy::unwrap_used)]

use porta_tunnel::filter::{Filter, Rule, protocol};
use porta_tunnel::keys::PrivateKey;
use porta_tunnel::{Node, PeerConfig};
use std::io::Write;
use std::time::{Duration, Instant};

const PEERS: u32 = 10_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let wg_conf = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    // Keys first, so their memory is not counted as the node's.
    let keys: Vec<_> = (0..PEERS)
        .map(|_| PrivateKey::generate().public_key())
        .collect();
    let gateway_key = PrivateKey::generate();
    let before = rss_kib();
    let started = Instant::now();
    let mut node = Node::new(&gateway_key, Duration::from_secs(180));
    let mut ids = Vec::with_capacity(PEERS as usize);
    for (i, key) in keys.iter().enumerate() {
        let address =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 77, 0, 2)) + i as u32);
        ids.push(node.upsert_peer(PeerConfig {
            public_key: *key,
            allowed_ips: vec![ipnet::IpNet::from(std::net::IpAddr::from(address))],
            endpoint: None,
            persistent_keepalive: None,
            filter: Some(Filter::new(vec![
                Rule::any("10.1.0.53/32".parse().unwrap()),
                Rule {
                    net: "10.1.20.0/24".parse().unwrap(),
                    protocol: Some(protocol::TCP),
                    ports: vec![(443, 443)],
                },
                Rule {
                    net: "10.1.40.0/24".parse().unwrap(),
                    protocol: Some(protocol::TCP),
                    ports: vec![(3389, 3389)],
                },
            ])),
        }));
    }
    let configure = started.elapsed();
    let after = rss_kib();

    let mut removals: Vec<Duration> = ids
        .iter()
        .take(1000)
        .map(|&id| {
            let started = Instant::now();
            assert!(node.remove_peer(id));
            started.elapsed()
        })
        .collect();
    removals.sort();

    println!("gateway node, {PEERS} peers with 3-rule filters (release build)");
    println!(
        "  memory: {:.1} MiB for the peers ({:.1} KiB each)",
        (after - before) as f64 / 1024.0,
        (after - before) as f64 / PEERS as f64
    );
    println!(
        "  configuring all peers: {:.0} ms",
        configure.as_secs_f64() * 1000.0
    );
    println!(
        "  removing one peer (revocation in the node): p50 {:.1} µs, p99 {:.1} µs",
        removals[500].as_secs_f64() * 1e6,
        removals[990].as_secs_f64() * 1e6
    );

    if let Some(path) = wg_conf {
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            "[Interface]\nPrivateKey = {}\nListenPort = 51830\n",
            gateway_key.to_base64()
        )
        .unwrap();
        for (i, key) in keys.iter().enumerate() {
            let address = std::net::Ipv4Addr::from(
                u32::from(std::net::Ipv4Addr::new(10, 77, 0, 2)) + i as u32,
            );
            writeln!(
                file,
                "[Peer]\nPublicKey = {}\nAllowedIPs = {address}/32\n",
                key.to_base64()
            )
            .unwrap();
        }
    }
}

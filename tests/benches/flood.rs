//! Handshake flood generator for `bench/flood.sh` (not a test).
//!
//! Sends WireGuard handshake initiations with a valid MAC1 for the
//! gateway's public key — made by a real node for a random, unknown key, so
//! a gateway must spend a Diffie-Hellman on each one it does not answer
//! with a cookie — at a paced rate for some seconds, from one source, and
//! prints what it achieved. A handful of distinct initiations are replayed
//! in turn (each one costs the gateway the same work).
//!
//! Usage: flood <gateway ip:port> <gateway public key, base64> <packets/s> <seconds> [source addresses…]
//! (with source addresses, the packets are spread over sockets bound to them
//! in turn: a flood from many addresses)

use porta_tunnel::keys::{PrivateKey, PublicKey};
use porta_tunnel::node::{Node, PeerConfig, Sink};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

struct Capture(Vec<Vec<u8>>);

impl Sink for Capture {
    fn send_datagram(&mut self, _to: SocketAddr, datagram: &[u8]) {
        self.0.push(datagram.to_vec());
    }
    fn deliver_packet(&mut self, _packet: &[u8]) {}
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let usage = "usage: flood <gateway ip:port> <gateway public key> <packets/s> <seconds>";
    let target: SocketAddr = args.next().expect(usage).parse().expect("ip:port");
    let gateway: PublicKey = args.next().expect(usage).parse().expect("public key");
    let rate: u64 = args.next().expect(usage).parse().expect("packets/s");
    let seconds: u64 = args.next().expect(usage).parse().expect("seconds");

    let initiations: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let mut node = Node::new(&PrivateKey::generate(), Duration::from_secs(180));
            node.upsert_peer(PeerConfig {
                public_key: gateway,
                allowed_ips: vec![],
                endpoint: Some(target),
                persistent_keepalive: None,
                filter: None,
            });
            let mut capture = Capture(Vec::new());
            node.initiate_handshakes(&mut capture);
            capture.0.pop().expect("an initiation")
        })
        .collect();

    let sources: Vec<String> = args.collect();
    let sockets: Vec<UdpSocket> = if sources.is_empty() {
        vec![UdpSocket::bind("0.0.0.0:0").expect("bind")]
    } else {
        sources
            .iter()
            .map(|ip| {
                UdpSocket::bind((ip.parse::<std::net::IpAddr>().expect("source ip"), 0))
                    .expect("bind a source address")
            })
            .collect()
    };
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut sent: u64 = 0;
    while Instant::now() < end {
        // Paced in 1 ms slices.
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let packet = &initiations[(sent % initiations.len() as u64) as usize];
            let socket = &sockets[(sent % sockets.len() as u64) as usize];
            if socket.send_to(packet, target).is_err() {
                break;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("{:.0}", sent as f64 / elapsed);
}

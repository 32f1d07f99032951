//! The sans-IO node, tested by wiring nodes together in memory: real
//! boringtun handshakes and encryption, no sockets.

#![allow(missing_docs, clippy::unwrap_used)]

use etherparse::PacketBuilder;
use porta_tunnel::filter::{Filter, Rule, protocol};
use porta_tunnel::keys::{PrivateKey, PublicKey};
use porta_tunnel::node::Drop;
use porta_tunnel::{Event, Node, PeerConfig, Sink};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A little network of nodes that exchange datagrams through a queue.
#[derive(Default)]
struct Lab {
    nodes: HashMap<SocketAddr, Node>,
    in_flight: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    delivered: HashMap<SocketAddr, Vec<Vec<u8>>>,
    drops: Vec<(SocketAddr, Drop)>,
}

/// Collects one node's output.
struct Capture<'a> {
    from: SocketAddr,
    in_flight: &'a mut VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    delivered: &'a mut Vec<Vec<u8>>,
}

impl Sink for Capture<'_> {
    fn send_datagram(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.in_flight.push_back((self.from, to, datagram.to_vec()));
    }
    fn deliver_packet(&mut self, packet: &[u8]) {
        self.delivered.push(packet.to_vec());
    }
}

impl Lab {
    fn node(&mut self, at: SocketAddr) -> &mut Node {
        self.nodes.get_mut(&at).unwrap()
    }

    /// `at` reads `packet` from its TUN device.
    fn send(&mut self, at: SocketAddr, packet: &[u8]) -> Result<(), Drop> {
        let node = self.nodes.get_mut(&at).unwrap();
        let delivered = self.delivered.entry(at).or_default();
        node.handle_tun_packet(
            packet,
            &mut Capture {
                from: at,
                in_flight: &mut self.in_flight,
                delivered,
            },
        )
    }

    /// Moves datagrams until none are left; `rewrite` may change the
    /// source address a receiver sees (NAT, roaming).
    fn run(&mut self, now: Instant, rewrite: impl Fn(SocketAddr) -> SocketAddr) {
        while let Some((from, to, datagram)) = self.in_flight.pop_front() {
            let seen_from = rewrite(from);
            let Some(node) = self.nodes.get_mut(&to) else {
                continue;
            };
            let delivered = self.delivered.entry(to).or_default();
            // Replies go back to the real sender.
            let mut capture = Capture {
                from: to,
                in_flight: &mut self.in_flight,
                delivered,
            };
            if let Err(drop) = node.handle_datagram(seen_from, &datagram, now, &mut capture) {
                self.drops.push((to, drop));
            }
            // Datagrams a node addresses to a rewritten address reach the real one.
            for entry in self.in_flight.iter_mut() {
                if entry.1 == seen_from {
                    entry.1 = from;
                }
            }
        }
    }

    fn delivered(&mut self, at: SocketAddr) -> Vec<Vec<u8>> {
        std::mem::take(self.delivered.entry(at).or_default())
    }

    fn events(&mut self, at: SocketAddr) -> Vec<Event> {
        std::iter::from_fn(|| self.node(at).poll_event()).collect()
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tcp(src: [u8; 4], dst: [u8; 4], port: u16) -> Vec<u8> {
    let mut packet = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .tcp(40000, port, 7, 1024)
        .write(&mut packet, b"expedient 2026/118")
        .unwrap();
    packet
}

const CLIENT: [u8; 4] = [10, 77, 0, 2];
const SERVER: [u8; 4] = [10, 1, 20, 5];

/// A gateway at 192.0.2.1:51820 and a laptop at 198.51.100.7:40000; the
/// laptop (10.77.0.2) may reach 10.1.20.0/24 TCP 443 and 445.
fn town() -> (Lab, SocketAddr, SocketAddr) {
    let (gateway_addr, laptop_addr) = (addr("192.0.2.1:51820"), addr("198.51.100.7:40000"));
    let (gateway_key, laptop_key) = (PrivateKey::generate(), PrivateKey::generate());
    let mut gateway = Node::new(&gateway_key, Duration::from_secs(180));
    gateway.upsert_peer(PeerConfig {
        public_key: laptop_key.public_key(),
        allowed_ips: vec!["10.77.0.2/32".parse().unwrap()],
        endpoint: None,
        persistent_keepalive: None,
        filter: Some(Filter::new(vec![Rule {
            net: "10.1.20.0/24".parse().unwrap(),
            protocol: Some(protocol::TCP),
            ports: vec![(443, 443), (445, 445)],
        }])),
    });
    let mut laptop = Node::new(&laptop_key, Duration::from_secs(180));
    laptop.upsert_peer(PeerConfig {
        public_key: gateway_key.public_key(),
        allowed_ips: vec!["10.1.0.0/16".parse().unwrap()],
        endpoint: Some(gateway_addr),
        persistent_keepalive: Some(25),
        filter: None,
    });
    let mut lab = Lab::default();
    lab.nodes.insert(gateway_addr, gateway);
    lab.nodes.insert(laptop_addr, laptop);
    (lab, gateway_addr, laptop_addr)
}

#[test]
fn packets_cross_both_ways_after_a_handshake() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    let request = tcp(CLIENT, SERVER, 443);
    lab.send(laptop, &request).unwrap();
    lab.run(now, |a| a);
    assert_eq!(
        lab.delivered(gateway),
        vec![request],
        "queued during the handshake, then delivered"
    );

    let reply = tcp(SERVER, CLIENT, 40000);
    lab.send(gateway, &reply).unwrap();
    lab.run(now, |a| a);
    assert_eq!(lab.delivered(laptop), vec![reply]);

    let gateway_events = lab.events(gateway);
    assert!(
        gateway_events.contains(&Event::HandshakeCompleted { peer: 1 }),
        "{gateway_events:?}"
    );
    assert!(gateway_events.contains(&Event::EndpointChanged {
        peer: 1,
        from: None,
        to: laptop
    }));
    assert!(
        lab.events(laptop)
            .contains(&Event::HandshakeCompleted { peer: 1 })
    );
    let stats = lab.node(gateway).stats(1).unwrap();
    assert!(
        stats.rx_bytes > 0 && stats.tx_bytes > 0 && stats.last_handshake.is_some(),
        "{stats:?}"
    );
    assert!(lab.drops.is_empty(), "{:?}", lab.drops);
    // The node-wide counters: one handshake; every datagram in (the
    // peer's count leaves out keepalives), the response and the reply out.
    let counters = lab.node(gateway).counters().clone();
    assert_eq!(counters.handshakes_completed, 1, "{counters:?}");
    assert_eq!(counters.handshakes_failed, 0);
    assert!(counters.bytes_received >= stats.rx_bytes);
    assert_eq!(counters.bytes_sent, stats.tx_bytes);
    assert!(counters.datagrams_received >= 2 && counters.datagrams_sent >= 2);
    assert_eq!(counters.dropped, [0; Drop::ALL.len()]);
}

#[test]
fn a_client_can_handshake_before_any_traffic() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut delivered = Vec::new();
    // The gateway knows no endpoint for the laptop yet, so it initiates nothing.
    lab.node(gateway).initiate_handshakes(&mut Capture {
        from: gateway,
        in_flight: &mut in_flight,
        delivered: &mut delivered,
    });
    assert!(in_flight.is_empty());
    lab.node(laptop).initiate_handshakes(&mut Capture {
        from: laptop,
        in_flight: &mut in_flight,
        delivered: &mut delivered,
    });
    assert_eq!(in_flight.len(), 1, "one initiation, to the gateway");
    lab.in_flight = in_flight;
    lab.run(now, |a| a);
    assert!(
        lab.events(laptop)
            .contains(&Event::HandshakeCompleted { peer: 1 })
    );
    assert!(lab.node(laptop).stats(1).unwrap().last_handshake.is_some());
    assert_eq!(
        lab.node(gateway).stats(1).unwrap().endpoint,
        Some(laptop),
        "learned from the handshake"
    );
}

#[test]
fn the_gateway_drops_and_counts_what_the_filter_does_not_allow() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    lab.send(laptop, &tcp(CLIENT, SERVER, 445)).unwrap();
    lab.run(now, |a| a);
    assert_eq!(lab.delivered(gateway).len(), 1);

    for packet in [tcp(CLIENT, SERVER, 22), tcp(CLIENT, [10, 1, 21, 5], 443)] {
        lab.send(laptop, &packet).unwrap();
        lab.run(now, |a| a);
    }
    assert!(lab.delivered(gateway).is_empty());
    assert_eq!(
        lab.drops,
        vec![(gateway, Drop::Filtered), (gateway, Drop::Filtered)]
    );
    assert_eq!(lab.node(gateway).stats(1).unwrap().dropped_filtered, 2);
    let counters = lab.node(gateway).counters();
    assert_eq!(counters.dropped_for(Drop::Filtered), 2);
    assert_eq!(counters.dropped.iter().sum::<u64>(), 2, "{counters:?}");
}

#[test]
fn a_peer_cannot_send_from_an_address_that_is_not_its_own() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    lab.send(laptop, &tcp([10, 77, 0, 99], SERVER, 443))
        .unwrap();
    lab.run(now, |a| a);
    assert!(lab.delivered(gateway).is_empty());
    assert_eq!(lab.drops, vec![(gateway, Drop::Spoofed)]);
    assert_eq!(lab.node(gateway).stats(1).unwrap().dropped_spoofed, 1);
}

#[test]
fn a_roaming_laptop_is_followed_to_its_new_address() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    lab.events(gateway);

    // The laptop moves to another network: the gateway sees a new source.
    let moved = addr("203.0.113.50:61000");
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| if a == laptop { moved } else { a });
    assert_eq!(lab.delivered(gateway).len(), 2);
    assert_eq!(
        lab.events(gateway),
        vec![Event::EndpointChanged {
            peer: 1,
            from: Some(laptop),
            to: moved
        }]
    );
    assert_eq!(lab.node(gateway).stats(1).unwrap().endpoint, Some(moved));
}

#[test]
fn removing_a_peer_cuts_it_off_and_leaves_the_others_alone() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    // A second laptop, 10.77.0.3.
    let second_addr = addr("198.51.100.8:40000");
    let second_key = PrivateKey::generate();
    let gateway_key = lab.node(gateway).public_key();
    let mut second = Node::new(&second_key, Duration::from_secs(180));
    second.upsert_peer(PeerConfig {
        public_key: gateway_key,
        allowed_ips: vec!["10.1.0.0/16".parse().unwrap()],
        endpoint: Some(gateway),
        persistent_keepalive: None,
        filter: None,
    });
    lab.nodes.insert(second_addr, second);
    let second_id = lab.node(gateway).upsert_peer(PeerConfig {
        public_key: second_key.public_key(),
        allowed_ips: vec!["10.77.0.3/32".parse().unwrap()],
        endpoint: None,
        persistent_keepalive: None,
        filter: Some(Filter::new(vec![Rule::any("10.1.0.0/16".parse().unwrap())])),
    });
    for (at, src) in [(laptop, CLIENT), (second_addr, [10, 77, 0, 3])] {
        lab.send(at, &tcp(src, SERVER, 443)).unwrap();
        lab.run(now, |a| a);
    }
    assert_eq!(lab.delivered(gateway).len(), 2);

    assert!(lab.node(gateway).remove_peer(1));
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.send(second_addr, &tcp([10, 77, 0, 3], SERVER, 443))
        .unwrap();
    lab.run(now, |a| a);
    assert_eq!(
        lab.drops,
        vec![(gateway, Drop::UnknownPeer)],
        "the removed laptop's session is gone"
    );
    let delivered = lab.delivered(gateway);
    assert_eq!(
        delivered,
        vec![tcp([10, 77, 0, 3], SERVER, 443)],
        "the other laptop is unaffected"
    );
    // The gateway no longer routes to the removed laptop's address.
    assert_eq!(
        lab.send(gateway, &tcp(SERVER, CLIENT, 1)),
        Err(Drop::NoRoute)
    );
    assert!(lab.node(gateway).stats(second_id).is_some());
}

#[test]
fn a_policy_change_keeps_the_session() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    assert_eq!(lab.delivered(gateway).len(), 1);
    lab.events(gateway);
    let mut config = lab.node(gateway).peer_config(1).unwrap().clone();
    config.filter = Some(Filter::new(vec![Rule::any("10.1.0.0/16".parse().unwrap())]));
    assert_eq!(lab.node(gateway).upsert_peer(config), 1, "same peer");
    // Port 22 is allowed now, and no new handshake was needed.
    lab.send(laptop, &tcp(CLIENT, SERVER, 22)).unwrap();
    lab.run(now, |a| a);
    assert_eq!(lab.delivered(gateway).len(), 1);
    assert!(
        !lab.events(gateway)
            .iter()
            .any(|e| matches!(e, Event::HandshakeCompleted { .. }))
    );
}

#[test]
fn silence_past_the_threshold_is_reported_once() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    lab.events(gateway);
    let mut sink = Capture {
        from: gateway,
        in_flight: &mut VecDeque::new(),
        delivered: &mut Vec::new(),
    };
    let node = lab.node(gateway);
    node.handle_timeout(now + Duration::from_secs(60), &mut sink);
    assert_eq!(node.poll_event(), None);
    node.handle_timeout(now + Duration::from_secs(181), &mut sink);
    node.handle_timeout(now + Duration::from_secs(190), &mut sink);
    let stats = node.stats(1).unwrap();
    assert_eq!(
        node.poll_event(),
        Some(Event::Idle {
            peer: 1,
            rx_bytes: stats.rx_bytes,
            tx_bytes: stats.tx_bytes
        })
    );
    assert_eq!(node.poll_event(), None);
}

#[test]
fn activity_begins_with_data_not_with_handshakes_or_keepalives() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    // A handshake alone.
    let mut in_flight = VecDeque::new();
    lab.node(laptop).initiate_handshakes(&mut Capture {
        from: laptop,
        in_flight: &mut in_flight,
        delivered: &mut Vec::new(),
    });
    lab.in_flight = in_flight;
    lab.run(now, |a| a);
    let events = lab.events(gateway);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::HandshakeCompleted { .. }))
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Active { .. })),
        "{events:?}"
    );
    // The first data packet begins activity, counted from just before it.
    let before = lab.node(gateway).stats(1).unwrap();
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    assert_eq!(
        lab.events(gateway),
        [Event::Active {
            peer: 1,
            rx_bytes: before.rx_bytes,
            tx_bytes: before.tx_bytes
        }]
    );
}

#[test]
fn garbage_and_strangers_are_rejected() {
    let (mut lab, gateway, _) = town();
    let now = Instant::now();
    let stranger_key = PrivateKey::generate();
    let stranger_addr = addr("203.0.113.9:1234");
    let mut stranger = Node::new(&stranger_key, Duration::from_secs(180));
    let gateway_key = lab.node(gateway).public_key();
    stranger.upsert_peer(PeerConfig {
        public_key: gateway_key,
        allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
        endpoint: Some(gateway),
        persistent_keepalive: None,
        filter: None,
    });
    lab.nodes.insert(stranger_addr, stranger);
    lab.send(stranger_addr, &tcp([10, 77, 0, 50], SERVER, 443))
        .unwrap();
    lab.run(now, |a| a);
    assert_eq!(
        lab.drops,
        vec![(gateway, Drop::UnknownPeer)],
        "an unknown key gets no handshake"
    );

    let mut sink = Capture {
        from: gateway,
        in_flight: &mut VecDeque::new(),
        delivered: &mut Vec::new(),
    };
    let node = lab.node(gateway);
    for junk in [&b""[..], b"\x01\x00\x00\x00", &[4u8; 64], &[1u8; 148]] {
        assert!(
            node.handle_datagram(stranger_addr, junk, now, &mut sink)
                .is_err()
        );
    }
    assert_eq!(
        node.handle_tun_packet(b"not ip", &mut sink),
        Err(Drop::Malformed)
    );
    assert!(sink.in_flight.is_empty() && sink.delivered.is_empty());
    // The stranger's initiation and the 148-byte junk are failed
    // handshakes; nothing was sent back, no handshake completed.
    let counters = node.counters();
    assert_eq!(counters.handshakes_failed, 2, "{counters:?}");
    assert_eq!(counters.handshakes_completed, 0);
    assert_eq!(counters.datagrams_sent, 0);
    assert_eq!(counters.dropped_for(Drop::UnknownPeer), 1);
    assert_eq!(counters.dropped_for(Drop::Malformed), 1);
}

mod routing {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Outgoing packets go to the peer whose allowed prefix is the
        /// longest match, as a naive scan over all prefixes says.
        #[test]
        fn outgoing_packets_follow_the_longest_prefix(
            prefixes in proptest::collection::vec((any::<[u8; 4]>(), 0u8..=32), 1..12),
            destination in any::<[u8; 4]>(),
        ) {
            let mut node = Node::new(&PrivateKey::generate(), Duration::from_secs(180));
            let mut owner_of = HashMap::new();
            for (i, (base, len)) in prefixes.iter().enumerate() {
                let net: ipnet::IpNet = ipnet::Ipv4Net::new((*base).into(), *len).unwrap().trunc().into();
                let endpoint: SocketAddr = SocketAddr::from(([192, 0, 2, 1], 1000 + i as u16));
                node.upsert_peer(PeerConfig {
                    public_key: PrivateKey::generate().public_key(),
                    allowed_ips: vec![net],
                    endpoint: Some(endpoint),
                    persistent_keepalive: None,
                    filter: None,
                });
                // A later peer with the same prefix takes it over.
                owner_of.insert(net, endpoint);
            }
            let dst = std::net::IpAddr::from(destination);
            let expected = owner_of
                .iter()
                .filter(|(net, _)| net.contains(&dst))
                .max_by_key(|(net, _)| net.prefix_len())
                .map(|(_, endpoint)| *endpoint);
            let mut in_flight = VecDeque::new();
            let mut delivered = Vec::new();
            let mut sink = Capture { from: SocketAddr::from(([127, 0, 0, 1], 1)), in_flight: &mut in_flight, delivered: &mut delivered };
            let result = node.handle_tun_packet(&tcp([10, 77, 0, 2], destination, 443), &mut sink);
            match expected {
                None => prop_assert_eq!(result, Err(Drop::NoRoute)),
                Some(endpoint) => {
                    prop_assert_eq!(result, Ok(()));
                    prop_assert_eq!(in_flight.front().map(|d| d.1), Some(endpoint));
                }
            }
        }
    }
}

/// A flood's initiation for `gateway`: valid MAC1, from a key it does not know.
fn stranger_initiation(gateway: &PublicKey) -> Vec<u8> {
    let mut stranger = Node::new(&PrivateKey::generate(), Duration::from_secs(180));
    stranger.upsert_peer(PeerConfig {
        public_key: *gateway,
        allowed_ips: vec![],
        endpoint: Some(addr("192.0.2.1:51820")),
        persistent_keepalive: None,
        filter: None,
    });
    let mut in_flight = VecDeque::new();
    stranger.initiate_handshakes(&mut Capture {
        from: addr("203.0.113.1:1"),
        in_flight: &mut in_flight,
        delivered: &mut Vec::new(),
    });
    in_flight.pop_front().unwrap().2
}

#[test]
fn a_flooding_address_is_cut_off_before_any_cryptography() {
    let (mut lab, gateway, _) = town();
    let flood = stranger_initiation(&lab.node(gateway).public_key());
    let now = Instant::now();
    let flooder = addr("203.0.113.66:4000");
    let mut sink = Capture {
        from: gateway,
        in_flight: &mut VecDeque::new(),
        delivered: &mut Vec::new(),
    };
    let throttled = (0..1_000)
        .filter(|_| {
            lab.nodes
                .get_mut(&gateway)
                .unwrap()
                .handle_datagram(flooder, &flood, now, &mut sink)
                == Err(Drop::Throttled)
        })
        .count();
    assert_eq!(throttled, 1_000 - porta_tunnel::throttle::BURST as usize);
    assert_eq!(
        lab.node(gateway).counters().dropped_for(Drop::Throttled),
        throttled as u64
    );
}

#[test]
fn under_load_a_laptop_answers_the_cookie_at_once_and_connects() {
    let (mut lab, gateway, laptop) = town();
    let flood = stranger_initiation(&lab.node(gateway).public_key());
    let now = Instant::now();
    // Many addresses, each within its own allowance, put the gateway under
    // load: from now on it answers initiations without MAC2 with a cookie.
    let mut sink = Capture {
        from: gateway,
        in_flight: &mut VecDeque::new(),
        delivered: &mut Vec::new(),
    };
    for i in 0..200u32 {
        let source = SocketAddr::from(([203, 0, (i / 250) as u8, (i % 250) as u8 + 1], 4000));
        let _ = lab
            .nodes
            .get_mut(&gateway)
            .unwrap()
            .handle_datagram(source, &flood, now, &mut sink);
    }
    // The laptop's first initiation draws a cookie; its second, sent at
    // once with the cookie, completes the handshake: no 5 s wait.
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    assert!(
        lab.events(laptop)
            .contains(&Event::HandshakeCompleted { peer: 1 }),
        "drops: {:?}",
        lab.drops
    );
    let counters = lab.node(gateway).counters();
    assert!(counters.cookie_replies_sent >= 1, "{counters:?}");
    assert_eq!(counters.handshakes_completed, 1);
}

#[test]
fn data_a_gateway_never_answers_is_marked_and_an_answer_clears_it() {
    let (mut lab, gateway, laptop) = town();
    let now = Instant::now();
    // A session, then the gateway goes away: what the laptop sends is lost.
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    lab.send(gateway, &tcp(SERVER, CLIENT, 40000)).unwrap();
    lab.run(now, |a| a);
    assert_eq!(lab.node(laptop).stats(1).unwrap().unanswered_since, None);
    let away = lab.nodes.remove(&gateway).unwrap();
    lab.send(laptop, &tcp(CLIENT, SERVER, 445)).unwrap();
    let first = lab.node(laptop).stats(1).unwrap().unanswered_since;
    assert!(first.is_some(), "sent and not answered");
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    assert_eq!(
        lab.node(laptop).stats(1).unwrap().unanswered_since,
        first,
        "since the first unanswered packet"
    );
    // The gateway is back and answers (here with data): cleared.
    lab.nodes.insert(gateway, away);
    lab.send(laptop, &tcp(CLIENT, SERVER, 443)).unwrap();
    lab.run(now, |a| a);
    lab.send(gateway, &tcp(SERVER, CLIENT, 40000)).unwrap();
    lab.run(now, |a| a);
    assert_eq!(lab.node(laptop).stats(1).unwrap().unanswered_since, None);
}

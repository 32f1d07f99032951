//! What a peer's packets may reach: the gateway's security boundary.
//!
//! [`inspect`] reads the four fields a decision needs (source, destination,
//! protocol, destination port) from an IP packet without copying it;
//! [`Filter::allows`] matches them against a peer's [`Rule`]s.
//!
//! Fragments: only the first fragment of a datagram carries ports, so a
//! fragmented packet is matched on destination and protocol alone. Inside
//! a 1420-byte tunnel with path-MTU discovery this is rare (some UDP).

use ipnet::IpNet;
use std::net::IpAddr;

/// IP protocol numbers used in rules.
pub mod protocol {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// The fields of a packet a filter decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (after IPv6 extension headers).
    pub protocol: u8,
    /// TCP/UDP destination port, if the packet carries one.
    pub dst_port: Option<u16>,
    /// True for fragments (ports are then not checked).
    pub fragmented: bool,
}

/// Reads a packet's addresses, protocol and destination port, or `None`
/// if it is not a well-formed IPv4/IPv6 packet.
pub fn inspect(packet: &[u8]) -> Option<PacketInfo> {
    let ip = etherparse::IpSlice::from_slice(packet).ok()?;
    let payload = ip.payload();
    let protocol = payload.ip_number.0;
    let dst_port = match protocol {
        protocol::TCP | protocol::UDP if !payload.fragmented && payload.payload.len() >= 4 => {
            Some(u16::from_be_bytes([payload.payload[2], payload.payload[3]]))
        }
        _ => None,
    };
    Some(PacketInfo {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        protocol,
        dst_port,
        fragmented: payload.fragmented,
    })
}

/// One allowed destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Destination prefix.
    pub net: IpNet,
    /// `None`: any protocol. [`protocol::ICMP`] also matches ICMPv6.
    pub protocol: Option<u8>,
    /// Inclusive destination-port ranges; empty means all ports.
    pub ports: Vec<(u16, u16)>,
}

impl Rule {
    /// Any protocol to `net`.
    pub fn any(net: IpNet) -> Self {
        Self {
            net,
            protocol: None,
            ports: Vec::new(),
        }
    }

    fn matches(&self, packet: &PacketInfo) -> bool {
        if !self.net.contains(&packet.dst) {
            return false;
        }
        match self.protocol {
            None => return true,
            Some(protocol::ICMP) => {
                return matches!(packet.protocol, protocol::ICMP | protocol::ICMPV6);
            }
            Some(p) if p != packet.protocol => return false,
            Some(_) => {}
        }
        if self.ports.is_empty() || packet.fragmented {
            return true;
        }
        packet.dst_port.is_some_and(|port| {
            self.ports
                .iter()
                .any(|&(first, last)| (first..=last).contains(&port))
        })
    }
}

/// The destinations one peer may reach. An empty filter allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    rules: Vec<Rule>,
}

impl Filter {
    /// A filter allowing exactly `rules`.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// True if some rule allows the packet's destination.
    pub fn allows(&self, packet: &PacketInfo) -> bool {
        self.rules.iter().any(|rule| rule.matches(packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp(dst: [u8; 4], port: u16) -> Vec<u8> {
        let mut packet = Vec::new();
        PacketBuilder::ipv4([10, 77, 0, 2], dst, 64)
            .tcp(40000, port, 1, 1024)
            .write(&mut packet, b"hi")
            .expect("build");
        packet
    }

    fn udp6(dst: [u8; 16], port: u16) -> Vec<u8> {
        let mut packet = Vec::new();
        let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        PacketBuilder::ipv6(src, dst, 64)
            .udp(5353, port)
            .write(&mut packet, b"q")
            .expect("build");
        packet
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    #[test]
    fn inspect_reads_addresses_protocol_and_port() {
        let info = inspect(&tcp([10, 1, 20, 5], 443)).expect("ipv4");
        assert_eq!(info.dst, IpAddr::from([10, 1, 20, 5]));
        assert_eq!((info.protocol, info.dst_port), (protocol::TCP, Some(443)));
        let mut dst6 = [0u8; 16];
        dst6[0] = 0xfd;
        dst6[15] = 9;
        let info = inspect(&udp6(dst6, 53)).expect("ipv6");
        assert_eq!((info.protocol, info.dst_port), (protocol::UDP, Some(53)));
        assert_eq!(inspect(&[0x45, 0, 0]), None);
        assert_eq!(inspect(b"definitely not a packet"), None);
    }

    #[test]
    fn rules_check_prefix_protocol_and_ports() {
        let filter = Filter::new(vec![
            Rule {
                net: net("10.1.20.0/24"),
                protocol: Some(protocol::TCP),
                ports: vec![(443, 443), (3389, 3389)],
            },
            Rule::any(net("10.1.30.7/32")),
        ]);
        let allowed = |packet: Vec<u8>| filter.allows(&inspect(&packet).expect("packet"));
        assert!(allowed(tcp([10, 1, 20, 5], 443)));
        assert!(allowed(tcp([10, 1, 20, 5], 3389)));
        assert!(!allowed(tcp([10, 1, 20, 5], 22)), "port not allowed");
        assert!(!allowed(tcp([10, 1, 21, 5], 443)), "outside the prefix");
        assert!(allowed(tcp([10, 1, 30, 7], 22)), "any protocol, any port");
        assert!(
            !Filter::default().allows(&inspect(&tcp([10, 1, 20, 5], 443)).expect("packet")),
            "empty allows nothing"
        );
    }
}

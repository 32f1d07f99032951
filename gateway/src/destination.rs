//! Town destinations: where a device may go, and how a gateway enforces it.
//!
//! The controller decides which destinations a device may reach (its
//! groups' destinations plus the routes for everyone); this module is what
//! both sides agree a destination *is* — its stored form, its wire form
//! (with the checks a received one must pass) and the gateway filter rule
//! it becomes. The rule is the security boundary; the client's routes
//! built from the same prefixes are a convenience.

use ipnet::IpNet;
use porta_proto::pb;
use porta_tunnel::filter::{Rule, protocol};
use serde::{Deserialize, Serialize};

/// A town destination: a prefix, optionally narrowed to a protocol and ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// The prefix (normalised to its network address).
    pub cidr: IpNet,
    /// Which IP protocol.
    pub protocol: Protocol,
    /// Port ranges (TCP/UDP only); empty means all.
    #[serde(default)]
    pub ports: Vec<PortRange>,
}

/// An IP protocol a destination may be narrowed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Every protocol.
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (and ICMPv6).
    Icmp,
}

/// Inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (≥ first).
    pub last: u16,
}

/// Why a destination from the wire was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    /// The prefix does not parse (quoted as given, shortened).
    #[error("destination {0} is not a prefix in CIDR notation (like 10.1.20.0/24 or 10.1.20.5/32)")]
    Prefix(String),
    /// Not one of the protocols.
    #[error("unknown protocol {0}")]
    Protocol(i32),
    /// Ports given for a protocol without ports.
    #[error("ports can only be given with protocol tcp or udp")]
    PortsWithoutProtocol,
    /// A port range out of 1–65535 or backwards.
    #[error("port range {first}-{last} is invalid: ports run from 1 to 65535, first ≤ last")]
    PortRange {
        /// As given.
        first: u32,
        /// As given.
        last: u32,
    },
}

impl From<Destination> for pb::Destination {
    fn from(d: Destination) -> Self {
        let protocol = match d.protocol {
            Protocol::Any => pb::Protocol::Any,
            Protocol::Tcp => pb::Protocol::Tcp,
            Protocol::Udp => pb::Protocol::Udp,
            Protocol::Icmp => pb::Protocol::Icmp,
        };
        pb::Destination {
            cidr: d.cidr.to_string(),
            protocol: protocol as i32,
            ports: d
                .ports
                .into_iter()
                .map(|p| pb::PortRange {
                    first: p.first.into(),
                    last: p.last.into(),
                })
                .collect(),
        }
    }
}

impl TryFrom<&pb::Destination> for Destination {
    type Error = DestinationError;

    /// A destination from the wire, checked: a prefix (normalised), a
    /// known protocol, ports only for TCP/UDP and within 1–65535; port
    /// ranges sorted and without repeats.
    fn try_from(message: &pb::Destination) -> Result<Self, DestinationError> {
        let cidr = prefix(&message.cidr)?;
        let protocol = match pb::Protocol::try_from(message.protocol) {
            Ok(pb::Protocol::Any) => Protocol::Any,
            Ok(pb::Protocol::Tcp) => Protocol::Tcp,
            Ok(pb::Protocol::Udp) => Protocol::Udp,
            Ok(pb::Protocol::Icmp) => Protocol::Icmp,
            Err(_) => return Err(DestinationError::Protocol(message.protocol)),
        };
        if !message.ports.is_empty() && !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
            return Err(DestinationError::PortsWithoutProtocol);
        }
        let mut ports = message
            .ports
            .iter()
            .map(|range| {
                let port = |n: u32| u16::try_from(n).ok().filter(|&p| p != 0);
                match (port(range.first), port(range.last)) {
                    (Some(first), Some(last)) if first <= last => Ok(PortRange { first, last }),
                    _ => Err(DestinationError::PortRange {
                        first: range.first,
                        last: range.last,
                    }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        ports.sort_unstable();
        ports.dedup();
        Ok(Destination {
            cidr,
            protocol,
            ports,
        })
    }
}

/// A prefix, normalised to its network address (10.1.20.7/24 is
/// 10.1.20.0/24).
fn prefix(text: &str) -> Result<IpNet, DestinationError> {
    let net: IpNet = text
        .trim()
        .parse()
        .map_err(|_| DestinationError::Prefix(porta_proto::quoted(text)))?;
    Ok(net.trunc())
}

impl From<&Destination> for Rule {
    /// The gateway filter rule that lets exactly this destination through.
    fn from(destination: &Destination) -> Rule {
        Rule {
            net: destination.cidr,
            protocol: match destination.protocol {
                Protocol::Any => None,
                Protocol::Tcp => Some(protocol::TCP),
                Protocol::Udp => Some(protocol::UDP),
                Protocol::Icmp => Some(protocol::ICMP),
            },
            ports: destination
                .ports
                .iter()
                .map(|p| (p.first, p.last))
                .collect(),
        }
    }
}

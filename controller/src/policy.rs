//! Policy: which town destinations a device may reach.
//!
//! One function decides, and both sides use it: the client is given the
//! destinations' prefixes as routes (convenience), and the gateway turns
//! the same destinations into the per-peer filter (the security boundary;
//! the rule itself is `porta_gateway::destination`'s).

use crate::settings::Settings;
use crate::store::records::{Destination, GroupRecord, Protocol};

/// The destinations a member of `groups` may reach: the controller's
/// routes for everyone, then each group's destinations.
pub fn destinations<'a>(
    settings: &Settings,
    groups: impl IntoIterator<Item = &'a GroupRecord>,
) -> Vec<Destination> {
    explained(settings, groups)
        .into_iter()
        .map(|(destination, _)| destination)
        .collect()
}

/// Why a device may reach a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Because {
    /// A town-wide route (`init --route`): every device, whatever its
    /// groups.
    Everyone,
    /// This group of its person's.
    Group(String),
}

/// [`destinations`], each with why.
pub fn explained<'a>(
    settings: &Settings,
    groups: impl IntoIterator<Item = &'a GroupRecord>,
) -> Vec<(Destination, Because)> {
    let everyone = settings.routes.iter().map(|&cidr| {
        (
            Destination {
                cidr,
                protocol: Protocol::Any,
                ports: Vec::new(),
            },
            Because::Everyone,
        )
    });
    everyone
        .chain(groups.into_iter().flat_map(|g| {
            g.destinations
                .iter()
                .map(|d| (d.clone(), Because::Group(g.name.clone())))
        }))
        .collect()
}

/// The town-wide route that already lets every device reach all of
/// `cidr`, if one does: a group rule for it then restricts nothing.
pub fn covering_route(settings: &Settings, cidr: &ipnet::IpNet) -> Option<ipnet::IpNet> {
    settings
        .routes
        .iter()
        .copied()
        .find(|route| route.contains(cidr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::PortRange;
    use porta_tunnel::filter::{Filter, PacketInfo, Rule, protocol};

    #[test]
    fn group_destinations_become_an_equivalent_gateway_filter() {
        let settings = Settings {
            organization: String::new(),
            gateway_name: "g".into(),
            vpn_prefix_v4: "10.77.0.0/16".parse().expect("prefix"),
            vpn_prefix_v6: None,
            wg_endpoint: "x:1".into(),
            api_endpoint: "x:2".into(),
            routes: vec!["10.1.0.53/32".parse().expect("prefix")],
            dns: vec![],
            search_domains: vec![],
            keepalive_secs: 25,
            mtu: 1420,
            address_quarantine_secs: 0,
            token_ttl_secs: 60,
        };
        let rdp = GroupRecord {
            name: "rdp".into(),
            description: String::new(),
            destinations: vec![Destination {
                cidr: "10.1.40.0/24".parse().expect("prefix"),
                protocol: Protocol::Tcp,
                ports: vec![PortRange {
                    first: 3389,
                    last: 3389,
                }],
            }],
            created_at: 0,
        };
        let allowed = destinations(&settings, [&rdp]);
        assert_eq!(allowed.len(), 2);
        let filter = Filter::new(allowed.iter().map(Rule::from).collect());
        let packet = |dst: [u8; 4], protocol: u8, port: u16| PacketInfo {
            src: [10, 77, 0, 2].into(),
            dst: dst.into(),
            protocol,
            dst_port: Some(port),
            fragmented: false,
        };
        assert!(filter.allows(&packet([10, 1, 40, 9], protocol::TCP, 3389)));
        assert!(!filter.allows(&packet([10, 1, 40, 9], protocol::TCP, 22)));
        assert!(!filter.allows(&packet([10, 1, 40, 9], protocol::UDP, 3389)));
        assert!(
            filter.allows(&packet([10, 1, 0, 53], protocol::UDP, 53)),
            "routes for everyone"
        );
    }
}

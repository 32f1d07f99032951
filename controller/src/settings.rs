//! Settings chosen at `init` and kept in the store's `meta` tree.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// What `porta-controller init` decided; read by every part of the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The town hall's name, written into invitations for people to see.
    #[serde(default)]
    pub organization: String,
    /// Name shown for this controller's embedded gateway.
    pub gateway_name: String,
    /// IPv4 prefix device addresses come from.
    pub vpn_prefix_v4: Ipv4Net,
    /// Optional IPv6 (ULA) prefix; devices get the paired address.
    #[serde(default)]
    pub vpn_prefix_v6: Option<Ipv6Net>,
    /// host:port staff's WireGuard traffic goes to (UDP).
    pub wg_endpoint: String,
    /// host:port of the gRPC API, written into invitations.
    pub api_endpoint: String,
    /// Prefixes every device may reach, whatever its groups.
    #[serde(default)]
    pub routes: Vec<IpNet>,
    /// DNS servers pushed to devices.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// DNS search domains pushed to devices.
    #[serde(default)]
    pub search_domains: Vec<String>,
    /// WireGuard persistent keepalive, seconds.
    pub keepalive_secs: u16,
    /// Tunnel MTU.
    pub mtu: u16,
    /// How long a revoked device's address is held back, seconds.
    pub address_quarantine_secs: u64,
    /// Default lifetime of enrollment and login tokens, seconds.
    pub token_ttl_secs: u64,
}

impl Settings {
    /// A gateway's tunnel interface addresses: the first host of each VPN
    /// prefix, with the prefix's length. Every gateway uses them; they only
    /// name the gateway's own end of its tunnels and never leave its host.
    pub fn gateway_addresses(&self) -> Vec<IpNet> {
        let gateway_v4 = crate::ipam::gateway_v4(self.vpn_prefix_v4);
        let mut addresses = vec![IpNet::V4(
            Ipv4Net::new(gateway_v4, self.vpn_prefix_v4.prefix_len())
                .expect("a prefix length from a valid prefix"),
        )];
        if let Some(v6) = self.vpn_prefix_v6 {
            let gateway_v6 = crate::ipam::paired_v6(self.vpn_prefix_v4, gateway_v4, v6);
            addresses.push(IpNet::V6(
                Ipv6Net::new(gateway_v6, v6.prefix_len())
                    .expect("a prefix length from a valid prefix"),
            ));
        }
        addresses
    }
}

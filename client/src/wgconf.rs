//! `porta export-wg`: the device's tunnel as a wg-quick configuration, the
//! format the official WireGuard apps import too.

use crate::state::DeviceState;
use porta_tunnel::keys::PrivateKey;
use std::fmt::Write;

/// The wg-quick configuration of this device. Contains the private key.
pub fn render(state: &DeviceState, key: &PrivateKey) -> String {
    let c = &state.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Porta device {} ({}), exported by `porta export-wg`",
        c.device_name, c.user
    );
    let _ = writeln!(out, "[Interface]");
    let _ = writeln!(out, "PrivateKey = {}", key.to_base64());
    let _ = writeln!(out, "Address = {}", c.addresses.join(", "));
    if !c.dns_servers.is_empty() || !c.search_domains.is_empty() {
        let dns: Vec<&str> = c
            .dns_servers
            .iter()
            .chain(&c.search_domains)
            .map(String::as_str)
            .collect();
        let _ = writeln!(out, "DNS = {}", dns.join(", "));
    }
    if c.mtu > 0 {
        let _ = writeln!(out, "MTU = {}", c.mtu);
    }
    for gateway in &c.gateways {
        let _ = writeln!(out);
        let _ = writeln!(out, "[Peer]");
        let _ = writeln!(out, "# gateway {}", gateway.name);
        let _ = writeln!(out, "PublicKey = {}", gateway.public_key);
        let _ = writeln!(out, "Endpoint = {}", gateway.endpoint);
        let _ = writeln!(out, "AllowedIPs = {}", c.routes.join(", "));
        if c.persistent_keepalive > 0 {
            let _ = writeln!(out, "PersistentKeepalive = {}", c.persistent_keepalive);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{SavedConfig, SavedGateway};

    #[test]
    fn renders_a_wg_quick_file() {
        let key = PrivateKey::generate();
        let state = DeviceState {
            controller: "vpn.valls.cat:7443".into(),
            fingerprint: String::new(),
            credential: "secret".into(),
            config: SavedConfig {
                device_name: "anna-laptop".into(),
                user: "anna".into(),
                addresses: vec!["10.77.0.2/32".into()],
                gateways: vec![SavedGateway {
                    name: "embedded".into(),
                    endpoint: "vpn.valls.cat:51820".into(),
                    public_key: key.public_key().to_base64(),
                }],
                routes: vec!["10.1.0.0/16".into(), "10.2.0.5/32".into()],
                dns_servers: vec!["10.1.0.53".into()],
                search_domains: vec!["valls.local".into()],
                persistent_keepalive: 25,
                mtu: 1420,
                ..SavedConfig::default()
            },
        };
        let text = render(&state, &key);
        assert!(text.contains(&format!("PrivateKey = {}\n", key.to_base64())));
        assert!(text.contains("Address = 10.77.0.2/32\n"));
        assert!(text.contains("DNS = 10.1.0.53, valls.local\n"));
        assert!(text.contains("AllowedIPs = 10.1.0.0/16, 10.2.0.5/32\n"));
        assert!(text.contains("Endpoint = vpn.valls.cat:51820\n"));
        assert!(text.contains("PersistentKeepalive = 25\n"));
        assert!(
            !text.contains("secret"),
            "the device credential is not part of a WireGuard config"
        );
    }
}

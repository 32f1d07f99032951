//! The gateway embedded in `porta-controller serve`: the town end of every
//! staff tunnel.
//!
//! It runs porta-tunnel's node and IO shell with the controller's gateway
//! key, and keeps the node's peers equal to [`Controller::gateway_peers`]:
//! after every change in the store it adds new devices, updates changed
//! ones in place (sessions survive policy changes) and removes revoked
//! devices and disabled users' devices at once, cutting their sessions.
//! Each peer's filter comes from its groups ([`crate::policy`]): the
//! gateway is the security boundary.

use crate::ipam;
use crate::state::{Controller, GatewayPeer};
use anyhow::{Context, Result};
use ipnet::IpNet;
use porta_tunnel::filter::Filter;
use porta_tunnel::keys::PrivateKey;
use porta_tunnel::shell::{Shell, ShellConfig};
use porta_tunnel::{Node, PeerConfig, PeerId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A peer is reported idle after this long without traffic.
const IDLE_AFTER: Duration = Duration::from_secs(180);

/// How the embedded gateway is set up.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// TUN interface name.
    pub interface: String,
}

/// Starts the gateway and a task that keeps its peers in step with the
/// store until the controller shuts down.
pub fn start(
    ctl: Controller,
    data: &Path,
    options: &GatewayOptions,
) -> Result<tokio::task::JoinHandle<()>> {
    let key_path = data.join("gateway.key");
    let key_text = std::fs::read_to_string(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let key = PrivateKey::from_base64(&key_text)
        .with_context(|| format!("{} is damaged", key_path.display()))?;
    let settings = ctl.settings().clone();
    let port = settings
        .wg_endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .context("the WireGuard endpoint in the settings has no port")?;
    let mut addresses = vec![IpNet::new(
        ipam::gateway_v4(settings.vpn_prefix_v4).into(),
        settings.vpn_prefix_v4.prefix_len(),
    )?];
    if let Some(v6) = settings.vpn_prefix_v6 {
        let gateway_v6 = ipam::paired_v6(
            settings.vpn_prefix_v4,
            ipam::gateway_v4(settings.vpn_prefix_v4),
            v6,
        );
        addresses.push(IpNet::new(gateway_v6.into(), v6.prefix_len())?);
    }
    warn_without_forwarding();
    let shell = Shell::start(
        Node::new(&key, IDLE_AFTER),
        ShellConfig {
            interface: options.interface.clone(),
            addresses,
            mtu: settings.mtu,
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            routes: Vec::new(),
        },
    )
    .context(
        "starting the embedded gateway (run as root, or pass --no-gateway to serve the API only)",
    )?;
    tracing::info!(interface = %options.interface, port, "embedded gateway up");

    let mut changes = ctl.subscribe();
    let mut shutdown = ctl.shutdown_signal();
    Ok(tokio::spawn(async move {
        let mut peers = HashMap::new();
        loop {
            let revision = *changes.borrow_and_update();
            match ctl.gateway_peers() {
                Ok(wanted) => {
                    sync(&shell, &mut peers, wanted);
                    ctl.gateway_applied(revision);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read the peer set; keeping the current one")
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
            }
        }
        drop(shell);
        tracing::info!("embedded gateway stopped");
    }))
}

/// Makes the node's peers equal to `wanted`.
fn sync(
    shell: &Shell,
    current: &mut HashMap<String, (PeerId, GatewayPeer)>,
    wanted: Vec<GatewayPeer>,
) {
    let mut node = shell.node();
    let wanted: HashMap<String, GatewayPeer> = wanted
        .into_iter()
        .map(|p| (p.device_id.clone(), p))
        .collect();
    current.retain(|device_id, (id, _)| {
        let keep = wanted.contains_key(device_id);
        if !keep {
            node.remove_peer(*id);
            tracing::info!(device_id, "peer removed");
        }
        keep
    });
    for (device_id, peer) in wanted {
        if current
            .get(&device_id)
            .is_some_and(|(_, known)| *known == peer)
        {
            continue;
        }
        let id = node.upsert_peer(PeerConfig {
            public_key: peer.public_key,
            allowed_ips: peer.allowed_ips.clone(),
            endpoint: None,
            persistent_keepalive: None,
            filter: Some(Filter::new(
                peer.destinations.iter().map(crate::policy::rule).collect(),
            )),
        });
        tracing::debug!(device_id, "peer set");
        current.insert(device_id, (id, peer));
    }
}

fn warn_without_forwarding() {
    let forwarding =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|v| v.trim() == "1");
    if !matches!(forwarding, Ok(true)) {
        tracing::warn!(
            "IPv4 forwarding is off: staff will reach the gateway but not the town network. \
             Enable it with `sysctl -w net.ipv4.ip_forward=1` (and in /etc/sysctl.d/ to keep it)"
        );
    }
}

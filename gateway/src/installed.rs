//! The peers installed in a gateway's node, and the node's start.
//!
//! Both kinds of gateway — embedded in `porta-controller serve`, or remote
//! ([`crate::remote`]) — run porta-tunnel's node and IO shell
//! ([`start_shell`]) and apply the same stream of [`Update`]s with
//! [`InstalledPeers`]. Peers are added, changed in place (sessions survive
//! policy changes) and removed (cutting their sessions) one by one; the
//! others are untouched. Each peer's filter is built from its destinations
//! ([`crate::destination`]) here: the gateway is the security boundary.
//! What the node sees becomes connection events ([`crate::sessions`]);
//! [`SessionFile`] keeps the open ones on disk so that a killed gateway
//! ends them at its next start.

use crate::event::GatewayEvent;
use crate::peer::{GatewayPeer, PeerChange, Update};
use crate::sessions;
use ipnet::IpNet;
use porta_tunnel::filter::{Filter, Rule};
use porta_tunnel::keys::PrivateKey;
use porta_tunnel::shell::{Datapath, Shell, ShellConfig};
use porta_tunnel::{Node, PeerConfig, PeerId};
use sessions::SessionTracker;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The default time without traffic after which a session ends.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(180);

/// How often a gateway turns what its node saw into connection events.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// Starts a gateway's node and shell: its TUN interface with `addresses`,
/// and UDP on `port` on every address; sessions end after `idle`.
pub fn start_shell(
    key: &PrivateKey,
    interface: &str,
    addresses: Vec<IpNet>,
    mtu: u16,
    port: u16,
    idle: Duration,
) -> Result<Shell, porta_tunnel::shell::ShellError> {
    warn_without_forwarding();
    Shell::start(
        Node::new(key, idle),
        ShellConfig {
            interface: interface.to_owned(),
            addresses,
            mtu,
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            routes: Vec::new(),
            datapath: Datapath::from_env(),
        },
    )
}

/// A gateway's open sessions on disk (`open-sessions.json` in its data
/// directory), so that a gateway that was killed ends them at its next
/// start with their last activity and bytes. Rewritten whenever they
/// changed, which the gateway looks at once a second: a kill loses at
/// most that second (a small file, replaced atomically; a busy gateway
/// writes it every second).
pub struct SessionFile {
    path: std::path::PathBuf,
    saved: Vec<sessions::SavedSession>,
}

impl SessionFile {
    /// The file in `data`, and the `session_end` events (reason
    /// `gateway_restart`) for what the last run left open; the file is
    /// emptied only once the caller has kept those events.
    pub fn open(data: &std::path::Path) -> anyhow::Result<(Self, Vec<GatewayEvent>)> {
        let path = data.join("open-sessions.json");
        let left_open: Vec<sessions::SavedSession> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::error!(%error, path = %path.display(), "the saved open sessions are damaged; they stay open in the log");
                Vec::new()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(anyhow::Error::new(error).context(format!("reading {}", path.display()))),
        };
        if !left_open.is_empty() {
            tracing::warn!(
                sessions = left_open.len(),
                "ending the sessions the last run left open (it did not stop cleanly)"
            );
        }
        let events = sessions::ended_by_restart(&left_open);
        Ok((
            Self {
                path,
                saved: left_open,
            },
            events,
        ))
    }

    /// Saves `open` if it differs from what is saved.
    pub fn save(&mut self, open: Vec<sessions::SavedSession>) -> anyhow::Result<()> {
        if open == self.saved {
            return Ok(());
        }
        porta_proto::files::replace_private(&self.path, &serde_json::to_vec(&open)?)?;
        self.saved = open;
        Ok(())
    }
}

/// The peers installed in a gateway's node, by device, and their sessions.
#[derive(Default)]
pub struct InstalledPeers {
    by_device: HashMap<String, (PeerId, GatewayPeer)>,
    by_peer: HashMap<PeerId, String>,
    sessions: SessionTracker,
}

impl InstalledPeers {
    /// Turns the node's queued events into connection events (`now`: Unix
    /// seconds).
    pub fn observe(&mut self, node: &mut Node, now: u64) {
        let by_peer = &self.by_peer;
        self.sessions
            .observe(node, |peer| by_peer.get(&peer).cloned(), now);
    }

    /// The connection events produced since the last call.
    pub fn take_events(&mut self) -> Vec<GatewayEvent> {
        self.sessions.take()
    }

    /// The open sessions, to save for [`sessions::ended_by_restart`].
    pub fn open_sessions(&self, node: &Node) -> Vec<sessions::SavedSession> {
        self.sessions.open_sessions(node)
    }

    /// How many sessions are open now.
    pub fn sessions_open(&self) -> usize {
        self.sessions.open_count()
    }

    /// Ends every open session: the gateway is stopping.
    pub fn shutdown(&mut self, node: &mut Node, now: u64) {
        self.observe(node, now);
        self.sessions.end_all(node, now);
    }

    /// Applies one update to `node` (ending the sessions of peers it
    /// removes). Returns the revision an [`Update::End`] carries, for the
    /// caller to keep and acknowledge.
    pub fn apply(&mut self, node: &mut Node, update: Update, now: u64) -> Option<u64> {
        match update {
            Update::Snapshot(peers) => {
                let wanted: HashMap<String, GatewayPeer> = peers
                    .into_iter()
                    .map(|p| (p.device_id.clone(), p))
                    .collect();
                let gone: Vec<String> = self
                    .by_device
                    .keys()
                    .filter(|d| !wanted.contains_key(*d))
                    .cloned()
                    .collect();
                for device_id in gone {
                    self.remove(node, &device_id, now);
                }
                for peer in wanted.into_values() {
                    self.upsert(node, peer);
                }
                None
            }
            Update::Change(PeerChange::Upsert(peer)) => {
                self.upsert(node, peer);
                None
            }
            Update::Change(PeerChange::Removed { device_id, .. }) => {
                self.remove(node, &device_id, now);
                None
            }
            Update::End(revision) => Some(revision),
        }
    }

    /// The devices whose tunnel is live (a handshake within
    /// [`crate::live_tunnels::LIVE_FOR`]) and where they are, by device.
    pub fn live_tunnels(&self, node: &Node) -> Vec<crate::live_tunnels::LiveTunnel> {
        let now = std::time::Instant::now();
        let mut live: Vec<_> = self
            .by_device
            .iter()
            .filter_map(|(device_id, (id, _))| {
                let stats = node.stats(*id)?;
                let live = now.saturating_duration_since(stats.last_handshake?)
                    < crate::live_tunnels::LIVE_FOR;
                live.then_some(crate::live_tunnels::LiveTunnel {
                    device_id: device_id.clone(),
                    endpoint: stats.endpoint?,
                })
            })
            .collect();
        live.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        live
    }

    /// Points the installed peers among `tunnels` at their last known
    /// addresses, for the handshakes the gateway then starts itself
    /// (`Shell::initiate_handshakes`). Returns how many.
    pub fn reach(&self, node: &mut Node, tunnels: &[crate::live_tunnels::LiveTunnel]) -> usize {
        let mut reached = 0;
        for tunnel in tunnels {
            let Some((id, _)) = self.by_device.get(&tunnel.device_id) else {
                continue;
            };
            let Some(mut config) = node.peer_config(*id).cloned() else {
                continue;
            };
            config.endpoint = Some(tunnel.endpoint);
            node.upsert_peer(config);
            reached += 1;
        }
        reached
    }

    /// The installed peers.
    pub fn peers(&self) -> impl Iterator<Item = &GatewayPeer> {
        self.by_device.values().map(|(_, peer)| peer)
    }

    /// How many peers are installed.
    pub fn len(&self) -> usize {
        self.by_device.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }

    fn upsert(&mut self, node: &mut Node, peer: GatewayPeer) {
        if self
            .by_device
            .get(&peer.device_id)
            .is_some_and(|(_, known)| *known == peer)
        {
            return;
        }
        let id = node.upsert_peer(PeerConfig {
            public_key: peer.public_key,
            allowed_ips: peer.allowed_ips.clone(),
            endpoint: None,
            persistent_keepalive: None,
            filter: Some(Filter::new(
                peer.destinations.iter().map(Rule::from).collect(),
            )),
        });
        tracing::debug!(device_id = %peer.device_id, "peer set");
        self.by_peer.insert(id, peer.device_id.clone());
        self.by_device.insert(peer.device_id.clone(), (id, peer));
    }

    fn remove(&mut self, node: &mut Node, device_id: &str, now: u64) {
        if let Some((id, _)) = self.by_device.remove(device_id) {
            // What the node saw of it so far, then its session's end.
            self.observe(node, now);
            if let Some(stats) = node.stats(id) {
                self.sessions
                    .end_now(id, &stats, crate::event::EndReason::Revoked, now);
            }
            self.by_peer.remove(&id);
            node.remove_peer(id);
            tracing::info!(device_id, "peer removed");
        }
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

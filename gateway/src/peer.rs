//! A gateway's peers: devices as the gateway installs them, the changes
//! it applies, and their wire form in `Gateway.WatchPeers`.
//!
//! The controller's peer journal produces [`Update`]s; the embedded gateway
//! takes them in-process and a remote gateway receives them as
//! `porta.v1.PeerUpdate` messages ([`Update::to_pb`], [`Update::from_pb`]).
//! A gateway only ever receives its own peers, so the gateway's name does
//! not travel: the receiver fills it in.

use crate::destination::Destination;
use porta_proto::{PublicKey, pb};

/// A device as a gateway peer.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayPeer {
    /// The device.
    pub device_id: String,
    /// The gateway (by name) the device connects through.
    pub gateway: String,
    /// Its WireGuard key.
    pub public_key: PublicKey,
    /// Its tunnel addresses.
    pub allowed_ips: Vec<ipnet::IpNet>,
    /// What it may reach.
    pub destinations: Vec<Destination>,
}

/// One gateway-visible change.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerChange {
    /// A device to add, or whose key, addresses or filter changed.
    Upsert(GatewayPeer),
    /// A device to drop (revoked, its user disabled).
    Removed {
        /// The device.
        device_id: String,
        /// The gateway that had it.
        gateway: String,
    },
}

impl PeerChange {
    /// The gateway the change is for.
    pub fn gateway(&self) -> &str {
        match self {
            PeerChange::Upsert(peer) => &peer.gateway,
            PeerChange::Removed { gateway, .. } => gateway,
        }
    }
}

/// What one gateway must apply, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// Replace the whole peer set.
    Snapshot(Vec<GatewayPeer>),
    /// One change.
    Change(PeerChange),
    /// Everything up to this revision has been sent.
    End(u64),
}

impl Update {
    /// The update as it travels in `Gateway.WatchPeers`, stamped with
    /// `revision` (an [`Update::End`] carries its own); its history mark is
    /// the sender's to set.
    pub fn to_pb(self, revision: u64) -> pb::PeerUpdate {
        use pb::peer_update::Update as U;
        let (revision, update) = match self {
            Update::Snapshot(peers) => (
                revision,
                U::Snapshot(pb::PeerSnapshot {
                    peers: peers.into_iter().map(pb::Peer::from).collect(),
                }),
            ),
            Update::Change(PeerChange::Upsert(peer)) => (revision, U::Upsert(peer.into())),
            Update::Change(PeerChange::Removed { device_id, .. }) => {
                (revision, U::Removed(pb::PeerRemoved { device_id }))
            }
            Update::End(revision) => (revision, U::End(pb::RevisionEnd {})),
        };
        pb::PeerUpdate {
            revision,
            update: Some(update),
            history: 0,
            replaces_history: false,
        }
    }

    /// An update received by `gateway`. Peers that fail their checks are
    /// left out and logged rather than stopping the gateway; `None` for a
    /// message without an update.
    pub fn from_pb(message: pb::PeerUpdate, gateway: &str) -> Option<Update> {
        use pb::peer_update::Update as U;
        let parse = |peer| {
            GatewayPeer::from_pb(peer, gateway)
                .inspect_err(|error| tracing::error!(%error, "ignoring a peer the controller sent"))
                .ok()
        };
        Some(match message.update? {
            U::Snapshot(snapshot) => {
                Update::Snapshot(snapshot.peers.into_iter().filter_map(parse).collect())
            }
            U::Upsert(peer) => Update::Change(PeerChange::Upsert(parse(peer)?)),
            U::Removed(removed) => Update::Change(PeerChange::Removed {
                device_id: removed.device_id,
                gateway: gateway.to_owned(),
            }),
            U::End(_) => Update::End(message.revision),
        })
    }
}

impl From<GatewayPeer> for pb::Peer {
    /// A peer on the wire (without its gateway's name).
    fn from(peer: GatewayPeer) -> Self {
        pb::Peer {
            device_id: peer.device_id,
            public_key: peer.public_key.to_base64(),
            allowed_ips: peer.allowed_ips.iter().map(ToString::to_string).collect(),
            destinations: peer
                .destinations
                .into_iter()
                .map(pb::Destination::from)
                .collect(),
        }
    }
}

/// Why a peer from the controller could not be used.
#[derive(Debug, thiserror::Error)]
#[error("peer {device_id}: {problem}")]
pub struct BadPeer {
    /// The device.
    pub device_id: String,
    /// What is wrong.
    pub problem: String,
}

impl GatewayPeer {
    /// A peer received by `gateway`, checked field by field.
    pub fn from_pb(peer: pb::Peer, gateway: &str) -> Result<GatewayPeer, BadPeer> {
        let bad = |problem: String| BadPeer {
            device_id: peer.device_id.clone(),
            problem,
        };
        let public_key = peer
            .public_key
            .parse()
            .map_err(|e| bad(format!("public key: {e}")))?;
        let allowed_ips = peer
            .allowed_ips
            .iter()
            .map(|a| a.parse().map_err(|e| bad(format!("allowed IP {a:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        let destinations = peer
            .destinations
            .iter()
            .map(|d| Destination::try_from(d).map_err(|e| bad(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(GatewayPeer {
            device_id: peer.device_id.clone(),
            gateway: gateway.to_owned(),
            public_key,
            allowed_ips,
            destinations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::{PortRange, Protocol};

    fn peer(device: &str) -> GatewayPeer {
        GatewayPeer {
            device_id: device.into(),
            gateway: "branch".into(),
            public_key: PublicKey([7; 32]),
            allowed_ips: vec!["10.77.0.9/32".parse().expect("an address")],
            destinations: vec![Destination {
                cidr: "10.1.40.0/24".parse().expect("a prefix"),
                protocol: Protocol::Tcp,
                ports: vec![PortRange {
                    first: 3389,
                    last: 3389,
                }],
            }],
        }
    }

    #[test]
    fn updates_survive_the_wire_and_the_receiver_names_its_gateway() {
        for update in [
            Update::Snapshot(vec![peer("d1"), peer("d2")]),
            Update::Change(PeerChange::Upsert(peer("d3"))),
            Update::Change(PeerChange::Removed {
                device_id: "d4".into(),
                gateway: "branch".into(),
            }),
            Update::End(42),
        ] {
            let wire = update.clone().to_pb(42);
            assert_eq!(wire.revision, 42);
            assert_eq!(Update::from_pb(wire, "branch"), Some(update));
        }
    }

    #[test]
    fn a_damaged_peer_is_left_out_of_a_snapshot_and_the_rest_kept() {
        let mut damaged = pb::Peer::from(peer("bad"));
        damaged.public_key = "not a key".into();
        let wire = pb::PeerUpdate {
            revision: 5,
            update: Some(pb::peer_update::Update::Snapshot(pb::PeerSnapshot {
                peers: vec![damaged, peer("good").into()],
            })),
            ..Default::default()
        };
        assert_eq!(
            Update::from_pb(wire, "branch"),
            Some(Update::Snapshot(vec![peer("good")]))
        );
    }
}

//! Turning what a gateway's node sees into connection events (sans-IO).
//!
//! A session starts with the first completed handshake after the device was
//! idle (or new), moves when the device's datagrams come from another
//! address (roaming), and ends when the device stays idle past the
//! threshold, when its peer is removed (revoked, or its user disabled) or
//! when the gateway shuts down. Byte counts are the session's: the node's
//! counters at the event minus their value when the previous session of
//! that peer ended (zero for its first), so traffic between the handshake
//! and the next look at the node still counts.

use crate::logs::GatewayEvent;
use porta_tunnel::node::{Event, PeerStats};
use porta_tunnel::{Node, PeerId};
use std::collections::HashMap;

#[derive(Clone, Debug)]
struct Session {
    device_id: String,
    started: u64,
    endpoint: String,
    rx_base: u64,
    tx_base: u64,
}

/// Open sessions by peer, and the events not yet taken.
#[derive(Default)]
pub struct SessionTracker {
    open: HashMap<PeerId, Session>,
    /// Counters when each peer's last session ended.
    ended_at: HashMap<PeerId, (u64, u64)>,
    events: Vec<GatewayEvent>,
}

/// Why a session ended.
pub mod reason {
    /// No traffic for the idle threshold.
    pub const IDLE: &str = "idle";
    /// The device's peer was removed: revoked, or its user disabled.
    pub const REVOKED: &str = "revoked";
    /// The gateway stopped.
    pub const SHUTDOWN: &str = "gateway shutdown";
}

fn address(stats: &PeerStats) -> String {
    stats.endpoint.map(|e| e.to_string()).unwrap_or_default()
}

fn new_event_id() -> String {
    format!("{}{}", crate::secret::new_id(), crate::secret::new_id())
}

impl SessionTracker {
    /// Feeds every event the node has queued. `device_of` names a peer's
    /// device; `now` is Unix seconds.
    pub fn observe(
        &mut self,
        node: &mut Node,
        device_of: impl Fn(PeerId) -> Option<String>,
        now: u64,
    ) {
        while let Some(event) = node.poll_event() {
            match event {
                Event::HandshakeCompleted { peer } => {
                    if self.open.contains_key(&peer) {
                        continue; // a rekey within the session
                    }
                    let (Some(device_id), Some(stats)) = (device_of(peer), node.stats(peer)) else {
                        continue;
                    };
                    let (rx_base, tx_base) = self.ended_at.get(&peer).copied().unwrap_or((0, 0));
                    let session = Session {
                        device_id,
                        started: now,
                        endpoint: address(&stats),
                        rx_base,
                        tx_base,
                    };
                    self.push(&session, "session_start", now, &stats, String::new(), "");
                    self.open.insert(peer, session);
                }
                Event::EndpointChanged { peer, from, to } => {
                    let Some(session) = self.open.get_mut(&peer) else {
                        continue; // the session start will carry it
                    };
                    let previous = from
                        .map(|f| f.to_string())
                        .unwrap_or_else(|| session.endpoint.clone());
                    session.endpoint = to.to_string();
                    let session = session.clone();
                    if let Some(stats) = node.stats(peer) {
                        self.push(&session, "endpoint_change", now, &stats, previous, "");
                    }
                }
                Event::Idle { peer } => {
                    if let Some(stats) = node.stats(peer) {
                        self.end(peer, &stats, reason::IDLE, now);
                    }
                }
            }
        }
    }

    /// Ends `peer`'s session (if open) with `why`; `stats` are its last.
    pub fn end(&mut self, peer: PeerId, stats: &PeerStats, why: &str, now: u64) {
        if let Some(session) = self.open.remove(&peer) {
            self.push(&session, "session_end", now, stats, String::new(), why);
            self.ended_at.insert(peer, (stats.rx_bytes, stats.tx_bytes));
        }
    }

    /// Ends every open session (the gateway is stopping).
    pub fn end_all(&mut self, node: &Node, now: u64) {
        let peers: Vec<PeerId> = self.open.keys().copied().collect();
        for peer in peers {
            let stats = node.stats(peer).unwrap_or_default();
            self.end(peer, &stats, reason::SHUTDOWN, now);
        }
    }

    /// The events produced since the last call, oldest first.
    pub fn take(&mut self) -> Vec<GatewayEvent> {
        std::mem::take(&mut self.events)
    }

    fn push(
        &mut self,
        session: &Session,
        kind: &str,
        now: u64,
        stats: &PeerStats,
        previous_public_address: String,
        why: &str,
    ) {
        self.events.push(GatewayEvent {
            event_id: new_event_id(),
            kind: kind.to_owned(),
            at: now,
            device_id: session.device_id.clone(),
            public_address: if kind == "session_end" {
                session.endpoint.clone()
            } else {
                address(stats)
            },
            previous_public_address,
            rx_bytes: stats.rx_bytes.saturating_sub(session.rx_base),
            tx_bytes: stats.tx_bytes.saturating_sub(session.tx_base),
            reason: why.to_owned(),
            session_start: session.started,
        });
    }
}

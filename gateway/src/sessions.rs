//! Turning what a gateway's node sees into connection events (sans-IO).
//!
//! A session is a stretch of use, not of connectivity: it starts with the
//! first data packet from a device that was idle (or new) — handshakes and
//! keepalives alone start nothing, and do not keep a session open — moves
//! when the device's datagrams come from another address (roaming), and
//! ends when no data came from the device for the idle threshold (stamped
//! at its last data: the timer only decides that it ended), when its
//! peer is removed (revoked, or its user disabled) or when the gateway
//! shuts down. Byte counts are exactly the session's: the node's counters
//! at its last data packet minus their value just before its first.
//!
//! Open sessions can be saved ([`SessionTracker::open_sessions`]) with the
//! time of their last data, so that a gateway that was killed can end them
//! at its next start ([`ended_by_restart`], reason `gateway_restart`, at
//! the last activity it saved) instead of leaving them open for ever.

use crate::event::{EndReason, EventKind, GatewayEvent};
use porta_tunnel::node::{Event, PeerStats};
use porta_tunnel::{Node, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;

#[derive(Clone, Debug)]
struct Session {
    device_id: String,
    started: u64,
    endpoint: String,
    rx_base: u64,
    tx_base: u64,
    /// Unix seconds of the last data seen from the device.
    last_activity: u64,
    /// The node's `last_data` when it was last looked at.
    last_data_seen: Option<Instant>,
}

/// An open session as a gateway saves it, to end it after a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    /// The device.
    pub device_id: String,
    /// Unix seconds it started.
    pub started: u64,
    /// ip:port it came from.
    pub endpoint: String,
    /// Unix seconds of its last data.
    pub last_activity: u64,
    /// Its bytes so far, from the device.
    pub rx_bytes: u64,
    /// Its bytes so far, to the device.
    pub tx_bytes: u64,
}

/// Open sessions by peer, and the events not yet taken.
#[derive(Default)]
pub struct SessionTracker {
    open: HashMap<PeerId, Session>,
    events: Vec<GatewayEvent>,
}

fn address(stats: &PeerStats) -> String {
    stats.endpoint.map(|e| e.to_string()).unwrap_or_default()
}

/// A random event id (128 bits, hex): the controller skips ids it has, so
/// a resent event counts once.
fn new_event_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl SessionTracker {
    /// How many sessions are open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

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
                Event::HandshakeCompleted { .. } => {} // not use by itself
                Event::Active {
                    peer,
                    rx_bytes,
                    tx_bytes,
                } => {
                    if self.open.contains_key(&peer) {
                        continue;
                    }
                    let (Some(device_id), Some(stats)) = (device_of(peer), node.stats(peer)) else {
                        continue;
                    };
                    let session = Session {
                        device_id,
                        started: now,
                        endpoint: address(&stats),
                        rx_base: rx_bytes,
                        tx_base: tx_bytes,
                        last_activity: now,
                        last_data_seen: stats.last_data,
                    };
                    self.push(
                        &session,
                        EventKind::SessionStart,
                        now,
                        (rx_bytes, tx_bytes),
                        String::new(),
                        None,
                    );
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
                        let counters = (stats.rx_bytes, stats.tx_bytes);
                        self.push(
                            &session,
                            EventKind::EndpointChange,
                            now,
                            counters,
                            previous,
                            None,
                        );
                    }
                }
                // The idle timer only decides that the session ended; it
                // ended at its last data.
                Event::Idle {
                    peer,
                    rx_bytes,
                    tx_bytes,
                } => {
                    let at = self
                        .open
                        .get(&peer)
                        .map_or(now, |s| Self::last_data(peer, s, node, now));
                    self.end(peer, (rx_bytes, tx_bytes), EndReason::Idle, at);
                }
            }
        }
        // Note when each open session last carried data.
        let noted: Vec<(PeerId, u64)> = self
            .open
            .iter()
            .map(|(&peer, session)| (peer, Self::last_data(peer, session, node, now)))
            .collect();
        for (peer, at) in noted {
            if let Some(session) = self.open.get_mut(&peer) {
                session.last_data_seen = node.stats(peer).and_then(|s| s.last_data);
                session.last_activity = at;
            }
        }
    }

    /// Unix seconds of `session`'s last data: what was noted, or — if data
    /// came since it was last looked at — when the node saw it (its
    /// monotonic clock, measured back from `now`).
    fn last_data(peer: PeerId, session: &Session, node: &Node, now: u64) -> u64 {
        match node.stats(peer).and_then(|s| s.last_data) {
            Some(last) if Some(last) != session.last_data_seen => now
                .saturating_sub(last.elapsed().as_secs())
                .max(session.last_activity),
            _ => session.last_activity,
        }
    }

    /// Ends `peer`'s session (if open) with `why`; `counters` are the
    /// node's `(rx_bytes, tx_bytes)` at its end.
    pub fn end(&mut self, peer: PeerId, counters: (u64, u64), why: EndReason, now: u64) {
        if let Some(session) = self.open.remove(&peer) {
            self.push(
                &session,
                EventKind::SessionEnd,
                now,
                counters,
                String::new(),
                Some(why),
            );
        }
    }

    /// Ends `peer`'s session with its current counters (removed peers).
    pub fn end_now(&mut self, peer: PeerId, stats: &PeerStats, why: EndReason, now: u64) {
        self.end(peer, (stats.rx_bytes, stats.tx_bytes), why, now);
    }

    /// Ends every open session (the gateway is stopping).
    pub fn end_all(&mut self, node: &Node, now: u64) {
        let peers: Vec<PeerId> = self.open.keys().copied().collect();
        for peer in peers {
            let stats = node.stats(peer).unwrap_or_default();
            self.end_now(peer, &stats, EndReason::Shutdown, now);
        }
    }

    /// The open sessions, as a gateway saves them; `node` gives their bytes.
    pub fn open_sessions(&self, node: &Node) -> Vec<SavedSession> {
        let mut saved: Vec<SavedSession> = self
            .open
            .iter()
            .map(|(&peer, s)| {
                let stats = node.stats(peer).unwrap_or_default();
                SavedSession {
                    device_id: s.device_id.clone(),
                    started: s.started,
                    endpoint: s.endpoint.clone(),
                    last_activity: s.last_activity,
                    rx_bytes: stats.rx_bytes.saturating_sub(s.rx_base),
                    tx_bytes: stats.tx_bytes.saturating_sub(s.tx_base),
                }
            })
            .collect();
        saved.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        saved
    }

    /// The events produced since the last call, oldest first.
    pub fn take(&mut self) -> Vec<GatewayEvent> {
        std::mem::take(&mut self.events)
    }

    fn push(
        &mut self,
        session: &Session,
        kind: EventKind,
        now: u64,
        (rx_bytes, tx_bytes): (u64, u64),
        previous_public_address: String,
        why: Option<EndReason>,
    ) {
        self.events.push(GatewayEvent {
            event_id: new_event_id(),
            kind,
            at: now,
            device_id: session.device_id.clone(),
            public_address: session.endpoint.clone(),
            previous_public_address,
            rx_bytes: rx_bytes.saturating_sub(session.rx_base),
            tx_bytes: tx_bytes.saturating_sub(session.tx_base),
            reason: why,
            session_start: session.started,
        });
    }
}

/// The `session_end` events for sessions a gateway saved but never ended
/// (it was killed): each ends at its last activity, with its last bytes.
pub fn ended_by_restart(saved: &[SavedSession]) -> Vec<GatewayEvent> {
    saved
        .iter()
        .map(|s| GatewayEvent {
            event_id: new_event_id(),
            kind: EventKind::SessionEnd,
            at: s.last_activity.max(s.started),
            device_id: s.device_id.clone(),
            public_address: s.endpoint.clone(),
            previous_public_address: String::new(),
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            reason: Some(EndReason::Restart),
            session_start: s.started,
        })
        .collect()
}

//! The sans-IO WireGuard node: a peer table over boringtun's `noise::Tunn`.
//!
//! ```text
//!            handle_tun_packet(packet)            handle_datagram(from, datagram, now)
//!   TUN ─────────────▶ longest-prefix match ─▶ Tunn::encapsulate ─▶ Sink::send_datagram ─▶ UDP
//!   UDP ─▶ rate limit ─▶ route by receiver index / handshake key ─▶ Tunn::decapsulate
//!            ─▶ source must be the peer's allowed IP ─▶ peer filter ─▶ Sink::deliver_packet ─▶ TUN
//!   handle_timeout(now) ─▶ Tunn::update_timers (keepalives, rekeys) and idle detection
//! ```
//!
//! No sockets, no TUN device, no async runtime: bytes and the current time
//! go in, bytes come out through a [`Sink`], and what happened is kept as
//! [`Event`]s and per-peer [`PeerStats`]. The IO shell moves packets; tests
//! wire two nodes together in memory.
//!
//! Time: Porta's own timers (idle detection, rate-limiter reset) use the
//! `now` passed in. boringtun 0.7 reads the clock inside `Tunn` for its
//! handshake and rekey timers, which cannot be injected from outside.

use crate::filter::{Filter, inspect};
use crate::keys::{PrivateKey, PublicKey};
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519;
use ip_network::IpNetwork;
use ip_network_table::IpNetworkTable;
use ipnet::IpNet;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A peer's handle in a node (also its boringtun session index).
pub type PeerId = u32;

/// Handshakes per second a node answers before demanding cookies.
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// Largest datagram or packet handled (WireGuard overhead included).
const MAX_PACKET: usize = 65_535 + 32;

/// How a peer is configured.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Its WireGuard public key.
    pub public_key: PublicKey,
    /// Tunnel addresses it may use as source, and that route to it.
    pub allowed_ips: Vec<IpNet>,
    /// Where to send to until it speaks (it roams freely afterwards).
    pub endpoint: Option<SocketAddr>,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
    /// What its packets may reach; `None` lets everything through (a
    /// client's view of its gateway).
    pub filter: Option<Filter>,
}

/// Counters and state of one peer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerStats {
    /// Where its datagrams come from now.
    pub endpoint: Option<SocketAddr>,
    /// When the current session's handshake completed.
    pub last_handshake: Option<Instant>,
    /// Bytes of WireGuard datagrams received.
    pub rx_bytes: u64,
    /// Bytes of WireGuard datagrams sent.
    pub tx_bytes: u64,
    /// When data (not keepalives or handshakes) last came from it, while
    /// active.
    pub last_data: Option<Instant>,
    /// Since when data sent to it has gone unanswered: set by the first
    /// data packet sent (or queued) after the last datagram it sent that
    /// authenticated, cleared by the next one. A live WireGuard peer that
    /// receives data answers within 10 s (with data, or its passive
    /// keepalive), so an old time here means it does not answer.
    pub unanswered_since: Option<Instant>,
    /// Packets dropped: destination not allowed by its filter.
    pub dropped_filtered: u64,
    /// Packets dropped: source address not one of its allowed IPs.
    pub dropped_spoofed: u64,
}

/// Something that happened that the shell or the control plane cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A handshake completed: a session is up (or was renewed).
    HandshakeCompleted {
        /// The peer.
        peer: PeerId,
    },
    /// The peer's datagrams now come from another address (roaming).
    EndpointChanged {
        /// The peer.
        peer: PeerId,
        /// Where they came from before, if known.
        from: Option<SocketAddr>,
        /// Where they come from now.
        to: SocketAddr,
    },
    /// A data packet (not a keepalive or handshake) arrived from a peer
    /// that had sent none for the idle threshold (or ever): its activity
    /// begins. The counters are the peer's just before that packet.
    Active {
        /// The peer.
        peer: PeerId,
        /// `rx_bytes` before the packet.
        rx_bytes: u64,
        /// `tx_bytes` before the packet.
        tx_bytes: u64,
    },
    /// An active peer sent no data for the idle threshold (keepalives and
    /// handshakes do not count). The counters are the peer's as of its
    /// last data packet in either direction.
    Idle {
        /// The peer.
        peer: PeerId,
        /// `rx_bytes` after its last data packet.
        rx_bytes: u64,
        /// `tx_bytes` after its last data packet.
        tx_bytes: u64,
    },
}

/// Why an outgoing packet or incoming datagram went nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Not an IP packet we can read.
    Malformed,
    /// No peer's allowed IPs cover the destination.
    NoRoute,
    /// The peer has never been heard from and has no configured endpoint.
    NoEndpoint,
    /// The datagram names no known peer (or a removed one).
    UnknownPeer,
    /// The packet's source is not one of the sending peer's allowed IPs.
    Spoofed,
    /// The peer's filter does not allow the destination.
    Filtered,
    /// boringtun rejected the datagram (bad MAC, replay, rate limit…).
    Rejected,
    /// A handshake initiation over its source's allowance
    /// ([`crate::throttle`]).
    Throttled,
}

impl Drop {
    /// Every reason, in declaration order (the index of [`NodeCounters::dropped`]).
    pub const ALL: [Drop; 8] = [
        Drop::Malformed,
        Drop::NoRoute,
        Drop::NoEndpoint,
        Drop::UnknownPeer,
        Drop::Spoofed,
        Drop::Filtered,
        Drop::Rejected,
        Drop::Throttled,
    ];

    /// A short snake_case name, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::NoRoute => "no_route",
            Drop::NoEndpoint => "no_endpoint",
            Drop::UnknownPeer => "unknown_peer",
            Drop::Spoofed => "spoofed",
            Drop::Filtered => "filtered",
            Drop::Rejected => "rejected",
            Drop::Throttled => "throttled",
        }
    }
}

/// Node-wide counters since the node started, for monitoring: they never
/// go down (removing a peer keeps what it added), and they name no peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Handshakes that completed (a session began or was renewed).
    pub handshakes_completed: u64,
    /// Handshake messages refused: a bad MAC or key, or an unknown peer.
    pub handshakes_failed: u64,
    /// Cookie replies sent to initiators while under load.
    pub cookie_replies_sent: u64,
    /// UDP datagrams handed to the node.
    pub datagrams_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// UDP datagrams the node sent (data, handshakes, keepalives, cookies).
    pub datagrams_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Packets and datagrams dropped, by [`Drop`] reason (indexed as
    /// [`Drop::ALL`]).
    pub dropped: [u64; Drop::ALL.len()],
}

impl NodeCounters {
    /// Drops for one reason.
    pub fn dropped_for(&self, reason: Drop) -> u64 {
        self.dropped[reason as usize]
    }
}

/// Where a node's output goes: implemented by the IO shell (sockets and a
/// TUN device) and by tests (queues).
pub trait Sink {
    /// Send `datagram` to `to` over UDP.
    fn send_datagram(&mut self, to: SocketAddr, datagram: &[u8]);
    /// Write a decrypted, allowed IP packet to the tunnel device.
    fn deliver_packet(&mut self, packet: &[u8]);
}

struct Peer {
    config: PeerConfig,
    /// boringtun's session state — most of a peer's memory — made when
    /// the peer first needs it (its handshake arrives, a packet goes to
    /// it) and dropped when its session expires, so that the thousands of
    /// installed peers that are not connected cost little. A peer with a
    /// persistent keepalive (a client's gateway) keeps one always, for its
    /// timers.
    tunn: Option<Box<Tunn>>,
    stats: PeerStats,
    /// Between [`Event::Active`] and [`Event::Idle`].
    active: bool,
    /// Counters after its last data packet.
    counters_at_last_data: (u64, u64),
}

/// A WireGuard node: one private key, many peers.
pub struct Node {
    private: x25519::StaticSecret,
    public: x25519::PublicKey,
    rate_limiter: Arc<RateLimiter>,
    peers: HashMap<PeerId, Peer>,
    by_key: HashMap<[u8; 32], PeerId>,
    routes: IpNetworkTable<PeerId>,
    next_id: PeerId,
    events: VecDeque<Event>,
    idle_after: Duration,
    last_rate_reset: Option<Instant>,
    /// The time the shell last gave (timers and datagrams come with one;
    /// packets from the TUN device do not).
    last_now: Option<Instant>,
    throttle: crate::throttle::HandshakeThrottle,
    scratch: Box<[u8]>,
    counters: NodeCounters,
}

impl Peer {
    /// Its session state, made now if it has none.
    fn session(
        &mut self,
        private: &x25519::StaticSecret,
        limiter: &Arc<RateLimiter>,
        id: PeerId,
    ) -> &mut Tunn {
        let config = &self.config;
        self.tunn
            .get_or_insert_with(|| new_session(private, limiter, config, id))
    }
}

/// A boringtun session for the peer `config` describes, under index `id`.
fn new_session(
    private: &x25519::StaticSecret,
    limiter: &Arc<RateLimiter>,
    config: &PeerConfig,
    id: PeerId,
) -> Box<Tunn> {
    Box::new(Tunn::new(
        private.clone(),
        x25519::PublicKey::from(config.public_key.0),
        None,
        config.persistent_keepalive,
        id,
        Some(limiter.clone()),
    ))
}

impl Node {
    /// A node with `key` and no peers. An active peer is reported
    /// [`Event::Idle`] after `idle_after` without data.
    pub fn new(key: &PrivateKey, idle_after: Duration) -> Self {
        let private = key.as_x25519().clone();
        let public = x25519::PublicKey::from(&private);
        Self {
            rate_limiter: Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT)),
            private,
            public,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            routes: IpNetworkTable::new(),
            next_id: 1,
            events: VecDeque::new(),
            idle_after,
            last_rate_reset: None,
            last_now: None,
            throttle: crate::throttle::HandshakeThrottle::default(),
            scratch: vec![0u8; MAX_PACKET].into_boxed_slice(),
            counters: NodeCounters::default(),
        }
    }

    /// Adds a peer, or updates the one with the same public key in place:
    /// its allowed IPs, filter and keepalive change, its session and
    /// counters stay (a policy change does not cut anyone off). Other
    /// peers are not touched.
    pub fn upsert_peer(&mut self, config: PeerConfig) -> PeerId {
        if let Some(&id) = self.by_key.get(&config.public_key.0) {
            self.update_peer(id, config);
            return id;
        }
        // Ids are 24 bits in boringtun's receiver index; wrap, skipping live ones.
        let mut id = self.next_id;
        while self.peers.contains_key(&id) || id == 0 {
            id = (id + 1) & 0x00ff_ffff;
        }
        self.next_id = (id + 1) & 0x00ff_ffff;
        let tunn = config
            .persistent_keepalive
            .is_some()
            .then(|| new_session(&self.private, &self.rate_limiter, &config, id));
        for net in &config.allowed_ips {
            self.routes.insert(to_network(net), id);
        }
        self.by_key.insert(config.public_key.0, id);
        let stats = PeerStats {
            endpoint: config.endpoint,
            ..PeerStats::default()
        };
        self.peers.insert(
            id,
            Peer {
                config,
                tunn,
                stats,
                active: false,
                counters_at_last_data: (0, 0),
            },
        );
        id
    }

    fn update_peer(&mut self, id: PeerId, config: PeerConfig) {
        // boringtun 0.7 cannot change a session's keepalive: that alone
        // starts a new session.
        let keepalive_changed = self
            .peers
            .get(&id)
            .is_some_and(|p| p.config.persistent_keepalive != config.persistent_keepalive);
        let fresh_session = keepalive_changed.then(|| {
            config
                .persistent_keepalive
                .is_some()
                .then(|| new_session(&self.private, &self.rate_limiter, &config, id))
        });
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        for net in &peer.config.allowed_ips {
            let network = to_network(net);
            if self.routes.exact_match(network) == Some(&id) {
                self.routes.remove(network);
            }
        }
        for net in &config.allowed_ips {
            self.routes.insert(to_network(net), id);
        }
        if peer.stats.endpoint.is_none() {
            peer.stats.endpoint = config.endpoint;
        }
        if let Some(tunn) = fresh_session {
            peer.tunn = tunn;
        }
        peer.config = config;
    }

    /// Removes a peer at once: its session is gone, its datagrams are
    /// dropped as [`Drop::UnknownPeer`], its routes are withdrawn.
    pub fn remove_peer(&mut self, id: PeerId) -> bool {
        let Some(peer) = self.peers.remove(&id) else {
            return false;
        };
        self.by_key.remove(&peer.config.public_key.0);
        for net in &peer.config.allowed_ips {
            let network = to_network(net);
            if self.routes.exact_match(network) == Some(&id) {
                self.routes.remove(network);
            }
        }
        true
    }

    /// The peer with this public key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(&key.0).copied()
    }

    /// Every peer id.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// A peer's configuration.
    pub fn peer_config(&self, id: PeerId) -> Option<&PeerConfig> {
        self.peers.get(&id).map(|p| &p.config)
    }

    /// A peer's counters.
    pub fn stats(&self, id: PeerId) -> Option<PeerStats> {
        self.peers.get(&id).map(|p| p.stats.clone())
    }

    /// The node's own public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.public.to_bytes())
    }

    /// The node-wide counters.
    pub fn counters(&self) -> &NodeCounters {
        &self.counters
    }

    /// The next thing that happened, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// An IP packet read from the TUN device: encrypt it for the peer
    /// whose allowed IPs cover its destination (longest prefix wins).
    pub fn handle_tun_packet(&mut self, packet: &[u8], sink: &mut impl Sink) -> Result<(), Drop> {
        let mut counted = CountingSink::new(sink);
        let outcome = self.encapsulate(packet, &mut counted);
        self.count(counted.sent, &outcome);
        outcome
    }

    fn encapsulate(&mut self, packet: &[u8], sink: &mut impl Sink) -> Result<(), Drop> {
        let dst = Tunn::dst_address(packet).ok_or(Drop::Malformed)?;
        let id = *self.routes.longest_match(dst).ok_or(Drop::NoRoute)?.1;
        let peer = self.peers.get_mut(&id).ok_or(Drop::NoRoute)?;
        let now = self.last_now.unwrap_or_else(Instant::now);
        match peer
            .session(&self.private, &self.rate_limiter, id)
            .encapsulate(packet, &mut self.scratch)
        {
            TunnResult::WriteToNetwork(datagram) => {
                let to = peer.stats.endpoint.ok_or(Drop::NoEndpoint)?;
                peer.stats.unanswered_since.get_or_insert(now);
                peer.stats.tx_bytes += datagram.len() as u64;
                sink.send_datagram(to, datagram);
                // Data to an active peer belongs to its activity (its bytes
                // count); only data from it begins or prolongs activity.
                if peer.active {
                    peer.counters_at_last_data = (peer.stats.rx_bytes, peer.stats.tx_bytes);
                }
                Ok(())
            }
            TunnResult::Done => {
                // Queued until the handshake completes.
                peer.stats.unanswered_since.get_or_insert(now);
                Ok(())
            }
            TunnResult::Err(_) => Err(Drop::Rejected),
            TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..) => Ok(()),
        }
    }

    /// A UDP datagram from `from`: authenticate and decrypt it, check the
    /// inner packet's source and destination, deliver it.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
        sink: &mut impl Sink,
    ) -> Result<(), Drop> {
        self.last_now = Some(now);
        let mut counted = CountingSink::new(sink);
        let outcome = self.receive(from, datagram, now, &mut counted);
        self.counters.datagrams_received += 1;
        self.counters.bytes_received += datagram.len() as u64;
        let handshake = matches!(
            (datagram.first(), datagram.len()),
            (Some(1), 148) | (Some(2), 92)
        );
        if handshake && matches!(outcome, Err(Drop::Rejected | Drop::UnknownPeer)) {
            self.counters.handshakes_failed += 1;
        }
        self.count(counted.sent, &outcome);
        outcome
    }

    /// Adds what one call sent and how it ended to the counters.
    fn count(&mut self, sent: (u64, u64), outcome: &Result<(), Drop>) {
        self.counters.datagrams_sent += sent.0;
        self.counters.bytes_sent += sent.1;
        if let Err(reason) = outcome {
            self.counters.dropped[*reason as usize] += 1;
        }
    }

    fn receive(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
        sink: &mut impl Sink,
    ) -> Result<(), Drop> {
        // Handshake initiations (type 1, 148 bytes) are counted per source
        // before any cryptography.
        if datagram.len() == 148 && datagram[0] == 1 && !self.throttle.allow(from.ip(), now) {
            return Err(Drop::Throttled);
        }
        let packet =
            match self
                .rate_limiter
                .verify_packet(Some(from.ip()), datagram, &mut self.scratch)
            {
                Ok(packet) => packet,
                Err(TunnResult::WriteToNetwork(cookie)) => {
                    self.counters.cookie_replies_sent += 1;
                    sink.send_datagram(from, cookie);
                    return Ok(());
                }
                Err(_) => return Err(Drop::Rejected),
            };
        let cookie_reply = matches!(packet, Packet::PacketCookieReply(_));
        let initiation = matches!(packet, Packet::HandshakeInit(_));
        let id = match packet {
            Packet::HandshakeInit(init) => {
                let half = parse_handshake_anon(&self.private, &self.public, &init)
                    .map_err(|_| Drop::Rejected)?;
                *self
                    .by_key
                    .get(&half.peer_static_public)
                    .ok_or(Drop::UnknownPeer)?
            }
            Packet::HandshakeResponse(p) => p.receiver_idx >> 8,
            Packet::PacketCookieReply(p) => p.receiver_idx >> 8,
            Packet::PacketData(p) => p.receiver_idx >> 8,
        };
        let peer = self.peers.get_mut(&id).ok_or(Drop::UnknownPeer)?;
        // Only an initiation makes a session; anything else for a peer
        // without one answers nothing it sent.
        if peer.tunn.is_none() && !initiation {
            return Err(Drop::Rejected);
        }
        let tunn = peer.session(&self.private, &self.rate_limiter, id);
        let handshake_before = tunn.time_since_last_handshake();
        let mut result = tunn.decapsulate(Some(from.ip()), datagram, &mut self.scratch);
        let mut outcome = Ok(());
        let mut authenticated = false;
        let mut carried_data = false;
        loop {
            match result {
                TunnResult::Done => break,
                TunnResult::Err(_) => {
                    outcome = Err(Drop::Rejected);
                    break;
                }
                TunnResult::WriteToNetwork(reply) => {
                    authenticated = true;
                    peer.stats.tx_bytes += reply.len() as u64;
                    sink.send_datagram(from, reply);
                    // Handshake replies may be followed by queued packets.
                    result = peer
                        .session(&self.private, &self.rate_limiter, id)
                        .decapsulate(None, &[], &mut self.scratch);
                    continue;
                }
                TunnResult::WriteToTunnelV4(packet, source) => {
                    authenticated = true;
                    carried_data = true;
                    outcome = deliver(&self.routes, id, peer, packet, source.into(), sink);
                    break;
                }
                TunnResult::WriteToTunnelV6(packet, source) => {
                    authenticated = true;
                    carried_data = true;
                    outcome = deliver(&self.routes, id, peer, packet, source.into(), sink);
                    break;
                }
            }
        }
        if authenticated {
            peer.stats.unanswered_since = None;
            let before = (peer.stats.rx_bytes, peer.stats.tx_bytes);
            peer.stats.rx_bytes += datagram.len() as u64;
            if carried_data {
                if !peer.active {
                    peer.active = true;
                    push_event(
                        &mut self.events,
                        Event::Active {
                            peer: id,
                            rx_bytes: before.0,
                            tx_bytes: before.1,
                        },
                    );
                }
                peer.stats.last_data = Some(now);
                peer.counters_at_last_data = (peer.stats.rx_bytes, peer.stats.tx_bytes);
            }
            if peer.stats.endpoint != Some(from) {
                let previous = peer.stats.endpoint.replace(from);
                push_event(
                    &mut self.events,
                    Event::EndpointChanged {
                        peer: id,
                        from: previous,
                        to: from,
                    },
                );
            }
        }
        // The responder is under load and sent a cookie: initiate again at
        // once, with the cookie's MAC2 (which gets past its limit), instead
        // of waiting for the 5 s retransmission.
        if cookie_reply
            && outcome.is_ok()
            && let TunnResult::WriteToNetwork(initiation) = peer
                .session(&self.private, &self.rate_limiter, id)
                .format_handshake_initiation(&mut self.scratch, true)
        {
            peer.stats.tx_bytes += initiation.len() as u64;
            sink.send_datagram(from, initiation);
        }
        let handshake_after = peer
            .tunn
            .as_ref()
            .and_then(|t| t.time_since_last_handshake());
        if handshake_after.is_some()
            && (handshake_before.is_none() || handshake_after < handshake_before)
        {
            peer.stats.last_handshake = handshake_after.map(|age| now - age);
            self.counters.handshakes_completed += 1;
            push_event(&mut self.events, Event::HandshakeCompleted { peer: id });
        }
        outcome
    }

    /// Drops every peer's session state, to be made again at the next
    /// handshake. boringtun stamps handshakes with the wall clock as it
    /// was when a session was made (plus the time since): after the wall
    /// clock was set right, only new sessions stamp with the right time —
    /// and a gateway refuses a stamp older than one it has seen, so a
    /// laptop whose clock was behind gets through only then. Follow with
    /// [`Node::initiate_handshakes`].
    pub fn renew_sessions(&mut self) {
        for peer in self.peers.values_mut() {
            peer.tunn = None;
        }
    }

    /// Starts a handshake with every peer that has a known endpoint, so a
    /// tunnel is up before the first packet needs it (as WireGuard does
    /// for peers with a persistent keepalive).
    pub fn initiate_handshakes(&mut self, sink: &mut impl Sink) {
        let mut sink = CountingSink::new(sink);
        for (&id, peer) in &mut self.peers {
            let Some(to) = peer.stats.endpoint else {
                continue;
            };
            if let TunnResult::WriteToNetwork(datagram) = peer
                .session(&self.private, &self.rate_limiter, id)
                .format_handshake_initiation(&mut self.scratch, false)
            {
                peer.stats.tx_bytes += datagram.len() as u64;
                sink.send_datagram(to, datagram);
            }
        }
        self.count(sink.sent, &Ok(()));
    }

    /// Drives timers: handshake retries, rekeys and keepalives (boringtun),
    /// idle detection and the handshake rate limiter (ours). Call at least
    /// every 250 ms.
    pub fn handle_timeout(&mut self, now: Instant, sink: &mut impl Sink) {
        self.last_now = Some(now);
        let mut sink = CountingSink::new(sink);
        if self
            .last_rate_reset
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            self.rate_limiter.reset_count();
            self.last_rate_reset = Some(now);
        }
        for (&id, peer) in &mut self.peers {
            if let Some(tunn) = peer.tunn.as_deref_mut() {
                let had_session = tunn.time_since_last_handshake();
                match tunn.update_timers(&mut self.scratch) {
                    TunnResult::WriteToNetwork(datagram) => {
                        if let Some(to) = peer.stats.endpoint {
                            peer.stats.tx_bytes += datagram.len() as u64;
                            sink.send_datagram(to, datagram);
                        }
                    }
                    TunnResult::Err(WireGuardError::ConnectionExpired) => {
                        if had_session.is_some() {
                            tracing::debug!(peer = id, "session expired");
                        }
                        // Nothing left to keep: free it until the peer
                        // comes back (a keepalive peer keeps its timers).
                        if peer.config.persistent_keepalive.is_none() {
                            peer.tunn = None;
                        }
                    }
                    _ => {}
                }
            }
            let idle = peer
                .stats
                .last_data
                .is_some_and(|at| now.saturating_duration_since(at) >= self.idle_after);
            if peer.active && idle {
                peer.active = false;
                peer.stats.last_data = None;
                let (rx_bytes, tx_bytes) = peer.counters_at_last_data;
                push_event(
                    &mut self.events,
                    Event::Idle {
                        peer: id,
                        rx_bytes,
                        tx_bytes,
                    },
                );
            }
        }
        self.count(sink.sent, &Ok(()));
    }
}

/// Delivers a decrypted packet if its source belongs to the sending peer
/// and its destination passes the peer's filter.
fn deliver(
    routes: &IpNetworkTable<PeerId>,
    id: PeerId,
    peer: &mut Peer,
    packet: &[u8],
    source: IpAddr,
    sink: &mut impl Sink,
) -> Result<(), Drop> {
    if routes.longest_match(source).map(|(_, owner)| *owner) != Some(id) {
        peer.stats.dropped_spoofed += 1;
        return Err(Drop::Spoofed);
    }
    if let Some(filter) = &peer.config.filter {
        let info = inspect(packet).ok_or(Drop::Malformed)?;
        if !filter.allows(&info) {
            peer.stats.dropped_filtered += 1;
            return Err(Drop::Filtered);
        }
    }
    sink.deliver_packet(packet);
    Ok(())
}

/// A [`Sink`] that counts the datagrams and bytes sent through it, so the
/// node counts every send without threading counters through each path.
struct CountingSink<'a, S> {
    inner: &'a mut S,
    /// (datagrams, bytes).
    sent: (u64, u64),
}

impl<'a, S: Sink> CountingSink<'a, S> {
    fn new(inner: &'a mut S) -> Self {
        Self {
            inner,
            sent: (0, 0),
        }
    }
}

impl<S: Sink> Sink for CountingSink<'_, S> {
    fn send_datagram(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.sent.0 += 1;
        self.sent.1 += datagram.len() as u64;
        self.inner.send_datagram(to, datagram);
    }

    fn deliver_packet(&mut self, packet: &[u8]) {
        self.inner.deliver_packet(packet);
    }
}

fn to_network(net: &IpNet) -> IpNetwork {
    // ipnet and ip_network both hold valid prefixes; `trunc` zeroes host bits
    // as ip_network requires.
    let net = net.trunc();
    IpNetwork::new(net.network(), net.prefix_len()).expect("a truncated prefix is a valid network")
}

/// Events kept for a caller that does not read them (a client ignores
/// them; a gateway reads them every second): beyond this the oldest go.
const MAX_QUEUED_EVENTS: usize = 4_096;

fn push_event(events: &mut VecDeque<Event>, event: Event) {
    if events.len() == MAX_QUEUED_EVENTS {
        events.pop_front();
    }
    events.push_back(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Queue(Vec<(SocketAddr, Vec<u8>)>);
    impl Sink for Queue {
        fn send_datagram(&mut self, to: SocketAddr, datagram: &[u8]) {
            self.0.push((to, datagram.to_vec()));
        }
        fn deliver_packet(&mut self, _: &[u8]) {}
    }

    #[test]
    fn an_installed_peer_has_no_session_until_its_handshake_arrives() {
        let (gateway_key, laptop_key) = (PrivateKey::generate(), PrivateKey::generate());
        let mut gateway = Node::new(&gateway_key, Duration::from_secs(180));
        let on_gateway = gateway.upsert_peer(PeerConfig {
            public_key: laptop_key.public_key(),
            allowed_ips: vec!["10.77.0.2/32".parse().expect("a prefix")],
            endpoint: None,
            persistent_keepalive: None,
            filter: None,
        });
        let mut laptop = Node::new(&laptop_key, Duration::from_secs(180));
        let gateway_addr: SocketAddr = "192.0.2.1:51820".parse().expect("an address");
        let on_laptop = laptop.upsert_peer(PeerConfig {
            public_key: gateway_key.public_key(),
            allowed_ips: vec!["10.1.0.0/16".parse().expect("a prefix")],
            endpoint: Some(gateway_addr),
            persistent_keepalive: Some(25),
            filter: None,
        });
        assert!(
            gateway.peers[&on_gateway].tunn.is_none(),
            "idle: no session state"
        );
        assert!(
            laptop.peers[&on_laptop].tunn.is_some(),
            "a keepalive peer keeps its timers"
        );
        let mut out = Queue(Vec::new());
        laptop.initiate_handshakes(&mut out);
        let (_, initiation) = out.0.pop().expect("an initiation");
        let from: SocketAddr = "198.51.100.7:40000".parse().expect("an address");
        let mut replies = Queue(Vec::new());
        gateway
            .handle_datagram(from, &initiation, Instant::now(), &mut replies)
            .expect("accepted");
        assert!(gateway.peers[&on_gateway].tunn.is_some());
        assert_eq!(replies.0.len(), 1, "the handshake response");
        // A data datagram for a peer without a session is refused, and
        // makes none.
        let other = gateway.upsert_peer(PeerConfig {
            public_key: PrivateKey::generate().public_key(),
            allowed_ips: vec!["10.77.0.3/32".parse().expect("a prefix")],
            endpoint: None,
            persistent_keepalive: None,
            filter: None,
        });
        let mut data = vec![4u8, 0, 0, 0];
        data.extend_from_slice(&(other << 8).to_le_bytes());
        data.extend_from_slice(&[0u8; 40]);
        assert!(
            gateway
                .handle_datagram(from, &data, Instant::now(), &mut replies)
                .is_err()
        );
        assert!(gateway.peers[&other].tunn.is_none());
    }
}

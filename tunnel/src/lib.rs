//! Porta's WireGuard data plane.
//!
//! # Layout
//! * [`node`]: the sans-IO core — a peer table over boringtun's
//!   `noise::Tunn`: routing of incoming datagrams by receiver index (or, for
//!   handshake initiations, by the initiator's static key), of outgoing
//!   packets by longest-prefix match over allowed IPs, anti-spoofing, a
//!   per-peer destination [`filter`], counters and events. Bytes and time
//!   in, bytes out through a [`node::Sink`]; no sockets, TUN or runtime.
//! * [`filter`]: packet inspection and the per-peer destination rules that
//!   make the gateway the security boundary.
//! * [`keys`]: WireGuard key pairs via boringtun's x25519 re-export, so one
//!   x25519-dalek version is linked wherever keys meet boringtun.
//! * [`throttle`]: handshake initiations counted per source address, so a
//!   flood from one address meets cookie replies before honest peers do.
//! * [`shell`] (feature `io`): a TUN device and a UDP socket driving a
//!   node, for the staff client and the gateway — Linux's offloads and
//!   batches, or the portable one-packet-per-call path.

pub mod filter;
pub mod keys;
pub mod node;
#[cfg(feature = "io")]
pub mod shell;
pub mod throttle;

pub use node::{Event, Node, PeerConfig, PeerId, PeerStats, Sink};

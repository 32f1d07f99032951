//! Porta's gateway: the town end of every staff tunnel.
//!
//! A gateway runs porta-tunnel's node and IO shell, installs the peers the
//! controller says it should have (each with the filter its destinations
//! make — the security boundary), turns what the node sees into connection
//! events, and keeps those events until the controller has recorded them.
//! The same parts serve two gateways: the one embedded in
//! `porta-controller serve` (which feeds them in-process) and the remote
//! `porta-gateway` on a host of its own (which follows the controller over
//! gRPC). This crate depends on `porta-tunnel` and `porta-proto` only: a
//! gateway host links no controller store and no API server.
//!
//! # Layout
//! * [`destination`]: a town destination (prefix, protocol, ports) — its
//!   stored and wire forms and the filter rule it becomes.
//! * [`peer`]: a device as a gateway peer, the [`peer::Update`]s a gateway
//!   applies, and their wire codec (`Gateway.WatchPeers`).
//! * [`installed`]: [`installed::InstalledPeers`], the peers in the node,
//!   changed one by one as updates arrive; the node's start; the open
//!   sessions kept on disk.
//! * [`sessions`]: sans-IO session tracking — node events become
//!   session start, endpoint change and session end.
//! * [`event`]: connection events, typed ([`event::EventKind`],
//!   [`event::EndReason`]), and their wire codec.
//! * [`outbox`]: events not yet delivered, on disk (sled, flushed).
//! * [`live_tunnels`]: where the devices with a live tunnel were, so a
//!   restarted gateway starts their handshakes itself.
//! * [`metrics`]: the gateway's Prometheus series and the `/metrics`
//!   endpoint (the controller serves its own registry through it too).
//! * [`remote`]: the remote gateway's runner — enrollment, following the
//!   peer stream, acknowledging revisions, delivering events.
//! * [`options`]: `porta-gateway`'s command line.
//!
//! # A revocation, at the gateway
//! ```text
//! Gateway.WatchPeers → Update::from_pb → InstalledPeers::apply
//!   → Node::remove_peer (session ended, reason revoked)
//!   → peers.pb saved → Gateway.AckRevision (the controller confirms)
//! ```

pub mod destination;
pub mod event;
pub mod installed;
pub mod live_tunnels;
pub mod metrics;
pub mod options;
pub mod outbox;
pub mod peer;
pub mod remote;
pub mod sessions;
pub mod sled_files;

pub use installed::DEFAULT_SESSION_IDLE;

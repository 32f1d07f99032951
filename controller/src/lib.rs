//! The Porta controller: the control plane of a WireGuard VPN for town halls.
//!
//! It issues WireGuard peer configurations to staff devices over gRPC (TLS,
//! pinned by certificate fingerprint), keeps users, groups, devices and
//! credentials in an embedded sled store, hands out tunnel addresses, and
//! revokes devices at once.
//!
//! # Layout
//! * [`store`]: sled trees, typed records, schema version, the one atomic
//!   write path, the witness of what is durable, recovery from a full disk.
//! * [`state`]: [`Controller`], the cloneable handle with every operation;
//!   takes `now` as an argument, returns typed [`Error`]s.
//! * [`api`]: the tonic services (Enrollment, Device, Admin, Audit, Gateway):
//!   authorize → validate → one `Controller` call → convert.
//! * [`caller`]: who an authenticated credential belongs to; [`clock`]: the
//!   one reading of the wall clock.
//! * [`ipam`], [`secret`], [`validate`], [`names`]: pure helpers (address
//!   allocation, hashed constant-time secrets, input checks, names that
//!   cannot deceive).
//! * [`guard`]: failed sign-ins by source address, throttling guessers;
//!   [`listener`]: the API's TCP listener with per-source caps and
//!   deadlines for connections that never send a request.
//! * [`logs`]: the hash-chained connection and admin logs;
//!   [`event_check`]: what a gateway's event (`porta_gateway::event`) must
//!   satisfy to enter them.
//! * [`policy`]: groups → destinations, used for client routes and for the
//!   gateway's filter alike.
//! * [`peers`]: the peer journal — the peer set as revisioned changes, for
//!   every gateway.
//! * [`gateway`]: the gateway embedded in `serve` — `porta_gateway`'s
//!   parts fed from the journal in-process, its events recorded directly.
//!   Remote gateways are the `porta-gateway` program (crate
//!   `porta-gateway`) and follow the journal over the Gateway service.
//! * [`init`], [`server`], [`tls`], [`options`]: the process shell behind the
//!   `porta-controller` binary.
//! * [`operator`]: the Unix socket in the data directory through which the
//!   host's operator recovers admin access (`porta-controller invite-admin`).
//!
//! # Request path
//! ```text
//! TLS (rustls) → tonic service → api::auth::authorize (bearer → credential → role)
//!   → validate::* → Controller::op(.., now) → Store::write (one sled txn, flushed)
//!   → watch channel → streams (WatchConfig) recompute and push
//! ```

pub mod api;
pub mod caller;
pub mod clock;
pub mod error;
pub mod event_check;
pub mod fanout;
pub mod gateway;
pub mod guard;
pub mod init;
pub mod ipam;
pub mod listener;
pub mod logs;
pub mod names;
pub mod operator;
pub mod options;
pub mod policy;
pub mod secret;
pub mod server;
pub mod settings;
pub mod state;
pub mod store;
pub mod tls;
pub mod validate;

pub use error::Error;
pub use state::Controller;

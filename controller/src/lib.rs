//! The Porta controller: the control plane of a WireGuard VPN for town halls.
//!
//! It issues WireGuard peer configurations to staff devices over gRPC (TLS,
//! pinned by certificate fingerprint), keeps users, groups, devices and
//! credentials in an embedded sled store, hands out tunnel addresses, and
//! revokes devices at once.
//!
//! # Layout
//! * [`state`]: [`Controller`], the cloneable handle, and one module per
//!   entity (`auth`, `users`, `groups`, `enrollment`, `devices`,
//!   `credentials`, `gateways`) — every operation; takes `now` as an
//!   argument, returns typed [`Error`]s.
//! * [`store`]: sled trees, typed records, typed per-entity reads and
//!   writes that keep their own index trees (`store::tables`), each
//!   record's wire message as a `From` beside it (`store::wire`), the schema
//!   version, the one atomic write path, the witness of what is durable,
//!   recovery from a full disk.
//! * [`fanout`]: the peer journal (the peer set as revisioned changes) and
//!   each gateway's acknowledgements; it holds no store.
//! * [`api`]: the tonic services (Enrollment, Device, Admin, Audit, Gateway):
//!   authorize → validate → one `Controller` call → convert; [`error`] maps
//!   every typed error to a gRPC status in one place.
//! * [`logs`]: the hash-chained connection and admin logs (append, ingest,
//!   the checks a gateway's event must pass to enter them, query, verify,
//!   retention).
//! * [`policy`]: groups → destinations, used for client routes and, as
//!   `porta_gateway::destination`'s filter rules, for the gateway alike.
//! * [`gateway`]: the gateway embedded in `serve` — `porta_gateway`'s
//!   parts fed from the fan-out in-process, its events recorded directly.
//!   Remote gateways are the `porta-gateway` program (crate
//!   `porta-gateway`) and follow the fan-out over the Gateway service.
//! * [`caller`]: who an authenticated credential belongs to; [`clock`]: the
//!   one reading of the wall clock.
//! * [`ipam`], [`secret`], [`validate`], [`names`]: pure helpers (address
//!   allocation, hashed constant-time secrets, input checks, names that
//!   cannot deceive).
//! * [`guard`]: failed sign-ins by source address, throttling guessers;
//!   [`listener`]: the API's TCP listener with per-source caps and
//!   deadlines for connections that never send a request.
//! * [`init`], [`server`], [`tls`], [`options`], [`settings`]: the process
//!   shell behind the `porta-controller` binary.
//! * [`feed`]: the SIEM feed (`[feed]`): both logs streamed to a
//!   collector over RELP or syslog/JSON lines over TLS, resumable.
//! * [`metrics`]: the Prometheus series (`serve --metrics-listen`).
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
pub mod directory;
pub mod error;
pub mod fanout;
pub mod feed;
pub mod gateway;
pub mod guard;
pub mod init;
pub mod ipam;
pub mod listener;
pub mod logs;
pub mod mail;
pub mod metrics;
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

//! Porta's WireGuard data plane.
//!
//! Today this crate holds the key material shared by the controller's
//! embedded gateway, the staff client and the tests: WireGuard static keys
//! generated with boringtun's re-export of x25519-dalek, so that exactly one
//! x25519 version is linked wherever keys meet boringtun. The sans-IO peer
//! table over `boringtun::noise::Tunn` and the TUN/UDP shell arrive with the
//! data-plane work (see docs/ARCHITECTURE.md).

pub mod keys;

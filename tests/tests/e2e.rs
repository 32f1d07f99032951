//! End-to-end tests against real `porta-controller` processes over TLS.
//! One test binary (faster to link); one module per area.

#![allow(missing_docs, clippy::unwrap_used)]

mod attacks;
mod bad_input;
mod client;
mod dataplane;
mod demo;
mod desktop;
mod directory;
mod email;
mod faults;
mod feed;
mod flows;
mod host;
mod hostile;
mod macos;
mod metrics;
mod packaging;
mod portable;
mod portactl;
mod reference;
mod roles;
mod scale;
mod service;
mod systemd;
mod truth;
mod windows;

//! `porta-desktop`, the staff app: enroll this computer with the invitation
//! IT sent, connect and disconnect, see what the tunnel does — no terminal
//! and no administrator rights. It is a front end of the tunnel service
//! (`porta daemon`, see porta-client's `daemon` module), which owns the key
//! and the tunnel; the app only talks to its local API, so closing the app
//! leaves the tunnel as it is.
//!
//! # Layout
//! * [`model`]: the sans-IO core — screens, rules, plain-words failures and
//!   notifications, as a state machine driven by [`model::Action`]s (the
//!   person) and [`model::Event`]s (the service).
//! * [`backend`]: the IO shell to the service (a thread following its
//!   status stream and running requests).
//! * [`ui`]: the egui rendering of the model into actions; every widget is
//!   labelled for screen readers through AccessKit, and the same tree is
//!   what the tests drive (egui_kittest).
//! * [`app`]: the window (eframe) gluing the three, plus [`tray`] and
//!   desktop notifications where the desktop has them.
//! * [`settings`]: language, start minimised, connect when I log in (XDG
//!   autostart).
//!
//! The words come from porta-client's [`porta_client::i18n`] catalogue
//! (Catalan, Spanish, Italian, English), shared with the `porta` command.

pub use eframe::egui;

pub mod app;
pub mod backend;
pub mod model;
pub mod settings;
#[cfg(any(target_os = "linux", windows))]
pub mod tray;
pub mod ui;

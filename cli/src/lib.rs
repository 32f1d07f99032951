//! `portactl`: the admin and auditor command line of Porta.
//!
//! # Layout
//! * [`args`]: the clap definitions (also the source of man pages and
//!   completions).
//! * [`profile`]: saved logins in a 0600 TOML file.
//! * [`commands`]: one module per command family; each turns arguments
//!   into gRPC calls on a pinned-TLS channel and prints the result.
//! * [`output`]: tables for people, JSON for scripts.
//! * [`complete`]: shell completion, with live user, group and device names.
//! * [`spreadsheet`]: the separators and encodings spreadsheets save CSV in.
//! * [`workbook`]: log exports as typed Excel workbooks, and back.
//! * [`error`]: exit codes (0 ok, 1 error, 2 usage, 3 not found, 4 denied).

pub mod args;
pub mod commands;
pub mod complete;
pub mod error;
pub mod output;
pub mod profile;
pub mod spreadsheet;
pub mod workbook;

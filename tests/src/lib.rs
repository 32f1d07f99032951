//! Helpers for Porta end-to-end tests.

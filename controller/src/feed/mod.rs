//! The SIEM feed: every connection event and admin action, as it is
//! appended, streamed to the town's collector (`[feed]` in the config).
//!
//! ```text
//!   store (both logs) ──▶ cursor::next_batch (after what was delivered, merged by time)
//!      ──▶ porta_proto::feed (RFC 5424 message or JSON line)
//!      ──▶ deliver: TCP (+ TLS, rustls) ──▶ relp::Session or octet-counted frames
//!      ◀── acknowledgements (RELP) ──▶ cursor saved in the store's meta tree
//! ```
//!
//! * [`relp`]: the RELP client, sans-IO.
//! * [`cursor`]: what was delivered (one sequence per log), kept in the
//!   store, and the next records after it.
//! * [`deliver`]: the IO shell — connect, send, take acknowledgements,
//!   reconnect with backoff, report its state for `portactl logs feed
//!   status`.
//!
//! Delivery is at least once and in order per log: after a restart or an
//! outage the feed resumes after the last record delivered. What
//! "delivered" means depends on the transport. With RELP the collector
//! confirms each record, so nothing unconfirmed is ever counted. Plain
//! syslog or JSON lines over TCP/TLS have no acknowledgements: a record
//! counts once written to the connection, and bytes still in flight when
//! a connection breaks can be lost without anyone knowing — so after a
//! broken connection the feed sends again what it wrote in the
//! [`deliver::RESEND_WINDOW`] before the break (duplicates carry the same
//! sequence); what a collector loses after receiving it cannot be seen.
//! Memory is bounded by the batch and the RELP window, whatever the lag.

pub mod cursor;
pub mod deliver;
pub mod relp;

use crate::directory::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// The `[feed]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// `relp://host:port`, `syslog-tls://…`, `jsonl-tls://…`; the plain
    /// `relp-tcp://`, `syslog-tcp://`, `jsonl-tcp://` only to loopback.
    pub target: String,
    /// PEM CA file the collector's certificate must chain to (default:
    /// the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for a collector that authenticates its
    /// senders (RELP over TLS asks for one); with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Its private key (`chmod 600`).
    pub client_key: Option<PathBuf>,
}

/// How records are framed on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// RELP `syslog` commands carrying RFC 5424 messages, each confirmed.
    Relp,
    /// RFC 5424 messages with octet-counting framing (RFC 6587 / 5425).
    Syslog,
    /// One JSON object per line.
    JsonLines,
}

/// A checked `[feed]`.
#[derive(Clone)]
pub struct Feed {
    /// The target as configured (also what the saved cursor belongs to).
    pub target: String,
    /// Framing.
    pub framing: Framing,
    /// Host name, for the connection and the certificate.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS, unless plain TCP to loopback.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("target", &self.target)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl FeedConfig {
    /// Checks everything that can be checked without connecting.
    pub fn resolve(self) -> Result<Feed, ConfigError> {
        let bad = |message: String| Err(ConfigError::new(format!("[feed] {message}")));
        let target = self.target.clone();
        let Some((scheme, rest)) = target.split_once("://") else {
            return bad(format!(
                "target {:?} must look like relp://host:port, syslog-tls://host:port or jsonl-tls://host:port",
                self.target
            ));
        };
        let (framing, tls) = match scheme.to_ascii_lowercase().as_str() {
            "relp" => (Framing::Relp, true),
            "relp-tcp" => (Framing::Relp, false),
            "syslog-tls" => (Framing::Syslog, true),
            "syslog-tcp" => (Framing::Syslog, false),
            "jsonl-tls" => (Framing::JsonLines, true),
            "jsonl-tcp" => (Framing::JsonLines, false),
            other => {
                return bad(format!(
                    "target scheme {other:?} is not one of relp, syslog-tls, jsonl-tls (or relp-tcp, syslog-tcp, jsonl-tcp to loopback)"
                ));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
            None => return bad(format!("target {:?} has no port", self.target)),
        };
        let Ok(port) = port.parse::<u16>() else {
            return bad(format!("target {:?}: {port:?} is not a port", self.target));
        };
        if host.is_empty() {
            return bad(format!("target {:?} has no host", self.target));
        }
        if !tls && !crate::directory::is_loopback(host) {
            return bad(format!(
                "{scheme}:// sends the audit records in clear text: only to this host (127.0.0.1, ::1, localhost); use {}://",
                match framing {
                    Framing::Relp => "relp",
                    Framing::Syslog => "syslog-tls",
                    Framing::JsonLines => "jsonl-tls",
                }
            ));
        }
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert_file), Some(key_file)) => Some(crate::directory::ClientIdentity {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            _ => return bad("client_cert and client_key go together".into()),
        };
        let tls = if tls {
            Some(
                crate::directory::client_tls_config("[feed]", self.ca_file.as_deref(), identity)
                    .map_err(ConfigError::new)?,
            )
        } else {
            None
        };
        Ok(Feed {
            target: self.target,
            framing,
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn resolve(target: &str) -> Result<Feed, String> {
        FeedConfig {
            target: target.into(),
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
        .resolve()
        .map_err(|e| e.to_string())
    }

    #[test]
    fn targets_name_their_transport_and_clear_text_stays_on_this_host() {
        let relp = resolve("relp://siem.ajuntament.local:2514").unwrap();
        assert_eq!(
            (
                relp.framing,
                relp.host.as_str(),
                relp.port,
                relp.tls.is_some()
            ),
            (Framing::Relp, "siem.ajuntament.local", 2514, true)
        );
        assert_eq!(
            resolve("syslog-tls://[::1]:6514").unwrap().framing,
            Framing::Syslog
        );
        assert!(resolve("jsonl-tcp://127.0.0.1:6515").unwrap().tls.is_none());
        for (target, says) in [
            ("syslog-tcp://siem.ajuntament.local:514", "clear text"),
            ("udp://siem:514", "not one of"),
            ("relp://siem", "no port"),
            ("relp://siem:x", "not a port"),
            ("siem:514", "must look like"),
        ] {
            let error = resolve(target).unwrap_err();
            assert!(error.contains(says), "{target}: {error}");
        }
    }
}

//! Invitations by e-mail: the controller sends them, so admins' laptops
//! need no mail setup.
//!
//! * this file: the `[smtp]` section of the controller's TOML, checked at
//!   start (TLS mode, a clear-text server only on loopback, addresses that
//!   parse, a password file only its owner reads), and the [`Mailer`] that
//!   sends through lettre over rustls;
//! * [`message`] (sans-IO): the invitation message in the person's
//!   language — plain text and HTML, the `porta:` link and the invitation
//!   as text, what it is for, that it works once and until when, and the
//!   staff guide's steps; headers encoded by lettre (RFC 2047), so "Núria
//!   Puig i Solà" arrives intact.
//!
//! A failed delivery never touches the invitation: it stays valid, the
//! failure is recorded on it, and a resend (`portactl tokens resend`, or a
//! re-run of `portactl enroll --csv … --email`) tries again.

pub mod message;

use crate::directory::{ConfigError, is_loopback, read_secret_file};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long one delivery may take (connect, TLS, the whole exchange).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The languages messages are written in.
pub const LANGUAGES: [&str; 4] = ["ca", "es", "it", "en"];

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (submission, port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only to a mail server on this host (loopback).
    None,
}

/// The `[smtp]` section as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The mail server.
    pub host: String,
    /// Default: 587 (starttls), 465 (implicit), 25 (none).
    pub port: Option<u16>,
    /// Default: starttls.
    pub tls: Option<SmtpTls>,
    /// PEM CA file for the server's certificate; default: system roots.
    pub ca_file: Option<PathBuf>,
    /// SMTP user, if the server wants a login.
    pub username: Option<String>,
    /// File holding its password (0600).
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. "Informàtica <informatica@ajuntament.cat>".
    pub from: String,
    /// Where replies go.
    pub reply_to: Option<String>,
    /// Language for people with none on record: ca, es, it or en.
    pub default_language: Option<String>,
}

/// A checked `[smtp]` section.
#[derive(Clone, Debug)]
pub struct Smtp {
    /// The mail server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// TLS mode.
    pub tls: SmtpTls,
    /// CA file, if any.
    pub ca_file: Option<PathBuf>,
    /// Login, if any: user and password file.
    pub login: Option<(String, PathBuf)>,
    /// Sender.
    pub from: Mailbox,
    /// Reply-To.
    pub reply_to: Option<Mailbox>,
    /// Default language.
    pub default_language: String,
}

impl SmtpConfig {
    /// Checks everything that can be checked without connecting.
    pub fn resolve(self) -> Result<Smtp, ConfigError> {
        let bad = |m: String| ConfigError::new(format!("[smtp] {m}"));
        let tls = self.tls.unwrap_or(SmtpTls::Starttls);
        if tls == SmtpTls::None && !is_loopback(&self.host) {
            return Err(bad(format!(
                "tls = \"none\" would send mail and the password in clear to {}; it is allowed \
                 only to a mail server on this host (loopback). Use \"starttls\" or \"implicit\"",
                self.host
            )));
        }
        let port = self.port.unwrap_or(match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        });
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| bad(format!("from {:?} is not an address: {e}", self.from)))?;
        let reply_to = self
            .reply_to
            .map(|r| {
                r.parse::<Mailbox>()
                    .map_err(|e| bad(format!("reply_to {r:?} is not an address: {e}")))
            })
            .transpose()?;
        let login = match (self.username, self.password_file) {
            (Some(user), Some(file)) => {
                read_secret_file(&file)?;
                Some((user, file))
            }
            (None, None) => None,
            _ => return Err(bad("username and password_file go together".into())),
        };
        let default_language = self.default_language.unwrap_or_else(|| "en".into());
        if !LANGUAGES.contains(&default_language.as_str()) {
            return Err(bad(format!(
                "default_language {default_language:?} is not one of ca, es, it, en"
            )));
        }
        Ok(Smtp {
            host: self.host,
            port,
            tls,
            ca_file: self.ca_file,
            login,
            from,
            reply_to,
            default_language,
        })
    }
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The config cannot work (password or CA file).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The recipient's address does not parse.
    #[error("{0:?} is not an e-mail address")]
    Address(String),
    /// The message could not be built.
    #[error("the message could not be built: {0}")]
    Build(String),
    /// The server refused, or could not be reached.
    #[error("the mail server {server} did not take the message: {reason}")]
    Smtp {
        /// host:port.
        server: String,
        /// What happened, in lettre's and the server's words.
        reason: String,
    },
}

/// Sends messages through the configured server.
pub struct Mailer {
    smtp: Smtp,
}

impl Mailer {
    /// A mailer for `smtp`.
    pub fn new(smtp: Smtp) -> Self {
        Self { smtp }
    }

    /// The checked config.
    pub fn smtp(&self) -> &Smtp {
        &self.smtp
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
        let s = &self.smtp;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .timeout(Some(SEND_TIMEOUT));
        if s.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(s.host.clone());
            if let Some(ca) = &s.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    ConfigError::new(format!("[smtp] ca_file {}: {e}", ca.display()))
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    ConfigError::new(format!("[smtp] ca_file {}: {e}", ca.display()))
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| ConfigError::new(format!("[smtp] TLS: {e}")))?;
            builder = builder.tls(match s.tls {
                SmtpTls::Implicit => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let Some((user, file)) = &s.login {
            builder = builder.credentials(Credentials::new(user.clone(), read_secret_file(file)?));
        }
        Ok(builder.build())
    }

    /// Sends `message` now.
    pub async fn send(&self, message: lettre::Message) -> Result<(), MailError> {
        let transport = self.transport()?;
        let server = format!("{}:{}", self.smtp.host, self.smtp.port);
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(MailError::Smtp {
                server,
                reason: porta_proto::describe_error(&e),
            }),
            Err(_) => Err(MailError::Smtp {
                server,
                reason: format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, tls: Option<SmtpTls>) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: None,
            tls,
            ca_file: None,
            username: None,
            password_file: None,
            from: "Informàtica <informatica@ajuntament.cat>".into(),
            reply_to: None,
            default_language: Some("ca".into()),
        }
    }

    #[test]
    fn clear_text_only_on_loopback_and_ports_follow_the_mode() {
        assert_eq!(config("mail.town", None).resolve().expect("ok").port, 587);
        assert_eq!(
            config("mail.town", Some(SmtpTls::Implicit))
                .resolve()
                .expect("ok")
                .port,
            465
        );
        let error = config("mail.town", Some(SmtpTls::None))
            .resolve()
            .expect_err("clear");
        assert!(error.to_string().contains("loopback"), "{error}");
        assert_eq!(
            config("127.0.0.1", Some(SmtpTls::None))
                .resolve()
                .expect("ok")
                .port,
            25
        );
    }

    #[test]
    fn bad_addresses_languages_and_half_logins_are_refused() {
        let mut c = config("mail.town", None);
        c.from = "not an address".into();
        assert!(c.resolve().is_err());
        let mut c = config("mail.town", None);
        c.default_language = Some("fr".into());
        assert!(c.resolve().is_err());
        let mut c = config("mail.town", None);
        c.username = Some("porta".into());
        let error = c.resolve().expect_err("half a login");
        assert!(error.to_string().contains("go together"));
    }
}

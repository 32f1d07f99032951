//! Following the town's directory (Active Directory, OpenLDAP, Samba).
//!
//! The directory is the source of truth for who may connect: every
//! `interval`, the controller reads the people in the directory groups the
//! config maps to Porta groups, and makes Porta's users follow them.
//!
//! # Parts
//! * this file: the `[directory]` section of the controller's TOML, its
//!   presets, and the checks that refuse a dangerous or broken config
//!   before anything connects;
//! * [`plan`] (sans-IO): what a sync would change, from a directory
//!   [`plan::Snapshot`] and Porta's users — created, updated, disabled,
//!   enabled, group changes — and whether it crosses the safety threshold;
//! * [`ldap`] (IO): reading a snapshot over LDAP with ldap3 (rustls, paged
//!   results, nested groups);
//! * [`sync`]: the shell that reads, plans, applies in one store
//!   transaction, waits for the gateways to confirm, and keeps the status
//!   `portactl directory status` shows.
//!
//! # Semantics: suspend, not revoke
//! A user who is disabled in the directory, deleted from it, or no longer
//! in any mapped group is *disabled* in Porta (marked as suspended by the
//! directory): their credentials stop working and every gateway drops
//! their devices' peers in the same sync, confirmed as for a revocation.
//! Their devices stay enrolled, so a person who comes back (a re-enabled
//! account, a return from leave) connects again without re-enrolling. A
//! laptop that is lost or handed in is still revoked by an admin
//! (`portactl devices revoke`). A user an admin disabled by hand is never
//! enabled by the directory; users made by hand and absent from the
//! directory are left alone.

pub mod ldap;
pub mod plan;
pub mod sync;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default share of synced users one sync may disable.
pub const DEFAULT_MAX_DISABLE_FRACTION: f64 = 0.1;
/// The default time between syncs.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// What kind of directory server it is; decides the defaults below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Active Directory or a Samba AD domain controller.
    ActiveDirectory,
    /// OpenLDAP with `inetOrgPerson` people and `groupOfNames` groups.
    Openldap,
}

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (`ldaps://`, port 636).
    Ldaps,
    /// `ldap://` upgraded with StartTLS before the bind.
    Starttls,
    /// No TLS: only to a directory on this host (loopback).
    None,
}

/// Which attribute holds what (overrides of the preset's).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeOverrides {
    /// The Porta user name.
    pub login: Option<String>,
    /// The name people read.
    pub display_name: Option<String>,
    /// Where invitations go.
    pub email: Option<String>,
    /// The language for messages.
    pub language: Option<String>,
}

/// The `[directory]` section as written in the TOML file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]`.
    pub url: String,
    /// Default: `ldaps` for an `ldaps://` URL, else `starttls`.
    pub tls: Option<TlsMode>,
    /// PEM file of the CA(s) the directory's certificate must chain to;
    /// default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Who the controller binds as.
    pub bind_dn: String,
    /// A file (mode 0600 or stricter) holding the bind password.
    pub password_file: PathBuf,
    /// Where people and groups are searched.
    pub base_dn: String,
    /// `active-directory` or `openldap`.
    pub preset: Preset,
    /// Which entries are people (LDAP filter); default from the preset.
    pub user_filter: Option<String>,
    /// Which people are disabled (LDAP filter); default from the preset.
    pub disabled_filter: Option<String>,
    /// Time between syncs, e.g. "5m".
    pub interval: Option<String>,
    /// Largest share of synced users one sync may disable (default 0.1).
    pub max_disable_fraction: Option<f64>,
    /// E-mail an invitation for a first device to each person the sync
    /// creates (needs `[smtp]`).
    #[serde(default)]
    pub auto_invite: bool,
    /// Attribute names, overriding the preset's.
    #[serde(default)]
    pub attributes: AttributeOverrides,
    /// Directory group DN → Porta group name.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

/// The attribute names a sync reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// The Porta user name.
    pub login: String,
    /// The name people read.
    pub display_name: String,
    /// Where invitations go.
    pub email: String,
    /// The language for messages.
    pub language: String,
}

/// A checked directory config, presets applied.
#[derive(Clone, Debug)]
pub struct Directory {
    /// As configured.
    pub url: String,
    /// The host part of the URL (for TLS names and the admin log).
    pub host: String,
    /// How the connection is protected.
    pub tls: TlsMode,
    /// Extra CA certificates (PEM), if configured.
    pub ca_file: Option<PathBuf>,
    /// Bind DN.
    pub bind_dn: String,
    /// Bind password file.
    pub password_file: PathBuf,
    /// Search base.
    pub base_dn: String,
    /// Server kind.
    pub preset: Preset,
    /// People filter.
    pub user_filter: String,
    /// Disabled-people filter.
    pub disabled_filter: String,
    /// Time between syncs.
    pub interval: Duration,
    /// Largest share of synced users one sync may disable.
    pub max_disable_fraction: f64,
    /// Invite people the sync creates, by e-mail.
    pub auto_invite: bool,
    /// Attribute names.
    pub attributes: Attributes,
    /// Directory group DN → Porta group name.
    pub groups: BTreeMap<String, String>,
}

/// A config that cannot work, in words for the admin.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A config error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// An error in the `[directory]` section.
    fn directory(message: impl std::fmt::Display) -> Self {
        Self(format!("[directory] {message}"))
    }
}

impl DirectoryConfig {
    /// Applies the preset and checks everything that can be checked
    /// without connecting.
    pub fn resolve(self) -> Result<Directory, ConfigError> {
        let bad = |message: String| Err(ConfigError::directory(message));
        let (scheme, rest) = match self.url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => {
                return bad(format!(
                    "url {:?} must start with ldaps:// or ldap://",
                    self.url
                ));
            }
        };
        let tls = match (scheme.as_str(), self.tls) {
            ("ldaps", None | Some(TlsMode::Ldaps)) => TlsMode::Ldaps,
            ("ldap", None) => TlsMode::Starttls,
            ("ldap", Some(mode @ (TlsMode::Starttls | TlsMode::None))) => mode,
            ("ldaps", Some(mode)) => {
                return bad(format!(
                    "tls = {mode:?} needs an ldap:// url, not {:?}",
                    self.url
                ));
            }
            ("ldap", Some(TlsMode::Ldaps)) => {
                return bad(format!(
                    "tls = \"ldaps\" needs an ldaps:// url, not {:?}",
                    self.url
                ));
            }
            _ => {
                return bad(format!(
                    "url {:?} must start with ldaps:// or ldap://",
                    self.url
                ));
            }
        };
        let host = host_of(rest)
            .ok_or_else(|| ConfigError::directory(format!("url {:?} names no host", self.url)))?;
        if tls == TlsMode::None && !is_loopback(&host) {
            return bad(format!(
                "tls = \"none\" would send the bind password in clear to {host}; it is allowed \
                 only to a directory on this host (loopback). Use \"ldaps\" or \"starttls\""
            ));
        }
        if self.bind_dn.trim().is_empty() || self.base_dn.trim().is_empty() {
            return bad("bind_dn and base_dn must not be empty".into());
        }
        let interval = match &self.interval {
            None => DEFAULT_INTERVAL,
            Some(text) => humantime::parse_duration(text).map_err(|_| {
                ConfigError::directory(format!("interval {text:?} is not a duration like 5m or 1h"))
            })?,
        };
        if interval < Duration::from_secs(1) {
            return bad("interval must be at least 1s".into());
        }
        let max_disable_fraction = self
            .max_disable_fraction
            .unwrap_or(DEFAULT_MAX_DISABLE_FRACTION);
        if !(0.0..=1.0).contains(&max_disable_fraction) {
            return bad(format!(
                "max_disable_fraction must be between 0 and 1, not {max_disable_fraction}"
            ));
        }
        if self.groups.is_empty() {
            return bad(
                "[directory.groups] maps no directory group to a Porta group; nobody would be synced"
                    .into(),
            );
        }
        for (dn, group) in &self.groups {
            crate::validate::name("group", group)
                .map_err(|e| ConfigError::directory(format!("groups: {dn:?} maps to {e}")))?;
        }
        let (user_filter, disabled_filter, attributes) = preset_defaults(self.preset);
        let overrides = self.attributes;
        Ok(Directory {
            url: self.url,
            host,
            tls,
            ca_file: self.ca_file,
            bind_dn: self.bind_dn,
            password_file: self.password_file,
            base_dn: self.base_dn,
            preset: self.preset,
            user_filter: self.user_filter.unwrap_or(user_filter.into()),
            disabled_filter: self.disabled_filter.unwrap_or(disabled_filter.into()),
            interval,
            max_disable_fraction,
            auto_invite: self.auto_invite,
            attributes: Attributes {
                login: overrides.login.unwrap_or(attributes[0].into()),
                display_name: overrides.display_name.unwrap_or(attributes[1].into()),
                email: overrides.email.unwrap_or(attributes[2].into()),
                language: overrides.language.unwrap_or(attributes[3].into()),
            },
            groups: self.groups,
        })
    }
}

/// A preset's people filter, disabled filter and attributes (login,
/// display name, e-mail, language).
fn preset_defaults(preset: Preset) -> (&'static str, &'static str, [&'static str; 4]) {
    match preset {
        // userAccountControl bit 2 is ACCOUNTDISABLE; the matching rule is
        // LDAP_MATCHING_RULE_BIT_AND.
        Preset::ActiveDirectory => (
            "(&(objectCategory=person)(objectClass=user))",
            "(userAccountControl:1.2.840.113556.1.4.803:=2)",
            ["sAMAccountName", "displayName", "mail", "preferredLanguage"],
        ),
        // The ppolicy overlay's permanent lock.
        Preset::Openldap => (
            "(objectClass=inetOrgPerson)",
            "(pwdAccountLockedTime=000001010000Z)",
            ["uid", "displayName", "mail", "preferredLanguage"],
        ),
    }
}

impl Directory {
    /// Reads the bind password, refusing a file others can read.
    pub fn password(&self) -> Result<String, ConfigError> {
        read_secret_file(&self.password_file)
    }
}

/// A secret from a file only its owner can read; the trailing newline an
/// editor adds is not part of it.
pub(crate) fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError(format!("secret file {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError(format!(
            "secret file {} is readable by others (mode {mode:04o}); run chmod 600 on it",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("secret file {}: {e}", path.display())))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(ConfigError(format!(
            "secret file {} is empty",
            path.display()
        )));
    }
    Ok(secret.to_owned())
}

/// The host of `host[:port][/…]`, `[v6]` without brackets.
fn host_of(rest: &str) -> Option<String> {
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// A client certificate and its key, for collectors that want one.
pub(crate) struct ClientIdentity<'a> {
    /// PEM certificate chain.
    pub cert_file: &'a Path,
    /// PEM private key (must not be readable by group or others).
    pub key_file: &'a Path,
}

/// A rustls client config for the controller's outbound TLS (directory,
/// SIEM feed): the PEM certificates in `ca_file`, else the system's roots;
/// a client certificate if `identity` is given. Errors name the config
/// `section`.
pub(crate) fn client_tls_config(
    section: &str,
    ca_file: Option<&Path>,
    identity: Option<ClientIdentity<'_>>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("{section} ca_file {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    format!(
                        "{section} ca_file {}: not PEM certificates: {e}",
                        path.display()
                    )
                })?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{section} ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "{section} ca_file {} holds no certificate",
                    path.display()
                ));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{section} TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let certs = CertificateDer::pem_file_iter(identity.cert_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!(
                        "{section} client_cert {}: {e}",
                        identity.cert_file.display()
                    )
                })?;
            if certs.is_empty() {
                return Err(format!(
                    "{section} client_cert {} holds no certificate",
                    identity.cert_file.display()
                ));
            }
            // The key is a secret like a password file: same rule.
            read_secret_file(identity.key_file)
                .map_err(|e| format!("{section} client_key: {e}"))?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(identity.key_file).map_err(
                |e| format!("{section} client_key {}: {e}", identity.key_file.display()),
            )?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("{section} client_cert and client_key: {e}"))?
        }
    };
    Ok(std::sync::Arc::new(config))
}

/// `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, tls: Option<TlsMode>) -> DirectoryConfig {
        toml::from_str::<DirectoryConfig>(&format!(
            r#"url = "{url}"
bind_dn = "cn=porta,dc=town"
password_file = "/nonexistent"
base_dn = "dc=town"
preset = "openldap"
[groups]
"cn=gis,dc=town" = "gis"
"#
        ))
        .map(|mut c| {
            c.tls = tls;
            c
        })
        .expect("parses")
    }

    #[test]
    fn tls_follows_the_scheme_and_clear_text_stays_on_this_host() {
        let d = config("ldaps://dc1.town.local", None)
            .resolve()
            .expect("ok");
        assert_eq!((d.tls, d.host.as_str()), (TlsMode::Ldaps, "dc1.town.local"));
        let d = config("ldap://dc1.town.local:389", None)
            .resolve()
            .expect("ok");
        assert_eq!(d.tls, TlsMode::Starttls);
        let error = config("ldap://dc1.town.local", Some(TlsMode::None))
            .resolve()
            .expect_err("clear text to another host");
        assert!(error.to_string().contains("loopback"), "{error}");
        config("ldap://127.0.0.1:3389", Some(TlsMode::None))
            .resolve()
            .expect("loopback may be clear");
        config("ldap://[::1]:3389", Some(TlsMode::None))
            .resolve()
            .expect("v6 loopback may be clear");
        assert!(
            config("ldaps://x", Some(TlsMode::Starttls))
                .resolve()
                .is_err()
        );
        assert!(config("http://x", None).resolve().is_err());
    }

    #[test]
    fn presets_fill_what_is_not_overridden() {
        let d = config("ldaps://x", None).resolve().expect("ok");
        assert_eq!(d.attributes.login, "uid");
        assert_eq!(d.interval, DEFAULT_INTERVAL);
        assert_eq!(d.max_disable_fraction, DEFAULT_MAX_DISABLE_FRACTION);
        let mut c = config("ldaps://x", None);
        c.preset = Preset::ActiveDirectory;
        c.attributes.email = Some("userPrincipalName".into());
        let d = c.resolve().expect("ok");
        assert_eq!(d.attributes.login, "sAMAccountName");
        assert_eq!(d.attributes.email, "userPrincipalName");
        assert!(d.disabled_filter.contains("1.2.840.113556.1.4.803"));
    }

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read_secret_file(&path).expect_err("world-readable");
        assert!(error.to_string().contains("chmod 600"), "{error}");
        assert!(!error.to_string().contains("s3cret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_secret_file(&path).expect("ok"), "s3cret");
    }
}

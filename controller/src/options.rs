//! Command line, environment and config file of `porta-controller`.
//!
//! Precedence for `serve`: flag > environment variable > config file
//! (`--config`, TOML) > built-in default. `init` settings are flags or
//! environment only: they are written into the store once.

use crate::init::{DEFAULT_VPN_PREFIX, InitOptions};
use crate::settings::DAY;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The default API listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7443";

/// Porta controller: WireGuard keys and peer configurations for a town's
/// remote staff, over gRPC.
#[derive(Debug, Parser)]
#[command(name = "porta-controller", version, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "PORTA_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `porta_controller=debug` (RUST_LOG syntax).
    #[arg(long, global = true, env = "PORTA_LOG")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people at a terminal.
    Human,
    /// One JSON object per line, for journald/ELK.
    Json,
}

/// What porta-controller's man pages say beyond the options.
pub const MAN_EXTRAS: porta_proto::cli_docs::ManExtras<'static> =
    porta_proto::cli_docs::ManExtras {
        examples: &[
            (
                "porta-controller",
                "Start on the defaults (first run: initialise and print the admin invitation):",
                "porta-controller serve --init",
            ),
            (
                "porta-controller-init",
                "Initialise for a town, with its routes and DNS:",
                "sudo -u porta porta-controller init --data /var/lib/porta --endpoint vpn.example-town.cat --route 10.1.0.0/16 --dns 10.1.0.53",
            ),
            (
                "porta-controller-serve",
                "Run as the packaged unit does:",
                "porta-controller serve --config /etc/porta/controller.toml",
            ),
            (
                "porta-controller-invite-admin",
                "The first admin invitation was lost:",
                "sudo -u porta porta-controller invite-admin --data /var/lib/porta",
            ),
        ],
        exit_status: &[
            ("0", "Success, or a clean stop."),
            ("1", "An error (the message says which)."),
            ("2", "A usage error."),
        ],
        files: &[
            ("/etc/porta/controller.toml", "serve's settings (--config)."),
            (
                "/var/lib/porta",
                "The controller's data: store/, tls/, gateway.key, operator.sock (0700, owned by porta).",
            ),
        ],
    };

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: store, TLS certificate, gateway key, and the
    /// first admin invitation (printed once).
    Init(InitArgs),
    /// Run the API and the embedded gateway.
    Serve(ServeArgs),
    /// Run a remote gateway: an alias of `porta-gateway`, kept for one
    /// release so that existing units keep working.
    #[command(hide = true)]
    Gateway(porta_gateway::options::GatewayArgs),
    /// Print a new admin invitation, for when the first one was lost or
    /// expired. Run on the controller's host as the data directory's owner
    /// (or root), whether `serve` runs or not; the admin log records it as
    /// done by the local operator.
    InviteAdmin(InviteAdminArgs),
    /// Completions and man pages.
    #[command(flatten)]
    Docs(porta_proto::cli_docs::Docs),
}

/// `invite-admin` flags.
#[derive(Debug, Args)]
pub struct InviteAdminArgs {
    /// The controller's data directory.
    #[arg(long, env = "PORTA_DATA")]
    pub data: Option<PathBuf>,
    /// Name of the new admin credential.
    #[arg(long, default_value = "admin")]
    pub name: String,
    /// How long the invitation stays valid (e.g. 1h, 3days).
    #[arg(long, default_value = "7days", value_parser = humantime::parse_duration)]
    pub expires: std::time::Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Data directory to create (must not exist or be empty).
    #[arg(long, env = "PORTA_DATA")]
    pub data: Option<PathBuf>,
    /// Public host or host:port staff's WireGuard traffic reaches (UDP; default
    /// port 51820). Default: this host's first non-loopback IPv4 address.
    #[arg(long, env = "PORTA_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Public host:port of the API, written into invitations. Default: the
    /// endpoint's host, port 7443.
    #[arg(long, env = "PORTA_API_ENDPOINT")]
    pub api_endpoint: Option<String>,
    /// IPv4 prefix device addresses come from.
    #[arg(long, default_value = DEFAULT_VPN_PREFIX)]
    pub vpn_prefix: Ipv4Net,
    /// IPv6 ULA prefix for devices (default: a random fdXX:…/64).
    #[arg(long, conflicts_with = "no_ipv6")]
    pub vpn_prefix6: Option<Ipv6Net>,
    /// Give devices IPv4 addresses only.
    #[arg(long)]
    pub no_ipv6: bool,
    /// A town prefix every device may reach (repeatable); groups add more.
    #[arg(long = "route", value_name = "CIDR")]
    pub routes: Vec<IpNet>,
    /// A DNS server for devices (repeatable).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<IpAddr>,
    /// A DNS search domain for devices (repeatable).
    #[arg(long = "search-domain", value_name = "DOMAIN")]
    pub search_domains: Vec<String>,
    /// The town hall's name, shown to staff in their invitation before they
    /// enroll (e.g. "Ajuntament de Calonge").
    #[arg(long, value_name = "NAME", default_value = "")]
    pub organization: String,
    /// Use this PEM certificate instead of a self-signed one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long a revoked device's address is held back (e.g. 30d).
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    pub address_quarantine: std::time::Duration,
    /// Default lifetime of invitations (e.g. 72h).
    #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
    pub token_ttl: std::time::Duration,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (keys: data, listen, log_format, log_level,
    /// gateway, gateway_interface, session_idle, retention,
    /// max_connections_per_source, max_connections, admin_networks,
    /// metrics_listen; sections: directory,
    /// directory.attributes, smtp, feed).
    #[arg(long, env = "PORTA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "PORTA_DATA")]
    pub data: Option<PathBuf>,
    /// Address the API listens on [default: 0.0.0.0:7443].
    #[arg(long, env = "PORTA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Initialise the data directory with defaults first if it is empty
    /// (prints the first admin invitation once).
    #[arg(long)]
    pub init: bool,
    /// Serve the API only, without the embedded WireGuard gateway.
    #[arg(long, env = "PORTA_NO_GATEWAY")]
    pub no_gateway: bool,
    /// TUN interface of the embedded gateway [default: porta-gw].
    #[arg(long, env = "PORTA_GATEWAY_INTERFACE")]
    pub gateway_interface: Option<String>,
    /// A session ends after this long without traffic [default: 180s].
    #[arg(long, env = "PORTA_SESSION_IDLE", value_parser = humantime::parse_duration)]
    pub session_idle: Option<std::time::Duration>,
    /// Delete log records older than this (e.g. 365d), keeping what remains
    /// verifiable [default: keep everything].
    #[arg(long, env = "PORTA_RETENTION", value_parser = humantime::parse_duration)]
    pub retention: Option<std::time::Duration>,
    /// Connections one IP address may hold open to the API; more are
    /// closed at once (loopback is exempt) [default: 256].
    #[arg(long, env = "PORTA_MAX_CONNECTIONS_PER_SOURCE", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_source: Option<u32>,
    /// Connections all sources outside the admin networks may hold open
    /// together [default: the open-files limit less 512].
    #[arg(long, env = "PORTA_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// A network (CIDR) whose connections are exempt from the connection
    /// caps, e.g. the town LAN where IT sits (repeatable; loopback and
    /// this host's own addresses always are).
    #[arg(
        long = "admin-network",
        value_name = "CIDR",
        env = "PORTA_ADMIN_NETWORKS",
        value_delimiter = ','
    )]
    pub admin_networks: Vec<ipnet::IpNet>,
    /// Start on a store that is behind what this controller acknowledged
    /// (an older backup restored on purpose); acknowledged changes after
    /// that backup, revocations among them, are lost. Also rebuilds a
    /// missing store witness from the store as it is.
    #[arg(long)]
    pub accept_store_rollback: bool,
    /// Serve Prometheus metrics over plain HTTP at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9464) [default: off]. Unauthenticated: keep it on
    /// loopback or a management network.
    #[arg(long, value_name = "ADDR", env = "PORTA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data: Option<PathBuf>,
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Log filter.
    pub log_level: Option<String>,
    /// Run the embedded gateway (default true).
    pub gateway: Option<bool>,
    /// TUN interface of the embedded gateway.
    pub gateway_interface: Option<String>,
    /// Session idle threshold, e.g. "180s".
    pub session_idle: Option<String>,
    /// Log retention, e.g. "365d".
    pub retention: Option<String>,
    /// Connections one IP address may hold open.
    pub max_connections_per_source: Option<u32>,
    /// Connections all untrusted sources may hold open together.
    pub max_connections: Option<u32>,
    /// Networks exempt from the connection caps.
    pub admin_networks: Option<Vec<ipnet::IpNet>>,
    /// Where Prometheus metrics are served.
    pub metrics_listen: Option<SocketAddr>,
    /// The town's directory to follow (`[directory]`).
    pub directory: Option<crate::directory::DirectoryConfig>,
    /// The mail server invitations go through (`[smtp]`).
    pub smtp: Option<crate::mail::SmtpConfig>,
    /// The SIEM collector both logs stream to (`[feed]`).
    pub feed: Option<crate::feed::FeedConfig>,
}

impl FileConfig {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid config file", path.display()))
    }
}

/// `serve`'s settings after merging flags, environment and file.
#[derive(Debug)]
pub struct ServeSettings {
    /// Data directory.
    pub data: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// The embedded gateway, unless disabled.
    pub gateway: Option<crate::gateway::GatewayOptions>,
    /// Log retention, if any.
    pub retention: Option<std::time::Duration>,
    /// The API listener's limits.
    pub limits: crate::listener::Limits,
    /// Accept a store behind its witness.
    pub accept_store_rollback: bool,
    /// A session ends after this long without traffic (also how long a
    /// gateway may be gone before its sessions are no longer listed).
    pub session_idle: std::time::Duration,
    /// The directory to follow, checked.
    pub directory: Option<crate::directory::Directory>,
    /// The mail server, checked.
    pub smtp: Option<crate::mail::Smtp>,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The SIEM feed, checked.
    pub feed: Option<crate::feed::Feed>,
}

/// A duration from the config file.
fn file_duration(key: &str, value: Option<String>) -> Result<Option<std::time::Duration>> {
    value
        .map(|v| {
            humantime::parse_duration(&v).with_context(|| {
                format!("config key {key}: {v:?} is not a duration like 180s or 365d")
            })
        })
        .transpose()
}

impl ServeSettings {
    /// Merges `args` (flags and env) over `file` over defaults.
    pub fn resolve(cli: &Cli, args: &ServeArgs, file: FileConfig) -> Result<Self> {
        let session_idle = match args.session_idle {
            Some(idle) => idle,
            None => file_duration("session_idle", file.session_idle)?
                .unwrap_or(crate::gateway::DEFAULT_SESSION_IDLE),
        };
        if session_idle < std::time::Duration::from_secs(1) {
            anyhow::bail!("--session-idle must be at least 1s");
        }
        let retention = match args.retention {
            Some(retention) => Some(retention),
            None => file_duration("retention", file.retention)?,
        };
        if retention.is_some_and(|r| r < std::time::Duration::from_secs(3600)) {
            anyhow::bail!("--retention must be at least 1h");
        }
        let directory = file
            .directory
            .map(crate::directory::DirectoryConfig::resolve)
            .transpose()?;
        if let Some(directory) = &directory {
            // Refuse a missing or world-readable password file at start,
            // not at the first sync minutes later.
            directory.password()?;
        }
        let smtp = file
            .smtp
            .map(crate::mail::SmtpConfig::resolve)
            .transpose()?;
        if directory.as_ref().is_some_and(|d| d.auto_invite) && smtp.is_none() {
            anyhow::bail!(
                "[directory] auto_invite = true e-mails invitations: it needs an [smtp] section"
            );
        }
        let feed = file
            .feed
            .map(crate::feed::FeedConfig::resolve)
            .transpose()?;
        Ok(Self {
            directory,
            smtp,
            feed,
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            data: args
                .data
                .clone()
                .or(file.data)
                .unwrap_or_else(default_data_dir),
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid constant")),
            log_format: cli
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            log_level: cli
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            gateway: (!args.no_gateway && file.gateway != Some(false)).then(|| {
                crate::gateway::GatewayOptions {
                    interface: args
                        .gateway_interface
                        .clone()
                        .or(file.gateway_interface)
                        .unwrap_or_else(|| "porta-gw".into()),
                    session_idle,
                }
            }),
            retention,
            limits: crate::listener::Limits {
                per_source: args
                    .max_connections_per_source
                    .or(file.max_connections_per_source)
                    .map_or(crate::listener::Limits::default().per_source, |n| {
                        n.max(1) as usize
                    }),
                total: args.max_connections.or(file.max_connections).map_or_else(
                    || crate::listener::Limits::total_for(porta_proto::limits::open_files_limit()),
                    |n| n.max(1) as usize,
                ),
                admin_networks: if args.admin_networks.is_empty() {
                    file.admin_networks.unwrap_or_default()
                } else {
                    args.admin_networks.clone()
                },
                ..Default::default()
            },
            accept_store_rollback: args.accept_store_rollback,
            session_idle,
        })
    }
}

impl InitArgs {
    /// The init options these flags describe, or why they make no sense.
    pub fn to_options(&self) -> Result<InitOptions> {
        let ttl = self.token_ttl.as_secs();
        if !(60..=365 * DAY).contains(&ttl) {
            anyhow::bail!(
                "--token-ttl must be between 1m and 365d, not {}",
                porta_proto::terminal::duration(self.token_ttl)
            );
        }
        Ok(InitOptions {
            data: self.data.clone().unwrap_or_else(default_data_dir),
            endpoint: self.endpoint.clone(),
            api_endpoint: self.api_endpoint.clone(),
            vpn_prefix: self.vpn_prefix,
            vpn_prefix6: self.vpn_prefix6,
            no_ipv6: self.no_ipv6,
            routes: self.routes.clone(),
            dns: self.dns.clone(),
            search_domains: self.search_domains.clone(),
            organization: self.organization.clone(),
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            address_quarantine_secs: self.address_quarantine.as_secs(),
            token_ttl_secs: ttl,
        })
    }
}

/// `/var/lib/porta` for root (as the systemd unit runs it), else
/// `~/.local/share/porta`.
pub fn default_data_dir() -> PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    match std::env::var_os("HOME") {
        Some(home) if !is_root => PathBuf::from(home).join(".local/share/porta"),
        _ => PathBuf::from("/var/lib/porta"),
    }
}

//! Command line and environment of `porta-gateway` (and of its alias
//! `porta-controller gateway`). A remote gateway needs no config file: the
//! invitation on its first start, and its data directory afterwards, hold
//! everything; the unit's environment file carries the invitation.

use crate::remote::RemoteOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Porta gateway: the town end of staff tunnels on a host of its own,
/// following a Porta controller elsewhere.
#[derive(Debug, Parser)]
#[command(
    name = "porta-gateway",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    after_help = "Exit status: 0 a clean stop; 1 an error; 2 a usage error; 4 the controller \
                  removed this gateway (the packaged unit does not restart it)."
)]
pub struct Cli {
    /// Log lines as JSON objects (for journald/ELK) instead of text.
    #[arg(long, global = true, env = "PORTA_LOG_FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `porta_gateway=debug` (RUST_LOG syntax).
    #[arg(long, global = true, env = "PORTA_LOG", default_value = "info")]
    pub log_level: String,
    /// How to run the gateway.
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Documentation instead of running.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What porta-gateway does besides running.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Completions and man pages.
    #[command(flatten)]
    Docs(porta_proto::cli_docs::Docs),
}

/// How a remote gateway runs.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The gateway invitation from `portactl gateways add` (needed on the
    /// first start only; afterwards the data directory holds the
    /// credential).
    #[arg(
        long = "controller",
        value_name = "INVITATION",
        env = "PORTA_GATEWAY_INVITATION"
    )]
    pub invitation: Option<String>,
    /// Data directory: key, credential, last peer set.
    #[arg(long, env = "PORTA_DATA", default_value = "/var/lib/porta-gateway")]
    pub data: PathBuf,
    /// TUN interface name.
    #[arg(long, env = "PORTA_GATEWAY_INTERFACE", default_value = "porta-gw")]
    pub interface: String,
    /// A session ends after this long without traffic.
    #[arg(long, env = "PORTA_SESSION_IDLE", default_value = "180s", value_parser = humantime::parse_duration)]
    pub session_idle: std::time::Duration,
    /// Take the controller's peer set even if its revision is older than
    /// the one this gateway applied, without an admin's `portactl gateways
    /// resync` (for controllers older than history marks; a current one
    /// refuses a gateway of another history until resynced). Without it
    /// such a peer set is refused and the gateway keeps serving what it
    /// has, revocations included.
    #[arg(long)]
    pub accept_controller_rollback: bool,
    /// Serve Prometheus metrics over plain HTTP at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9465; off by default). Unauthenticated: keep it on
    /// loopback or a management network.
    #[arg(long, value_name = "ADDR", env = "PORTA_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl GatewayArgs {
    /// The runner's options.
    pub fn to_options(&self) -> RemoteOptions {
        RemoteOptions {
            data: self.data.clone(),
            invitation: self.invitation.clone(),
            interface: self.interface.clone(),
            session_idle: self.session_idle,
            accept_controller_rollback: self.accept_controller_rollback,
            metrics_listen: self.metrics_listen,
        }
    }
}

/// What porta-gateway's man page says beyond the options.
pub const MAN_EXTRAS: porta_proto::cli_docs::ManExtras<'static> =
    porta_proto::cli_docs::ManExtras {
        examples: &[(
            "porta-gateway",
            "First start, with the invitation from portactl gateways add (afterwards the data directory is enough):",
            "porta-gateway --controller porta1_… --data /var/lib/porta-gateway",
        )],
        exit_status: &[
            ("0", "A clean stop."),
            ("1", "An error (the message says which)."),
            ("2", "A usage error."),
            (
                "4",
                "The controller removed this gateway: it stops and the packaged unit does not restart it.",
            ),
        ],
        files: &[
            (
                "/var/lib/porta-gateway",
                "The gateway's key, credential, last peer set and undelivered events (0700).",
            ),
            (
                "/etc/porta/gateway.env",
                "The unit's environment (PORTA_GATEWAY_INVITATION for the first start).",
            ),
        ],
    };

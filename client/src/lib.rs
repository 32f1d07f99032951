//! `porta`, the staff client: enroll this computer with an invitation, bring
//! the tunnel into the town network up, and keep it in step with the
//! controller.
//!
//! # Layout
//! * [`daemon`]: `porta daemon`, the tunnel service (root) that owns the
//!   key, the tunnel and the controller watch, and its local API
//!   (`porta.local.v1` on `/run/porta/porta.sock`) for front ends.
//! * [`local`]: the front ends' side of that API.
//! * [`front`]: the CLI's commands as a front end (with the service) or on
//!   their own (as root, without it).
//! * [`connection`]: one tunnel that is up — porta-tunnel's node and IO
//!   shell, DNS, the control socket, and the tasks that follow the
//!   controller, the gateway and the network.
//! * [`enrollment`]: making the key here and enrolling with the controller.
//! * [`state`]: the private key and enrollment in a 0700 state directory.
//! * [`tunnel`]: `up --foreground`, `down` and `status` without the service,
//!   and the status printout both paths share.
//! * `uapi`: the standard WireGuard control socket, so `wg show` works
//!   (Linux and other Unixes).
//! * [`platform`]: what differs between Unix and Windows, in one place.
//! * [`reachability`], [`network`]: the pure parts that notice an
//!   unreachable gateway, a resumed computer or a changed network.
//! * [`diagnostics`]: the help-desk report, without secrets.
//! * [`i18n`]: the staff-facing messages in Catalan, Spanish, Italian and
//!   English, shared with the desktop app.
//! * [`dns`]: the town's DNS while the tunnel is up (resolved or
//!   resolv.conf; NRPT rules on Windows).
//! * [`routes`]: the tunnel's routes minus what must stay outside it.
//! * [`wgconf`]: `porta export-wg`, a wg-quick configuration.

pub mod connection;
pub mod daemon;
pub mod diagnostics;
pub mod dns;
pub mod enrollment;
pub mod front;
pub mod i18n;
pub mod local;
pub mod network;
pub mod platform;
pub mod reachability;
pub mod routes;
pub mod state;
pub mod tunnel;
#[cfg(unix)]
pub mod uapi;
pub mod wgconf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use state::StateDir;
use std::path::PathBuf;

/// Porta: connect this computer to your town hall's network.
#[derive(Debug, Parser)]
#[command(name = "porta", version, propagate_version = true)]
pub struct Cli {
    /// State directory (key and enrollment) of the service or of a
    /// foreground tunnel.
    #[arg(long, global = true, env = "PORTA_STATE", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Tunnel interface name.
    #[arg(long, global = true, env = "PORTA_INTERFACE", default_value = "porta0")]
    pub interface: String,
    /// The tunnel service's socket.
    #[arg(long, global = true, env = "PORTA_SOCKET", value_name = "PATH", default_value = local::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// More log output (-v, -vv).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll this computer with the invitation your IT unit sent you.
    ///
    /// A computer whose enrollment was revoked, or that is enrolled with
    /// another controller, is enrolled again with a new key after a
    /// confirmation (`--yes` in scripts).
    Enroll {
        /// The invitation (porta1_…, or a porta: link).
        invitation: String,
        /// Replace a revoked or other controller's enrollment without asking.
        #[arg(long, short)]
        yes: bool,
    },
    /// Forget this computer's enrollment (its key and settings). IT still
    /// lists the device until they revoke it.
    Leave {
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Connect (the service keeps the tunnel up, and brings it up again
    /// at the next start).
    Up {
        /// Run the tunnel in this terminal instead of the service (root;
        /// stop with Ctrl-C or `porta down`).
        #[arg(long)]
        foreground: bool,
    },
    /// Disconnect.
    Down,
    /// Show whether the tunnel is up, its last handshake and traffic
    /// (exit status 3 when not connected).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a report for IT's help desk (versions, state, reachability,
    /// routes, DNS, recent errors; no secrets).
    Diagnostics,
    /// Run the tunnel service (root; started by porta.service, or on
    /// Windows by the service "Porta").
    Daemon {
        /// Started by the Windows service control manager (the MSI's
        /// service entry passes it).
        #[cfg(windows)]
        #[arg(long, hide = true)]
        windows_service: bool,
    },
    /// Print this device's tunnel as a wg-quick configuration. It holds
    /// the private key: `--out FILE` writes it readable only by its owner.
    ExportWg {
        /// Write to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Completions and man pages.
    #[command(flatten)]
    Docs(porta_proto::cli_docs::Docs),
}

/// What porta's man pages say beyond the options.
const MAN_EXTRAS: porta_proto::cli_docs::ManExtras<'static> = porta_proto::cli_docs::ManExtras {
    examples: &[
        (
            "porta",
            "Enroll this computer once, then connect (members of the porta group need no sudo):",
            "porta enroll porta1_…\nporta up",
        ),
        (
            "porta-enroll",
            "Enroll with the invitation IT sent (the key is made here, by the service):",
            "porta enroll porta1_…",
        ),
        (
            "porta-up",
            "Connect now and at every start, until porta down:",
            "porta up",
        ),
        (
            "porta-up",
            "Without the service (servers, tests): the tunnel in this terminal until Ctrl-C:",
            "sudo porta up --foreground",
        ),
        (
            "porta-status",
            "Is the tunnel up, and when was the last handshake?",
            "porta status",
        ),
        (
            "porta-diagnostics",
            "A report to paste into a support request (no secrets in it):",
            "porta diagnostics",
        ),
        (
            "porta-daemon",
            "The tunnel service, as porta.service starts it:",
            "sudo systemctl enable --now porta",
        ),
        (
            "porta-export-wg",
            "A configuration for wg-quick, readable only by you:",
            "sudo porta export-wg --out town.conf",
        ),
        (
            "porta-leave",
            "Forget this computer's enrollment:",
            "porta leave",
        ),
    ],
    exit_status: &[
        ("0", "Success."),
        ("1", "An error (the message says which)."),
        ("2", "A usage error."),
        ("3", "porta status: not connected."),
    ],
    files: &[
        (
            "/var/lib/porta-client/private.key",
            "This computer's WireGuard private key (0600); it never leaves the computer.",
        ),
        (
            "/var/lib/porta-client/device.toml",
            "The enrollment: controller, pinned fingerprint, device credential, last configuration (0600).",
        ),
        (
            "/var/lib/porta-client/service.toml",
            "What the service remembers: connect at start, and a refusal by the controller.",
        ),
        (
            "/var/lib/porta-client/porta.pid",
            "The running porta up --foreground.",
        ),
        (
            "/run/porta/porta.sock",
            "The tunnel service's local API (root:porta 0660): the porta command and the app use it.",
        ),
        (
            "/var/run/wireguard/porta0.sock",
            "The standard WireGuard control socket, for wg show.",
        ),
        (
            "/etc/resolv.conf",
            "Rewritten while the tunnel is up when systemd-resolved does not run; put back by porta down.",
        ),
    ],
};

/// Runs a command to its end on a runtime of its own — except the
/// Windows service, which first hands this thread to the service control
/// manager (it calls back on a thread of its own, see
/// [`daemon::windows`]).
pub fn run_to_end(cli: Cli) -> Result<()> {
    #[cfg(windows)]
    if let Command::Daemon {
        windows_service: true,
    } = cli.command
    {
        return daemon::windows::run_as_service(daemon::Options {
            socket: cli.socket.clone(),
            dir: StateDir(cli.state.clone().unwrap_or_else(StateDir::default_path)),
            interface: cli.interface.clone(),
        });
    }
    tokio::runtime::Runtime::new()?.block_on(run(cli))
}

/// Runs a command.
pub async fn run(cli: Cli) -> Result<()> {
    let dir = StateDir(cli.state.clone().unwrap_or_else(StateDir::default_path));
    let socket = cli.socket.as_path();
    match cli.command {
        Command::Enroll { invitation, yes } => front::enroll(socket, &dir, &invitation, yes).await,
        Command::Leave { yes } => front::leave(socket, &dir, yes).await,
        Command::Up { foreground: true } => tunnel::up_foreground(&dir, &cli.interface).await,
        Command::Up { foreground: false } => front::up(socket).await,
        Command::Down => front::down(socket, &dir, &cli.interface).await,
        Command::Status { json } => front::status(socket, &dir, &cli.interface, json).await,
        Command::Diagnostics => front::diagnostics(socket, &dir, &cli.interface).await,
        Command::Daemon { .. } => {
            daemon::run(daemon::Options {
                socket: cli.socket.clone(),
                dir,
                interface: cli.interface.clone(),
            })
            .await
        }
        Command::Docs(docs) => Ok(docs.run(<Cli as clap::CommandFactory>::command(), &MAN_EXTRAS)?),
        Command::ExportWg { out } => front::export_wg(&dir, out.as_deref()),
    }
}

/// Logs to stderr; `-v` for info, `-vv` for debug.
pub fn init_logging(verbose: u8) {
    // boringtun logs each handshake retry; `porta up` says it in one line
    // instead (see `reachability`), so its own lines need -vv.
    let level = match verbose {
        0 => "warn,boringtun=off",
        1 => "info,boringtun=off",
        _ => "debug",
    };
    porta_proto::terminal::init_logging(level, false);
}

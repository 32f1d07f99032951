//! `porta`, the staff client: enroll this computer with an invitation, bring
//! the tunnel into the town network up, and keep it in step with the
//! controller.
//!
//! # Layout
//! * [`state`]: the private key and enrollment in a 0700 state directory.
//! * [`tunnel`]: `porta up` — the WireGuard tunnel (porta-tunnel's node and
//!   IO shell) plus the controller watch that applies new routes live and
//!   takes the tunnel down when the device is revoked.
//! * [`uapi`]: the standard WireGuard control socket, so `wg show` works.
//! * [`reachability`]: one line when the gateway cannot be reached, one
//!   when it can again (instead of boringtun's retries).
//! * [`dns`]: the town's DNS while the tunnel is up.
//! * [`wgconf`]: `porta export-wg`, a wg-quick configuration.

pub mod dns;
pub mod reachability;
pub mod routes;
pub mod state;
pub mod tunnel;
pub mod uapi;
pub mod wgconf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use porta_proto::connect::connect;
use porta_proto::pb;
use porta_proto::{Invitation, pb::InvitationKind};
use porta_tunnel::keys::PrivateKey;
use state::{DeviceState, StateDir};
use std::path::PathBuf;

/// Porta: connect this computer to your town hall's network.
#[derive(Debug, Parser)]
#[command(name = "porta", version, propagate_version = true)]
pub struct Cli {
    /// State directory (key and enrollment).
    #[arg(long, global = true, env = "PORTA_STATE", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Tunnel interface name.
    #[arg(long, global = true, env = "PORTA_INTERFACE", default_value = "porta0")]
    pub interface: String,
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
        /// The invitation (porta1_…).
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
    /// Connect (stays in the foreground; stop with Ctrl-C or `porta down`).
    Up,
    /// Disconnect a running `porta up`.
    Down,
    /// Show whether the tunnel is up, its last handshake and traffic
    /// (exit status 3 when not connected).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print this device's tunnel as a wg-quick configuration. It holds
    /// the private key: `--out FILE` writes it readable only by its owner.
    ExportWg {
        /// Write to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: porta_proto::cli_docs::Shell,
    },
    /// Write man pages into a directory.
    #[command(hide = true)]
    Manpages {
        /// Output directory.
        dir: std::path::PathBuf,
    },
}

/// What porta's man pages say beyond the options.
const MAN_EXTRAS: porta_proto::cli_docs::ManExtras<'static> = porta_proto::cli_docs::ManExtras {
    examples: &[
        (
            "porta",
            "Enroll this computer once, then connect:",
            "sudo porta enroll porta1_…\nsudo porta up",
        ),
        (
            "porta-enroll",
            "Enroll with the invitation IT sent (the key is made here):",
            "sudo porta enroll porta1_…",
        ),
        (
            "porta-up",
            "Connect until Ctrl-C (or connect at every start: sudo systemctl enable --now porta):",
            "sudo porta up",
        ),
        (
            "porta-status",
            "Is the tunnel up, and when was the last handshake?",
            "sudo porta status",
        ),
        (
            "porta-export-wg",
            "A configuration for wg-quick, readable only by you:",
            "sudo porta export-wg --out town.conf",
        ),
        (
            "porta-leave",
            "Forget this computer's enrollment:",
            "sudo porta leave",
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
        ("/var/lib/porta-client/porta.pid", "The running porta up."),
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

/// Runs a command.
pub async fn run(cli: Cli) -> Result<()> {
    let dir = StateDir(cli.state.clone().unwrap_or_else(StateDir::default_path));
    match cli.command {
        Command::Enroll { invitation, yes } => enroll(&dir, &invitation, yes).await,
        Command::Leave { yes } => leave(&dir, yes),
        Command::Up => tunnel::up(&dir, &cli.interface).await,
        Command::Down => tunnel::down(&dir, &cli.interface),
        Command::Status { json } => tunnel::status(&dir, &cli.interface, json),
        Command::Completions { shell } => {
            porta_proto::cli_docs::print_completions(
                <Cli as clap::CommandFactory>::command(),
                shell,
            );
            Ok(())
        }
        Command::Manpages { dir } => porta_proto::cli_docs::write_manpages(
            <Cli as clap::CommandFactory>::command(),
            &dir,
            &MAN_EXTRAS,
        )
        .with_context(|| format!("writing man pages to {}", dir.display())),
        Command::ExportWg { out } => export_wg(&dir, out.as_deref()),
    }
}

async fn enroll(dir: &StateDir, text: &str, yes: bool) -> Result<()> {
    let invitation = Invitation::decode(text)?;
    if invitation.kind != InvitationKind::Device {
        bail!(
            "this invitation is for an administrator (`portactl login`), not for enrolling a computer"
        );
    }
    if dir.is_enrolled() {
        let previous = dir.load()?;
        refuse_while_connected(dir)?;
        let why = replaceable(&previous, &invitation).await?;
        let question = format!(
            "This computer is enrolled as {} ({why}). Enroll it again with a new key?",
            previous.config.device_name
        );
        confirmed(&question, yes)?;
    }
    dir.prepare()?;
    // The private key is made here and never leaves this computer.
    let key = PrivateKey::generate();
    let channel = connect(&invitation.controller, invitation.fingerprint).await?;
    let response = pb::enrollment_client::EnrollmentClient::new(channel)
        .enroll(pb::EnrollRequest {
            token: invitation.token,
            public_key: key.public_key().to_base64(),
            hostname: hostname(),
            os: os_name(),
        })
        .await
        .context("the controller refused the enrollment")?
        .into_inner();
    let config = response
        .config
        .context("the controller sent no configuration")?;
    dir.write_key(&key)?;
    let state = DeviceState {
        controller: invitation.controller,
        fingerprint: invitation.fingerprint.to_string(),
        credential: response.credential,
        config: config.into(),
    };
    dir.save(&state)?;
    println!(
        "Enrolled {} for {} with address {}. Connect with: porta up",
        state.config.device_name,
        state.config.user,
        state.config.addresses.join(", ")
    );
    Ok(())
}

/// Why the saved enrollment `previous` may be replaced by `invitation`'s,
/// or an error when it is still in use with the same controller.
async fn replaceable(previous: &DeviceState, invitation: &Invitation) -> Result<&'static str> {
    if previous.fingerprint != invitation.fingerprint.to_string() {
        return Ok("with another controller");
    }
    let still_valid = async {
        let channel = connect(&previous.controller, invitation.fingerprint).await?;
        pb::session_client::SessionClient::with_interceptor(
            channel,
            porta_proto::connect::Bearer::new(&previous.credential),
        )
        .who_am_i(pb::WhoAmIRequest {})
        .await?;
        anyhow::Ok(())
    };
    match still_valid.await {
        Ok(()) => bail!(
            "this computer is already enrolled as {} and the controller still accepts it; \
             to enroll it again, ask IT to revoke it (`portactl devices revoke {}`) \
             or forget it here with `porta leave`",
            previous.config.device_name,
            previous.config.device_name
        ),
        Err(error) => match error
            .downcast_ref::<tonic::Status>()
            .map(tonic::Status::code)
        {
            Some(tonic::Code::PermissionDenied | tonic::Code::Unauthenticated) => {
                Ok("revoked or no longer accepted by the controller")
            }
            _ => Err(error.context(format!(
                "this computer is already enrolled as {}, and the controller could not be asked \
                 whether that enrollment still holds",
                previous.config.device_name
            ))),
        },
    }
}

/// Refuses to change the enrollment under a running tunnel.
fn refuse_while_connected(dir: &StateDir) -> Result<()> {
    if let Some(pid) = dir.running_tunnel() {
        bail!("the tunnel is connected (`porta up`, pid {pid}); disconnect first: porta down");
    }
    Ok(())
}

/// Asks, or takes `--yes`; an error when the answer is no or nobody can
/// be asked.
fn confirmed(question: &str, yes: bool) -> Result<()> {
    use porta_proto::terminal::{Answer, confirm};
    match confirm(question, yes)? {
        Answer::Yes => Ok(()),
        Answer::No => bail!("cancelled; nothing was changed"),
        Answer::NoTerminal => bail!("{question} Pass --yes to confirm (no terminal to ask on)"),
    }
}

/// `porta export-wg`: the tunnel as a wg-quick file, private key included.
fn export_wg(dir: &StateDir, out: Option<&std::path::Path>) -> Result<()> {
    let config = wgconf::render(&dir.load()?, &dir.key()?);
    match out {
        None => {
            eprintln!(
                "porta: this configuration contains this computer's private key; keep it \
                 private (`--out FILE` writes it readable only by you)"
            );
            print!("{config}");
        }
        Some(path) => {
            use std::io::Write;
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            // An existing file keeps its mode on open: make it private too.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(config.as_bytes())?;
            file.sync_all()?;
            eprintln!(
                "Wrote {} (mode 0600; it contains the private key).",
                path.display()
            );
        }
    }
    Ok(())
}

/// `porta leave`: forgets this computer's enrollment.
fn leave(dir: &StateDir, yes: bool) -> Result<()> {
    let state = dir.load()?;
    refuse_while_connected(dir)?;
    confirmed(
        &format!(
            "Forget the enrollment of {} (its key is deleted)?",
            state.config.device_name
        ),
        yes,
    )?;
    dir.forget()?;
    println!(
        "This computer no longer holds the enrollment of {}. Until IT revokes it \
         (`portactl devices revoke {}`), the controller still lists it.",
        state.config.device_name, state.config.device_name
    );
    Ok(())
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn os_name() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
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

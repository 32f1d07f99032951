//! Command implementations.

mod credentials;
mod devices;
mod directory;
mod enroll;
mod gateways;
mod logs;

pub use crate::error::VerificationFailed;
mod groups;
mod session;
mod users;

use crate::args::{Cli, Command};
use crate::error::Usage;
use crate::profile::{self, Profile, ProfileFile};
use anyhow::{Context, Result, bail};
use porta_proto::cli_docs::Docs;
use porta_proto::connect::{Authed, Bearer, connect};
use porta_proto::pb::admin_client::AdminClient;
use porta_proto::terminal::Answer;
use std::path::PathBuf;

/// What every command needs: flags and the saved logins.
pub struct Ctx {
    /// `--json`.
    pub json: bool,
    /// `--yes`.
    pub yes: bool,
    /// `--profile`.
    pub profile: Option<String>,
    /// The credentials file.
    pub config: PathBuf,
}

impl Ctx {
    /// The selected saved login.
    pub fn login(&self) -> Result<(String, Profile)> {
        let file = ProfileFile::load(&self.config)?;
        let (name, profile) = file.select(self.profile.as_deref())?;
        Ok((name, profile.clone()))
    }

    /// A pinned, authenticated channel to the selected controller.
    pub async fn channel(&self) -> Result<Authed> {
        let (_, profile) = self.login()?;
        let channel = connect(&profile.controller, profile.pinned()?).await?;
        Ok(tonic::service::interceptor::InterceptedService::new(
            channel,
            Bearer::new(&profile.credential),
        ))
    }

    /// An Admin client for the selected login.
    pub async fn admin(&self) -> Result<AdminClient<Authed>> {
        Ok(AdminClient::new(self.channel().await?))
    }

    /// Asks "question [y/N]" on a terminal; without a terminal, requires --yes.
    pub fn confirm(&self, question: &str) -> Result<()> {
        match porta_proto::terminal::confirm(question, self.yes)? {
            Answer::Yes => Ok(()),
            Answer::No => bail!("cancelled"),
            Answer::NoTerminal => bail!(Usage(format!(
                "{question}: refusing without confirmation; pass --yes in scripts"
            ))),
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        json: cli.json,
        yes: cli.yes,
        profile: cli.profile,
        config: cli.config.unwrap_or_else(profile::default_path),
    };
    match cli.command {
        Command::Login(args) => session::login(&ctx, args).await,
        Command::Logout => session::logout(&ctx),
        Command::Whoami => session::whoami(&ctx).await,
        Command::Users(command) => users::run(&ctx, command).await,
        Command::Groups(command) => groups::run(&ctx, command).await,
        Command::Enroll(args) => enroll::run(&ctx, args).await,
        Command::Devices(command) => devices::run(&ctx, command).await,
        Command::Tokens(command) => devices::tokens(&ctx, command).await,
        Command::ApiTokens(command) => credentials::run(&ctx, command).await,
        Command::Gateways(command) => gateways::run(&ctx, command).await,
        Command::Logs(command) => logs::run(&ctx, command).await,
        Command::Directory(command) => directory::run(&ctx, command).await,
        // Completions register the live ones (user, group and device names).
        Command::Docs(Docs::Completions { shell }) => crate::complete::print_registration(shell),
        Command::Docs(Docs::Manpages { dir }) => write_manpages(&dir),
    }
}

/// Writes portactl.1 and one page per subcommand (portactl-users.1, …).
pub fn write_manpages(dir: &std::path::Path) -> Result<()> {
    porta_proto::cli_docs::write_manpages(
        <Cli as clap::CommandFactory>::command(),
        dir,
        &MAN_EXTRAS,
    )
    .with_context(|| format!("writing man pages to {}", dir.display()))
}

/// What portactl's man pages say beyond the options.
const MAN_EXTRAS: porta_proto::cli_docs::ManExtras<'static> = porta_proto::cli_docs::ManExtras {
    examples: &[
        (
            "portactl",
            "Log in with the invitation init printed, then look around:",
            "portactl login porta1_…\nportactl whoami\nportactl devices list",
        ),
        (
            "portactl-login",
            "Log in to a second controller under its own name:",
            "portactl --profile collegno login porta1_…",
        ),
        (
            "portactl-enroll",
            "Invite one laptop (the user is created if new):",
            "portactl enroll --user anna --device anna-laptop --groups gis",
        ),
        (
            "portactl-enroll",
            "Invite everyone in a spreadsheet (any separator, UTF-8 or Windows-1252); re-run to resume:",
            "portactl enroll --csv staff.csv --out invitations.csv",
        ),
        (
            "portactl-devices-revoke",
            "Cut a lost laptop off at once:",
            "portactl devices revoke anna-laptop",
        ),
        (
            "portactl-groups-allow",
            "Let the GIS group reach the GIS servers on HTTPS:",
            "portactl groups allow gis 10.1.20.0/24 --proto tcp --ports 443",
        ),
        (
            "portactl-logs-export",
            "November's connections for a spreadsheet:",
            "portactl logs export --kind connections --from 2026-11-01 --to 2026-11-30 --format xlsx --out november.xlsx",
        ),
        (
            "portactl-logs-verify",
            "Check an exported file offline (exit status 5 if it was changed):",
            "portactl logs verify --file november.xlsx",
        ),
        (
            "portactl-gateways-add",
            "Add a gateway at the library annex:",
            "portactl gateways add annex --endpoint 203.0.113.7:51820",
        ),
    ],
    exit_status: &[
        ("0", "Success."),
        ("1", "An error (the message says which)."),
        ("2", "A usage error: the command or an argument is wrong."),
        ("3", "Not found (a user, group, device, token or gateway)."),
        ("4", "Permission denied, or not logged in."),
        (
            "5",
            "A log does not verify: it was edited, or records are missing.",
        ),
        (
            "6",
            "A directory sync was refused: it would disable more users than allowed.",
        ),
    ],
    files: &[(
        "~/.config/porta/portactl.toml",
        "Saved logins (mode 0600): controller, pinned certificate fingerprint, credential.",
    )],
};

/// Prints an invitation, optionally as a QR code too.
pub fn print_invitation(invitation: &str, qr: bool) -> Result<()> {
    println!("{invitation}");
    if qr {
        // Upper case fits QR's compact alphanumeric mode; invitations
        // parse case-insensitively.
        let code = qrcode::QrCode::with_error_correction_level(
            invitation.to_uppercase(),
            qrcode::EcLevel::L,
        )?;
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        println!("{art}");
    }
    Ok(())
}

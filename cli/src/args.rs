//! The command line, as clap derive definitions. Doc comments are the help
//! text, the man pages and the completions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;
use std::path::PathBuf;

/// Administer a Porta VPN: staff, groups, devices, credentials.
///
/// Exit codes: 0 success, 1 error, 2 usage error, 3 not found,
/// 4 permission denied (or not logged in), 5 a log does not verify.
#[derive(Debug, Parser)]
#[command(
    name = "portactl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Credentials file (default: ~/.config/porta/portactl.toml).
    #[arg(long, global = true, env = "PORTACTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Which saved login to use, or to save under with `login`
    /// (default: the last one logged in; `default` for a first login).
    #[arg(long, global = true, env = "PORTACTL_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Print machine-readable JSON instead of tables and prose.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask for confirmation (for scripts).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with an admin or auditor invitation and save the credential.
    Login(LoginArgs),
    /// Forget a saved login.
    Logout,
    /// Show who the current login is, checked with the controller.
    Whoami,
    /// Staff members.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Groups and the town destinations they may reach.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Enroll a device (prints an invitation), or many from a CSV file.
    Enroll(EnrollArgs),
    /// Enrolled devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Open enrollment tokens (invitations not yet used).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Admin and auditor credentials.
    #[command(subcommand, name = "api-tokens")]
    ApiTokens(ApiTokensCommand),
    /// Gateways: the controller's own and remote ones.
    #[command(subcommand)]
    Gateways(GatewaysCommand),
    /// Connection and admin-action logs: export, verify, who is connected
    /// (auditors and admins).
    #[command(subcommand)]
    Logs(LogsCommand),
    /// The town's directory (Active Directory, OpenLDAP) that users follow:
    /// the last syncs, and a sync now.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Completions and man pages.
    #[command(flatten)]
    Docs(porta_proto::cli_docs::Docs),
}

/// `portactl login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The invitation (porta1_…), as printed by `porta-controller init` or
    /// `portactl api-tokens create`.
    pub invitation: String,
    /// How this machine is named in the controller's credential list.
    #[arg(long, value_name = "TEXT")]
    pub client_name: Option<String>,
}

/// `portactl users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a staff member.
    Add {
        /// Login-style name (letters, digits, . _ - @).
        name: String,
        /// Full name, e.g. "Núria Puig i Solà".
        #[arg(long)]
        display_name: Option<String>,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Groups to join, comma-separated.
        #[arg(long, value_delimiter = ',', add = ArgValueCandidates::new(crate::complete::groups))]
        groups: Vec<String>,
        /// Language of what Porta writes to them (ca, es, it, en); default:
        /// the town's.
        #[arg(long)]
        language: Option<String>,
    },
    /// List staff members.
    List,
    /// Show one staff member.
    Show {
        /// The user.
        #[arg(add = ArgValueCandidates::new(crate::complete::users))]
        name: String,
    },
    /// Disable a user: all of their devices are refused until enabled.
    Disable {
        /// The user.
        #[arg(add = ArgValueCandidates::new(crate::complete::users))]
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The user.
        #[arg(add = ArgValueCandidates::new(crate::complete::users))]
        name: String,
    },
}

/// `portactl groups …`.
#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Create a group.
    Add {
        /// Group name.
        name: String,
        /// What the group is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List groups.
    List,
    /// Show a group's destinations and members.
    Show {
        /// The group.
        #[arg(add = ArgValueCandidates::new(crate::complete::groups))]
        name: String,
    },
    /// Delete a group (its members leave it).
    Delete {
        /// The group.
        #[arg(add = ArgValueCandidates::new(crate::complete::groups))]
        name: String,
    },
    /// Let a group reach a destination.
    Allow(DestinationArgs),
    /// Take a destination away from a group.
    Disallow(DestinationArgs),
    /// Group membership.
    #[command(subcommand)]
    Members(MembersCommand),
}

/// A destination on the command line.
#[derive(Debug, Args)]
pub struct DestinationArgs {
    /// The group.
    #[arg(add = ArgValueCandidates::new(crate::complete::groups))]
    pub group: String,
    /// Prefix in CIDR notation, e.g. 10.1.20.0/24.
    pub cidr: String,
    /// Only this protocol.
    #[arg(long, value_enum)]
    pub proto: Option<Proto>,
    /// Only these ports (tcp/udp), e.g. 3389,445 or 8000-8100.
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<String>,
}

/// A protocol a destination may be limited to.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
}

/// `portactl groups members …`.
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Add users to a group.
    Add {
        /// The group.
        #[arg(add = ArgValueCandidates::new(crate::complete::groups))]
        group: String,
        /// Users.
        #[arg(required = true, add = ArgValueCandidates::new(crate::complete::users))]
        users: Vec<String>,
    },
    /// Remove users from a group.
    Remove {
        /// The group.
        #[arg(add = ArgValueCandidates::new(crate::complete::groups))]
        group: String,
        /// Users.
        #[arg(required = true, add = ArgValueCandidates::new(crate::complete::users))]
        users: Vec<String>,
    },
}

/// `portactl enroll`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["user", "csv"])))]
pub struct EnrollArgs {
    /// The staff member (created if missing).
    #[arg(long, requires = "device", conflicts_with = "csv", add = ArgValueCandidates::new(crate::complete::users))]
    pub user: Option<String>,
    /// The device's name, e.g. anna-laptop.
    #[arg(long, requires = "user")]
    pub device: Option<String>,
    /// Groups the user should be in, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "csv")]
    pub groups: Vec<String>,
    /// How long the invitation stays valid.
    #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
    pub expires: std::time::Duration,
    /// Also print the invitation as a QR code.
    #[arg(long)]
    pub qr: bool,
    /// The gateway the device(s) will connect through (see `gateways
    /// list`); default: the controller's own. A CSV `gateway` column wins.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Enroll every row of a CSV file (columns: user, device, and optionally
    /// groups separated by ';', display_name, email, language, gateway).
    #[arg(long, value_name = "FILE", requires = "out")]
    pub csv: Option<PathBuf>,
    /// Where to write the invitations of a CSV run (appended; rows already
    /// there are skipped when re-run).
    #[arg(long, value_name = "FILE", requires = "csv")]
    pub out: Option<PathBuf>,
    /// The controller also e-mails each invitation to its person (in their
    /// language: the CSV's `language` column, or the directory's, or the
    /// town's default). A failed delivery leaves the invitation valid; a
    /// re-run of the same CSV retries only the deliveries that failed.
    #[arg(long)]
    pub email: bool,
}

/// `portactl devices …`.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List devices.
    List {
        /// Only this user's devices.
        #[arg(long, add = ArgValueCandidates::new(crate::complete::users))]
        user: Option<String>,
        /// Include revoked devices.
        #[arg(long)]
        all: bool,
    },
    /// Show a device (by name, or id for revoked ones).
    Show {
        /// Device name or id.
        #[arg(add = ArgValueCandidates::new(crate::complete::devices))]
        name: String,
    },
    /// Rename a device.
    Rename {
        /// Current name or id.
        #[arg(add = ArgValueCandidates::new(crate::complete::devices))]
        name: String,
        /// New name.
        new_name: String,
    },
    /// Revoke a device at once: it can never connect or enroll again.
    Revoke {
        /// Device name or id.
        #[arg(add = ArgValueCandidates::new(crate::complete::devices))]
        name: String,
    },
}

/// `portactl tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List open enrollment tokens.
    List,
    /// Revoke (delete) an open enrollment token.
    Revoke {
        /// Token id (see `tokens list`).
        id: String,
    },
    /// E-mail an open invitation to its person again. The controller keeps
    /// only a hash of the invitation, so it sends a new one for the same
    /// token: the invitation sent earlier stops working.
    Resend {
        /// Device name or token id (see `tokens list`).
        name: String,
    },
}

/// `portactl logs …`.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Export a log, streamed, as CSV (for LibreOffice Calc and Excel) or
    /// JSON lines; the export carries what `logs verify --file` needs.
    Export {
        /// Which log.
        #[arg(long, value_enum)]
        kind: LogKind,
        /// From this time (ISO 8601 UTC: 2026-11-01 or 2026-11-01T08:00:00Z).
        #[arg(long, value_parser = parse_time)]
        from: Option<u64>,
        /// Up to this time, inclusive (a date alone means its end).
        #[arg(long, value_parser = parse_end_time)]
        to: Option<u64>,
        /// Only this user's records.
        #[arg(long)]
        user: Option<String>,
        /// Only this device's records.
        #[arg(long)]
        device: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write to this file (with a progress bar) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a log's hash chain: the controller's logs (both, or --kind),
    /// or an exported file offline (--file). Names the first record that
    /// was edited, deleted, inserted or reordered; exits 5 if one was.
    Verify {
        /// Only this log of the controller's.
        #[arg(long, value_enum, conflicts_with = "file")]
        kind: Option<LogKind>,
        /// An export (CSV or JSON lines) to check offline.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The export was filtered by --user or --device: gaps between its
        /// records are expected (edits and disorder are still found).
        #[arg(long, requires = "file")]
        partial: bool,
        /// Remember the logs' current heads even if they are behind the
        /// ones this profile verified before (after a deliberate restore
        /// of an older backup).
        #[arg(long, conflicts_with = "file")]
        accept_rollback: bool,
    },
    /// Who is connected now, since when and from where.
    Sessions,
    /// The SIEM feed ([feed] in the controller's config): its state, and
    /// what a collector received turned back into verifiable exports.
    #[command(subcommand)]
    Feed(FeedCommand),
}

/// `logs feed`.
#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Where the feed is: its target, whether it is connected, what the
    /// collector has of each log and how far behind it is, the last error.
    Status,
    /// Turn files a collector wrote (syslog lines as rsyslog writes them,
    /// or JSON lines) back into one log's export, each record once and in
    /// order, for `logs verify --file`. Duplicates (resent after an
    /// outage) must be identical; exits 5 if two differ.
    Extract {
        /// Files the collector wrote, in any order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Which log to extract.
        #[arg(long, value_enum)]
        kind: LogKind,
        /// Write the export (JSON lines) here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Which log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogKind {
    /// Sessions: start, roaming, end, with bytes.
    Connections,
    /// Who changed what.
    Admin,
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// RFC 4180 CSV, UTF-8, with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// An Excel workbook for spreadsheets: times as dates (UTC), counts as
    /// numbers, hashes as text, header frozen (needs --out).
    Xlsx,
}

fn parse_time(text: &str) -> Result<u64, String> {
    parse_instant(text, false)
}

fn parse_end_time(text: &str) -> Result<u64, String> {
    parse_instant(text, true)
}

/// ISO 8601 UTC, a date or a date and time, as Unix seconds; a date alone
/// is its first second, or (for `end`) its last.
/// A date (`2026-11-23`, the whole day: its start, or its end for `--to`)
/// or a time, in UTC (`2026-11-23T14:05:00Z`, or without the `Z`) or with
/// an offset (`2026-11-23T14:05:00+01:00`), as Unix seconds.
fn parse_instant(text: &str, end: bool) -> Result<u64, String> {
    let wrong = || {
        format!(
            "{text:?} is not a date or time like 2026-11-23, 2026-11-23T14:05:00Z or \
             2026-11-23T14:05:00+01:00"
        )
    };
    let text = text.trim();
    let (full, date_only) = if text.len() == 10 {
        (format!("{text}T00:00:00"), true)
    } else {
        (text.to_owned(), false)
    };
    // The offset, in seconds east of UTC, and the local time before it.
    let (local, offset) = match full.strip_suffix('Z') {
        Some(local) => (local.to_owned(), 0i64),
        None => match full.len().checked_sub(6).map(|i| full.split_at(i)) {
            Some((local, zone))
                if local.contains('T')
                    && zone.len() == 6
                    && matches!(zone.as_bytes()[0], b'+' | b'-')
                    && zone.as_bytes()[3] == b':' =>
            {
                let hours: i64 = zone[1..3].parse().map_err(|_| wrong())?;
                let minutes: i64 = zone[4..6].parse().map_err(|_| wrong())?;
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                (local.to_owned(), sign * (hours * 3600 + minutes * 60))
            }
            _ => (full.clone(), 0),
        },
    };
    let at = humantime::parse_rfc3339_weak(&local).map_err(|_| wrong())?;
    let local_secs = i64::try_from(
        at.duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("{text:?} is before 1970"))?
            .as_secs(),
    )
    .map_err(|_| wrong())?;
    let secs =
        u64::try_from(local_secs - offset).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(if date_only && end {
        secs + 86_399
    } else {
        secs
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_instant;

    #[test]
    fn times_are_read_in_utc_or_with_their_offset_and_dates_as_whole_days() {
        let utc = parse_instant("2026-11-23T13:05:00Z", false).unwrap();
        assert_eq!(parse_instant("2026-11-23T13:05:00", false).unwrap(), utc);
        assert_eq!(
            parse_instant("2026-11-23T14:05:00+01:00", false).unwrap(),
            utc
        );
        assert_eq!(
            parse_instant("2026-11-23T08:05:00-05:00", false).unwrap(),
            utc
        );
        let day = parse_instant("2026-11-23", false).unwrap();
        assert_eq!(parse_instant("2026-11-23", true).unwrap(), day + 86_399);
        assert_eq!(utc - day, 13 * 3600 + 5 * 60);
        assert!(parse_instant("23/11/2026", false).is_err());
        assert!(parse_instant("2026-11-23T14:05:00+1", false).is_err());
    }
}

/// `portactl gateways …`.
#[derive(Debug, Subcommand)]
pub enum GatewaysCommand {
    /// List gateways, with the peer revision each confirmed and whether
    /// it follows this controller.
    List,
    /// Add a remote gateway; prints the invitation for
    /// `porta-gateway --controller <invitation>` on its host.
    Add {
        /// A name for it, e.g. library-annex.
        name: String,
        /// host:port (UDP) staff devices will connect to.
        #[arg(long)]
        endpoint: String,
        /// How long the invitation stays valid.
        #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
        expires: std::time::Duration,
    },
    /// Retire a remote gateway: its credential stops working at once.
    /// Refused while live devices connect through it.
    Remove {
        /// The gateway's name.
        name: String,
    },
    /// After a restore of the controller: let a gateway that is not
    /// following (it applied changes the restore undid) take the
    /// controller's peer set as it is now, replacing its own. Re-revoke
    /// what was revoked since the backup first. Logged.
    Resync {
        /// The gateway's name.
        name: String,
    },
}

/// `portactl directory …`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// When the directory was last synced, what changed, and why a sync
    /// failed or was refused.
    Status,
    /// Sync now: users follow the directory's people and groups; leavers'
    /// devices are cut off at the gateways. Exit status 6 if the plan was
    /// refused for disabling too many users.
    Sync {
        /// Show the plan (created, updated, disabled, enabled, group
        /// changes) without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Apply the plan even if it disables more users than
        /// max_disable_fraction allows (after a human looked at it).
        #[arg(long, conflicts_with = "dry_run")]
        force: bool,
    },
}

/// `portactl api-tokens …`.
#[derive(Debug, Subcommand)]
pub enum ApiTokensCommand {
    /// Create an admin or auditor credential; prints a login invitation.
    Create {
        /// The role.
        #[arg(long, value_enum)]
        role: ApiRole,
        /// A name for it, e.g. auditor-2026.
        #[arg(long)]
        name: String,
        /// How long the invitation stays valid.
        #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
        expires: std::time::Duration,
        /// Also print the invitation as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// List admin and auditor credentials.
    List {
        /// Include revoked credentials.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a credential (by id or name).
    Revoke {
        /// Credential id or name.
        id: String,
    },
}

/// Roles an API credential can have.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ApiRole {
    /// Everything.
    Admin,
    /// Read and export logs only.
    Auditor,
}

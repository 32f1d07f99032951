//! Shell completion, including the names an admin types most: users,
//! groups and devices, asked of the controller through the saved login.
//!
//! The shells call back into `portactl` while completing (clap_complete's
//! environment-activated engine: `COMPLETE=bash portactl -- …`), so names
//! are always current. Without a saved login, or when the controller does
//! not answer within [`ASK_WITHIN`], names are simply not offered: a
//! completion never blocks the shell or prints an error.
//!
//! `portactl completions SHELL` prints the small registration script the
//! shell loads (what the Debian package installs).

use crate::profile::{self, ProfileFile};
use clap_complete::CompletionCandidate;
use clap_complete::env::EnvCompleter;
use porta_proto::connect::{Bearer, connect};
use porta_proto::pb;
use std::time::Duration;

/// How long a completion waits for the controller.
const ASK_WITHIN: Duration = Duration::from_secs(2);

/// The environment variable that switches `portactl` into completing.
const VAR: &str = "COMPLETE";

/// Answers a completion request for the command `definition` makes, and
/// exits, when the shell made one (call first in `main`, before any
/// runtime starts).
pub fn answer_if_asked(definition: fn() -> clap::Command) {
    clap_complete::CompleteEnv::with_factory(definition)
        .var(VAR)
        .complete();
}

/// Prints the registration script for `shell`.
pub fn print_registration(shell: porta_proto::cli_docs::Shell) -> anyhow::Result<()> {
    use porta_proto::cli_docs::Shell;
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
        Shell::Elvish => &clap_complete::env::Elvish,
        Shell::PowerShell => &clap_complete::env::Powershell,
        other => anyhow::bail!("no completions for {other}"),
    };
    completer.write_registration(
        VAR,
        "portactl",
        "portactl",
        "portactl",
        &mut std::io::stdout(),
    )?;
    Ok(())
}

/// Users, for arguments that name one.
pub fn users() -> Vec<CompletionCandidate> {
    ask(|mut admin| async move {
        let users = admin.list_users(pb::ListUsersRequest {}).await.ok()?;
        Some(
            users
                .into_inner()
                .users
                .into_iter()
                .map(|u| CompletionCandidate::new(u.name).help(Some(u.display_name.into())))
                .collect(),
        )
    })
}

/// Groups, for arguments that name one.
pub fn groups() -> Vec<CompletionCandidate> {
    ask(|mut admin| async move {
        let groups = admin.list_groups(pb::ListGroupsRequest {}).await.ok()?;
        Some(
            groups
                .into_inner()
                .groups
                .into_iter()
                .map(|g| CompletionCandidate::new(g.name).help(Some(g.description.into())))
                .collect(),
        )
    })
}

/// Live devices, for arguments that name one.
pub fn devices() -> Vec<CompletionCandidate> {
    ask(|mut admin| async move {
        let request = pb::ListDevicesRequest {
            user: String::new(),
            include_revoked: false,
        };
        let devices = admin.list_devices(request).await.ok()?;
        Some(
            devices
                .into_inner()
                .devices
                .into_iter()
                .map(|d| CompletionCandidate::new(d.name).help(Some(d.user.into())))
                .collect(),
        )
    })
}

type Admin = pb::admin_client::AdminClient<porta_proto::connect::Authed>;

/// Runs `list` against the controller of the saved login (`PORTACTL_CONFIG`
/// or the default file, `PORTACTL_PROFILE` or the current login); nothing
/// on any failure.
fn ask<F, Fut>(list: F) -> Vec<CompletionCandidate>
where
    F: FnOnce(Admin) -> Fut,
    Fut: std::future::Future<Output = Option<Vec<CompletionCandidate>>>,
{
    let path = std::env::var_os("PORTACTL_CONFIG")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(profile::default_path);
    let wanted = std::env::var("PORTACTL_PROFILE").ok();
    let Ok(file) = ProfileFile::load(&path) else {
        return Vec::new();
    };
    let Ok((_, login)) = file.select(wanted.as_deref()) else {
        return Vec::new();
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime
        .block_on(async {
            tokio::time::timeout(ASK_WITHIN, async {
                let channel = connect(&login.controller, login.pinned().ok()?)
                    .await
                    .ok()?;
                let admin = pb::admin_client::AdminClient::with_interceptor(
                    channel,
                    Bearer::new(&login.credential),
                );
                list(admin).await
            })
            .await
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

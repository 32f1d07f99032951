//! login, logout, whoami.

use super::Ctx;
use crate::args::LoginArgs;
use crate::output;
use crate::profile::{Profile, ProfileFile};
use anyhow::{Context, Result, bail};
use porta_proto::connect::{Bearer, connect};
use porta_proto::pb;
use porta_proto::{Invitation, pb::InvitationKind};
use serde_json::json;

pub(super) async fn login(ctx: &Ctx, args: LoginArgs) -> Result<()> {
    let invitation =
        Invitation::decode(&args.invitation).map_err(|e| crate::error::Usage(e.to_string()))?;
    match invitation.kind {
        InvitationKind::Device => bail!(crate::error::Usage(
            "this is a device invitation: run `porta enroll` on the staff member's computer".into()
        )),
        InvitationKind::Gateway => bail!(crate::error::Usage(
            "this is a gateway invitation: use `porta-gateway --controller <invitation>`".into()
        )),
        _ => {}
    }
    let channel = connect(&invitation.controller, invitation.fingerprint).await?;
    let client_name = args.client_name.unwrap_or_else(default_client_name);
    let response = pb::enrollment_client::EnrollmentClient::new(channel)
        .login(pb::LoginRequest {
            token: invitation.token,
            client_name,
        })
        .await
        .context("the controller refused the invitation")?
        .into_inner();
    let profile_name = ctx.profile.clone().unwrap_or_else(|| "default".into());
    let mut file = ProfileFile::load(&ctx.config)?;
    // Logging in again to the same controller keeps what `logs verify`
    // remembers of it.
    let verified = file
        .profiles
        .get(&profile_name)
        .filter(|p| {
            p.controller == invitation.controller
                && p.fingerprint == invitation.fingerprint.to_string()
        })
        .map(|p| p.verified.clone())
        .unwrap_or_default();
    let profile = Profile {
        controller: invitation.controller.clone(),
        fingerprint: invitation.fingerprint.to_string(),
        credential: response.credential,
        role: output::role(response.role).into(),
        name: response.name.clone(),
        verified,
    };
    file.profiles.insert(profile_name.clone(), profile.clone());
    file.current = Some(profile_name.clone());
    file.save(&ctx.config)?;
    output::show(
        ctx.json,
        json!({"profile": profile_name, "controller": profile.controller, "role": profile.role, "name": profile.name,
               "fingerprint": profile.fingerprint, "config": ctx.config}),
        || {
            format!(
                "Logged in to {} as {} ({}); saved as profile {profile_name:?} in {}",
                profile.controller,
                profile.name,
                profile.role,
                ctx.config.display()
            )
        },
    );
    Ok(())
}

pub(super) fn logout(ctx: &Ctx) -> Result<()> {
    let mut file = ProfileFile::load(&ctx.config)?;
    let (name, _) = file.select(ctx.profile.as_deref())?;
    file.profiles.remove(&name);
    if file.current.as_deref() == Some(name.as_str()) {
        file.current = file.profiles.keys().next().cloned();
    }
    file.save(&ctx.config)?;
    output::show(
        ctx.json,
        json!({"logged_out": name, "current": file.current}),
        || {
            format!(
                "Forgot the login {name:?} (the credential stays valid until an admin revokes it)"
            )
        },
    );
    Ok(())
}

pub(super) async fn whoami(ctx: &Ctx) -> Result<()> {
    let (profile_name, profile) = ctx.login()?;
    let channel = connect(&profile.controller, profile.pinned()?).await?;
    let me = pb::session_client::SessionClient::with_interceptor(
        channel,
        Bearer::new(&profile.credential),
    )
    .who_am_i(pb::WhoAmIRequest {})
    .await?
    .into_inner();
    output::show(
        ctx.json,
        json!({"profile": profile_name, "controller": profile.controller, "name": me.name,
               "role": output::role(me.role), "credential_id": me.credential_id}),
        || {
            format!(
                "{} ({}) on {}, profile {profile_name:?}, credential {}",
                me.name,
                output::role(me.role),
                profile.controller,
                me.credential_id
            )
        },
    );
    Ok(())
}

fn default_client_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    match (user.trim(), host.trim()) {
        ("", "") => "portactl".into(),
        (u, "") => format!("portactl {u}"),
        ("", h) => format!("portactl on {h}"),
        (u, h) => format!("portactl {u}@{h}"),
    }
}

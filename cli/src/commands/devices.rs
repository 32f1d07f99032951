//! devices list|show|rename|revoke; tokens list|revoke.

use super::Ctx;
use crate::args::{DevicesCommand, TokensCommand};
use crate::output::{self, Listing};
use anyhow::Result;
use porta_proto::pb;
use serde_json::json;
use std::time::Instant;

pub(super) async fn run(ctx: &Ctx, command: DevicesCommand) -> Result<()> {
    let mut admin = ctx.admin().await?;
    let device = match command {
        DevicesCommand::List { user, all } => {
            let request = pb::ListDevicesRequest {
                user: user.unwrap_or_default(),
                include_revoked: all,
            };
            let devices = admin.list_devices(request).await?.into_inner().devices;
            listing(&devices).print(ctx.json);
            return Ok(());
        }
        DevicesCommand::Show { name } => admin
            .get_device(pb::GetDeviceRequest { name })
            .await?
            .into_inner(),
        DevicesCommand::Rename { name, new_name } => admin
            .rename_device(pb::RenameDeviceRequest { name, new_name })
            .await?
            .into_inner(),
        DevicesCommand::Revoke { name } => {
            // Look it up first so the question names the right device.
            let device = admin
                .get_device(pb::GetDeviceRequest { name: name.clone() })
                .await?
                .into_inner();
            ctx.confirm(&format!(
                "Revoke {} ({}, {})? It can never connect or enroll again",
                device.name,
                device.user,
                device.addresses.join(", ")
            ))?;
            let started = Instant::now();
            let response = admin
                .revoke_device(pb::RevokeDeviceRequest {
                    name: device.id.clone(),
                })
                .await?
                .into_inner();
            let elapsed = started.elapsed();
            let revoked = response.device.unwrap_or_default();
            let mut value = output::device_json(&revoked);
            value["confirmed_gateways"] = json!(response.confirmed_gateways);
            value["pending_gateways"] = json!(response.pending_gateways);
            value["not_following_gateways"] = json!(response.not_following_gateways);
            value["elapsed_ms"] = json!(elapsed.as_millis());
            output::show(ctx.json, value, || {
                let mut text = format!("Revoked {} in {} ms", revoked.name, elapsed.as_millis());
                if !response.confirmed_gateways.is_empty() {
                    text += &format!("; confirmed by {}", response.confirmed_gateways.join(", "));
                }
                let away: Vec<&String> = response
                    .pending_gateways
                    .iter()
                    .filter(|g| !response.not_following_gateways.contains(g))
                    .collect();
                if !away.is_empty() {
                    text += &format!(
                        "; NOT yet confirmed by {}",
                        away.iter()
                            .map(|g| g.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                for gateway in &response.not_following_gateways {
                    text += &format!(
                        "\nWARNING: gateway {gateway} is NOT following this controller (it holds \
                         changes a restore undid) and may still let the device in; see \
                         `portactl gateways list`, then `portactl gateways resync {gateway}`"
                    );
                }
                text
            });
            return Ok(());
        }
    };
    output::show(ctx.json, output::device_json(&device), || describe(&device));
    Ok(())
}

pub(super) async fn tokens(ctx: &Ctx, command: TokensCommand) -> Result<()> {
    let mut admin = ctx.admin().await?;
    match command {
        TokensCommand::List => {
            let tokens = admin
                .list_enrollment_tokens(pb::ListEnrollmentTokensRequest {})
                .await?
                .into_inner()
                .tokens;
            Listing {
                headers: &["id", "user", "device", "expires", "created by", "e-mail"],
                rows: tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.user.clone(),
                            t.device_name.clone(),
                            output::time(t.expires_at),
                            t.created_by.clone(),
                            email_state(t),
                        ]
                    })
                    .collect(),
                json: tokens.iter().map(output::token_json).collect(),
            }
            .print(ctx.json);
        }
        TokensCommand::Revoke { id } => {
            ctx.confirm(&format!(
                "Revoke enrollment token {id}? Its invitation stops working"
            ))?;
            admin
                .delete_enrollment_token(pb::DeleteEnrollmentTokenRequest { id: id.clone() })
                .await?;
            output::show(ctx.json, json!({"revoked": id}), || {
                format!("Revoked enrollment token {id}")
            });
        }
        TokensCommand::Resend { name } => {
            let sent = admin
                .resend_enrollment_token(pb::ResendEnrollmentTokenRequest {
                    id: name.clone(),
                    invitation: String::new(),
                })
                .await?
                .into_inner();
            let email = sent.email.unwrap_or_default();
            if ctx.json {
                println!(
                    "{}",
                    json!({"device": name, "to": email.to, "sent": email.sent, "error": email.error})
                );
            } else if email.sent {
                println!(
                    "E-mailed a new invitation for {name} to {}; the one sent before no longer works.",
                    email.to
                );
            }
            if !email.sent {
                anyhow::bail!(
                    "the invitation for {name} was not e-mailed to {}: {} (a new invitation was \
                     made and stays valid; `portactl tokens resend {name}` tries again)",
                    email.to,
                    email.error
                );
            }
        }
    }
    Ok(())
}

/// An open token's e-mail state for tables.
fn email_state(token: &pb::EnrollmentToken) -> String {
    match (
        token.email_to.is_empty(),
        token.emailed_at,
        token.email_error.is_empty(),
    ) {
        (true, _, _) => "-".into(),
        (false, 0, false) => format!("failed: {}", token.email_error),
        (false, 0, true) => format!("pending to {}", token.email_to),
        (false, at, _) => format!("sent {} to {}", output::time(at), token.email_to),
    }
}

fn listing(devices: &[pb::DeviceInfo]) -> Listing {
    Listing {
        headers: &["name", "user", "address", "client", "last seen", "state"],
        rows: devices
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.user.clone(),
                    d.addresses.first().cloned().unwrap_or_default(),
                    client_summary(d),
                    output::time(d.last_seen_at),
                    if d.revoked {
                        "revoked".into()
                    } else {
                        "active".into()
                    },
                ]
            })
            .collect(),
        json: devices.iter().map(output::device_json).collect(),
    }
}

/// "porta 0.1.0 on Debian 12 (anna-pc)", or "-" before the first report.
fn client_summary(d: &pb::DeviceInfo) -> String {
    if d.client_version.is_empty() {
        return "-".into();
    }
    let mut text = format!("porta {}", d.client_version);
    if !d.os.is_empty() {
        text.push_str(&format!(" on {}", d.os));
    }
    if !d.hostname.is_empty() {
        text.push_str(&format!(" ({})", d.hostname));
    }
    text
}

fn describe(d: &pb::DeviceInfo) -> String {
    let mut text = identity(d);
    if !d.reach.is_empty() {
        text += "\n  may reach:";
        for reach in &d.reach {
            let what = reach
                .destination
                .as_ref()
                .map(output::destination)
                .unwrap_or_default();
            text += &match (reach.because.as_str(), reach.covered_by.as_str()) {
                ("everyone", _) => format!("\n    {what}  (town-wide route: every device)"),
                (group, "") => format!("\n    {what}  (group {group})"),
                (group, route) => format!(
                    "\n    {what}  (group {group}; restricts nothing: the town-wide route {route} \
                     already opens it to every device)"
                ),
            };
        }
    }
    text
}

fn identity(d: &pb::DeviceInfo) -> String {
    format!(
        "device: {}\n  id: {}\n  user: {}\n  public key: {}\n  addresses: {}\n  hostname: {}\n  os: {}\n  \
         client: {}\n  enrolled: {}\n  last seen: {}\n  last handshake: {}\n  state: {}",
        d.name,
        d.id,
        d.user,
        d.public_key,
        d.addresses.join(", "),
        d.hostname,
        d.os,
        client_summary(d),
        output::time(d.enrolled_at),
        output::time(d.last_seen_at),
        output::time(d.last_handshake_at),
        if d.revoked {
            format!("revoked {} by {}", output::time(d.revoked_at), d.revoked_by)
        } else {
            "active".into()
        }
    )
}

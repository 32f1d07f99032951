//! gateways list|add|remove|resync.

use super::{Ctx, print_invitation};
use crate::args::GatewaysCommand;
use crate::output::{self, Listing};
use anyhow::{Result, bail};
use porta_proto::pb;
use serde_json::{Value, json};

pub(super) async fn run(ctx: &Ctx, command: GatewaysCommand) -> Result<()> {
    let mut admin = ctx.admin().await?;
    match command {
        GatewaysCommand::List => {
            let gateways = admin
                .list_gateways(pb::ListGatewaysRequest {})
                .await?
                .into_inner()
                .gateways;
            Listing {
                headers: &[
                    "name",
                    "kind",
                    "endpoint",
                    "public key",
                    "confirmed revision",
                    "state",
                    "last seen",
                    "refused events",
                ],
                rows: gateways
                    .iter()
                    .map(|g| {
                        vec![
                            g.name.clone(),
                            kind(g).into(),
                            g.endpoint.clone(),
                            if g.public_key.is_empty() {
                                "(not yet connected)".into()
                            } else {
                                g.public_key.clone()
                            },
                            g.applied_revision.to_string(),
                            state(g).into(),
                            output::time(g.last_seen_at),
                            g.refused_events.to_string(),
                        ]
                    })
                    .collect(),
                json: gateways.iter().map(gateway_json).collect(),
            }
            .print(ctx.json);
        }
        GatewaysCommand::Remove { name } => {
            ctx.confirm(&format!(
                "Remove the gateway {name:?}? It will stop serving at once"
            ))?;
            let removed = admin
                .remove_gateway(pb::RemoveGatewayRequest { name })
                .await?
                .into_inner()
                .gateway
                .unwrap_or_default();
            if ctx.json {
                println!("{}", gateway_json(&removed));
            } else {
                println!(
                    "Removed gateway {:?}; its credential no longer works.",
                    removed.name
                );
            }
        }
        GatewaysCommand::Resync { name } => {
            ctx.confirm(&format!(
                "Let {name:?} replace its peer set with this controller's? Devices revoked only \
                 in the undone history stay revoked only if you revoked them again"
            ))?;
            let gateway = admin
                .resync_gateway(pb::ResyncGatewayRequest { name })
                .await?
                .into_inner()
                .gateway
                .unwrap_or_default();
            output::show(ctx.json, gateway_json(&gateway), || {
                format!(
                    "Gateway {:?} takes this controller's peer set at its next connection \
                     (within 10 s if it is running); `portactl gateways list` shows it following.",
                    gateway.name
                )
            });
        }
        GatewaysCommand::Add {
            name,
            endpoint,
            expires,
        } => {
            if expires.as_secs() < 60 {
                bail!(crate::error::Usage("--expires must be at least 1m".into()));
            }
            let created = admin
                .create_gateway(pb::CreateGatewayRequest {
                    name,
                    endpoint,
                    ttl_seconds: expires.as_secs(),
                })
                .await?
                .into_inner();
            let gateway = created.gateway.unwrap_or_default();
            if ctx.json {
                let mut value = gateway_json(&gateway);
                value["invitation"] = created.invitation.into();
                println!("{value}");
            } else {
                eprintln!(
                    "Added gateway {:?} at {}. On its host, as root (valid {}, once):",
                    gateway.name,
                    gateway.endpoint,
                    porta_proto::terminal::duration(expires)
                );
                print!("porta-gateway --controller ");
                print_invitation(&created.invitation, false)?;
            }
        }
    }
    Ok(())
}

fn kind(g: &pb::GatewayInfo) -> &'static str {
    if g.embedded { "embedded" } else { "remote" }
}

/// Whether it follows this controller, in a word or two.
fn state(g: &pb::GatewayInfo) -> &'static str {
    match (g.not_following.is_empty(), g.resync_pending) {
        (true, _) => "following",
        (false, true) => "NOT FOLLOWING (resync pending)",
        (false, false) => "NOT FOLLOWING",
    }
}

fn gateway_json(g: &pb::GatewayInfo) -> Value {
    json!({
        "id": g.id, "name": g.name, "kind": kind(g), "endpoint": g.endpoint,
        "public_key": g.public_key, "applied_revision": g.applied_revision,
        "last_seen_at": output::time_json(g.last_seen_at),
        "refused_events": g.refused_events,
        "following": g.not_following.is_empty(),
        "not_following": (!g.not_following.is_empty()).then_some(&g.not_following),
        "resync_pending": g.resync_pending,
    })
}

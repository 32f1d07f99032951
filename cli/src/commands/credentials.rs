//! api-tokens create|list|revoke.

use super::{Ctx, print_invitation};
use crate::args::{ApiRole, ApiTokensCommand};
use crate::output::{self, Listing};
use anyhow::Result;
use porta_proto::pb;

pub(super) async fn run(ctx: &Ctx, command: ApiTokensCommand) -> Result<()> {
    let mut admin = ctx.admin().await?;
    match command {
        ApiTokensCommand::Create {
            role,
            name,
            expires,
            qr,
        } => {
            let role = match role {
                ApiRole::Admin => pb::Role::Admin,
                ApiRole::Auditor => pb::Role::Auditor,
            };
            let request = pb::CreateApiCredentialRequest {
                name,
                role: role as i32,
                ttl_seconds: expires.as_secs().max(1),
            };
            let created = admin.create_api_credential(request).await?.into_inner();
            let credential = created.credential.unwrap_or_default();
            if ctx.json {
                let mut value = output::credential_json(&credential);
                value["invitation"] = created.invitation.into();
                println!("{value}");
            } else {
                eprintln!(
                    "Created {} credential {:?}. Log in with (valid {}, once):",
                    output::role(credential.role),
                    credential.name,
                    porta_proto::terminal::duration(expires)
                );
                print!("portactl login ");
                print_invitation(&created.invitation, qr)?;
            }
        }
        ApiTokensCommand::List { all } => {
            let request = pb::ListApiCredentialsRequest {
                include_revoked: all,
            };
            let credentials = admin
                .list_api_credentials(request)
                .await?
                .into_inner()
                .credentials;
            Listing {
                headers: &["id", "name", "role", "state", "client", "created"],
                rows: credentials
                    .iter()
                    .map(|c| {
                        let state = if c.revoked {
                            "revoked"
                        } else if c.pending {
                            "pending login"
                        } else {
                            "active"
                        };
                        vec![
                            c.id.clone(),
                            c.name.clone(),
                            output::role(c.role).into(),
                            state.into(),
                            c.client_name.clone(),
                            output::time(c.created_at),
                        ]
                    })
                    .collect(),
                json: credentials.iter().map(output::credential_json).collect(),
            }
            .print(ctx.json);
        }
        ApiTokensCommand::Revoke { id } => {
            ctx.confirm(&format!(
                "Revoke API credential {id}? Whoever uses it is locked out at once"
            ))?;
            let revoked = admin
                .revoke_api_credential(pb::RevokeApiCredentialRequest { id })
                .await?
                .into_inner();
            let credential = revoked.credential.unwrap_or_default();
            output::show(ctx.json, output::credential_json(&credential), || {
                format!(
                    "Revoked {} credential {} ({})",
                    output::role(credential.role),
                    credential.name,
                    credential.id
                )
            });
        }
    }
    Ok(())
}

//! API credentials: admin, auditor and gateway credentials, each made
//! pending with a one-time login invitation, listed and revoked.
use super::{Controller, credential_json};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::secret;
use crate::store::records::*;
use porta_proto::pb;

impl Controller {
    /// Creates a pending admin/auditor/gateway credential and its login
    /// invitation (shown once).
    pub async fn create_api_credential(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        ttl_secs: u64,
        now: u64,
    ) -> Result<(CredentialRecord, String)> {
        let expires_at = self.invitation_expiry(now, ttl_secs);
        let (credential, login) = self
            .write(|t| {
                let credential = CredentialRecord {
                    id: secret::new_id(),
                    name: name.to_owned(),
                    role,
                    hash: None,
                    created_at: now,
                    created_by: actor.name.clone(),
                    revoked_at: None,
                    client_name: String::new(),
                    device_id: None,
                };
                let login = secret::issue();
                let invite = InviteRecord {
                    id: login.id.clone(),
                    hash: login.hash,
                    purpose: InvitePurpose::Login {
                        credential_id: credential.id.clone(),
                    },
                    created_at: now,
                    expires_at,
                    created_by: actor.name.clone(),
                    redeemed_at: None,
                    email: None,
                    redeemed_by: None,
                };
                t.put_credential(&credential)?;
                t.insert_invite(&invite)?;
                log_admin(
                    t,
                    actor,
                    "credential.create",
                    name,
                    None,
                    credential_json(&credential),
                    now,
                )?;
                Ok((credential, login))
            })
            .await?;
        let kind = if role == Role::Gateway {
            pb::InvitationKind::Gateway
        } else {
            pb::InvitationKind::Login
        };
        Ok((credential, self.invitation(&login.text, kind)))
    }

    /// Admin and auditor credentials.
    pub fn list_api_credentials(&self, include_revoked: bool) -> Result<Vec<CredentialRecord>> {
        Ok(self
            .store
            .credentials()?
            .into_iter()
            .filter(|c| matches!(c.role, Role::Admin | Role::Auditor))
            .filter(|c| include_revoked || c.revoked_at.is_none())
            .collect())
    }

    /// Revokes an admin or auditor credential by id or (unique) name.
    pub async fn revoke_api_credential(
        &self,
        actor: &Actor,
        id_or_name: &str,
        now: u64,
    ) -> Result<CredentialRecord> {
        let matches: Vec<CredentialRecord> = self
            .list_api_credentials(false)?
            .into_iter()
            .filter(|c| c.id == id_or_name || c.name == id_or_name)
            .collect();
        let target = match matches.as_slice() {
            [one] => one.clone(),
            [] => return Err(Error::not_found("API credential", id_or_name)),
            _ => {
                return Err(Error::FailedPrecondition(format!(
                    "{} live credentials are named {id_or_name:?}; revoke by id",
                    matches.len()
                )));
            }
        };
        self.write(|t| {
            let mut credential = target.clone();
            credential.revoked_at = Some(now);
            t.put_credential(&credential)?;
            log_admin(
                t,
                actor,
                "credential.revoke",
                &credential.name,
                credential_json(&target),
                credential_json(&credential),
                now,
            )?;
            Ok(credential)
        })
        .await
    }
}

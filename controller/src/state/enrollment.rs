//! Enrollment: device tokens made, listed and deleted; tokens redeemed —
//! a device enrolled (token spent, device recorded, address leased,
//! credential made, in one transaction) or a login credential activated.
use super::{Controller, credential_json, invite_json, json};
use crate::error::{Error, Result};
use crate::ipam;
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::names;
use crate::secret::{self, IssuedSecret, PresentedSecret, SecretHash};
use crate::settings::Settings;
use crate::store::records::*;
use crate::store::{TxError, Txn};
use porta_proto::refusal::Refusal;
use porta_proto::{PublicKey, pb};
use std::net::Ipv4Addr;

impl Controller {
    /// Creates a one-time enrollment token for `user`'s device `device_name`
    /// and returns it with its invitation string.
    pub async fn create_enrollment_token(
        &self,
        actor: &Actor,
        user: &str,
        device_name: &str,
        gateway: Option<&str>,
        ttl_secs: u64,
        now: u64,
    ) -> Result<(InviteRecord, String)> {
        let expires_at = self.invitation_expiry(now, ttl_secs);
        if let Some(name) = gateway {
            self.remote_gateway_ready(name)?;
        }
        let (record, secret) = self
            .write(|t| {
                let owner = t.require_user(user)?;
                if owner.disabled {
                    return Err(
                        Error::FailedPrecondition(format!("user {user:?} is disabled")).into(),
                    );
                }
                if t.device_name_taken(device_name, now)? {
                    return Err(Error::AlreadyExists(format!(
                        "a device or open enrollment token named {device_name:?} exists already"
                    ))
                    .into());
                }
                let secret = secret::issue();
                let record = InviteRecord {
                    id: secret.id.clone(),
                    hash: secret.hash,
                    purpose: InvitePurpose::Device {
                        user: user.to_owned(),
                        device_name: device_name.to_owned(),
                        gateway: gateway.map(str::to_owned),
                    },
                    created_at: now,
                    expires_at,
                    created_by: actor.name.clone(),
                    redeemed_at: None,
                    email: None,
                    redeemed_by: None,
                };
                t.claim_name(names::Kind::Device, device_name, |t, holder| {
                    t.device_name_taken(holder, now)
                })?;
                t.insert_invite(&record)?;
                log_admin(
                    t,
                    actor,
                    "token.create",
                    device_name,
                    None,
                    invite_json(&record),
                    now,
                )?;
                Ok((record, secret))
            })
            .await?;
        Ok((
            record,
            self.invitation(&secret.text, pb::InvitationKind::Device),
        ))
    }

    /// Unredeemed, unexpired device enrollment tokens.
    pub fn list_enrollment_tokens(&self, now: u64) -> Result<Vec<InviteRecord>> {
        Ok(self
            .store
            .invites()?
            .into_iter()
            .filter(|i| i.redeemed_at.is_none() && i.expires_at > now)
            .filter(|i| matches!(i.purpose, InvitePurpose::Device { .. }))
            .collect())
    }

    /// Deletes an unredeemed enrollment token.
    pub async fn delete_enrollment_token(&self, actor: &Actor, id: &str, now: u64) -> Result<()> {
        self.write(|t| match t.invite(id)? {
            Some(
                invite @ InviteRecord {
                    purpose: InvitePurpose::Device { .. },
                    redeemed_at: None,
                    ..
                },
            ) => {
                let InvitePurpose::Device { device_name, .. } = &invite.purpose else {
                    unreachable!("matched above")
                };
                log_admin(
                    t,
                    actor,
                    "token.delete",
                    device_name,
                    invite_json(&invite),
                    None,
                    now,
                )?;
                t.remove_invite(&invite)
            }
            _ => Err(Error::not_found("enrollment token", id).into()),
        })
        .await
    }

    /// Redeems a device enrollment token: in one transaction the token is
    /// consumed, the device recorded, its address leased and its credential
    /// created. Returns the device and its credential (shown once).
    ///
    /// A spent token presented again with the same key and attempt, before
    /// it would have expired, is the same device asking again because the
    /// answer was lost: it gets that device with a new credential (the
    /// first one, never received, stops working). Anyone else is refused
    /// as before.
    pub async fn enroll(
        &self,
        request: &DeviceEnrollment<'_>,
        address: &str,
        now: u64,
    ) -> Result<(DeviceRecord, String)> {
        let DeviceEnrollment {
            token,
            public_key,
            hostname,
            os,
            attempt,
        } = *request;
        let presented = secret::parse(token).ok_or_else(invalid_invitation)?;
        if self
            .list_gateways()?
            .iter()
            .any(|g| g.public_key == Some(public_key))
        {
            return Err(Error::AlreadyExists(
                "this WireGuard public key is a gateway's own".into(),
            ));
        }
        let settings = &self.settings;
        let (device, credential) = self
            .write(|t| {
                let invite = match redeemable_invite(t, &presented, now) {
                    Ok(invite) => invite,
                    Err(refused) => {
                        return match retried_device(t, &presented, &public_key, attempt, now)? {
                            Some(device) => reissue_credential(t, device, hostname, address, now),
                            None => Err(refused),
                        };
                    }
                };
                let InvitePurpose::Device { user, device_name, gateway } = &invite.purpose else {
                    return Err(Error::invalid(
                        "this is a login invitation, not a device invitation: use `portactl login`",
                    )
                    .into());
                };
                let owner = t.require_user(user)?;
                if owner.disabled {
                    return Err(super::auth::user_paused(&owner).into());
                }
                if t.live_device_named(device_name)? {
                    return Err(Error::refused(
                        Refusal::DeviceNameTaken,
                        format!("a device named {device_name:?} exists already"),
                    )
                    .into());
                }
                if t.device_key_known(&public_key)? {
                    return Err(Error::refused(
                        Refusal::KeyInUse,
                        "this WireGuard public key is already in use (or was revoked); generate a new key",
                    )
                    .into());
                }
                let ipv4 = allocate_ipv4(t, settings, now)?;
                let ipv6 = settings.vpn_prefix_v6.map(|p6| ipam::paired_v6(settings.vpn_prefix_v4, ipv4, p6));
                let device_id = secret::new_id();
                let credential = secret::issue();
                let device = DeviceRecord {
                    ipv6,
                    hostname: hostname.to_owned(),
                    os: os.to_owned(),
                    gateway: gateway.clone(),
                    ..DeviceRecord::new(&device_id, device_name, user, public_key, ipv4, &credential.id, now)
                };
                t.insert_device(&device)?;
                t.put_credential(
                    &CredentialRecord {
                        id: credential.id.clone(),
                        name: device_name.clone(),
                        role: Role::Device,
                        hash: Some(credential.hash),
                        created_at: now,
                        created_by: format!("enrollment token {}", invite.id),
                        revoked_at: None,
                        client_name: hostname.to_owned(),
                        device_id: Some(device_id.clone()),
                    },
                )?;
                let invite = InviteRecord {
                    redeemed_by: attempt.map(|attempt| Redemption {
                        device_id: device_id.clone(),
                        attempt: SecretHash::of(attempt),
                    }),
                    ..invite.clone()
                };
                t.spend_invite(&invite, now)?;
                let actor = Actor { name: format!("enrollment token {}", invite.id), address: address.to_owned() };
                log_admin(t, &actor, "device.enroll", device_name, None, json(&device), now)?;
                Ok((device, credential.text))
            })
            .await?;
        tracing::info!(device = %device.name, user = %device.user, address = %device.ipv4, "device enrolled");
        self.metrics.enrolled();
        Ok((device, credential))
    }

    /// Invitations made while the clock ran ahead (made "in the future" of
    /// the clock now): their validity counts again from `now`, so a
    /// one-hour invitation made while the clock was four days ahead lasts
    /// an hour, not four days and an hour. Returns how many; one admin
    /// record says so.
    pub async fn rebase_invitations(&self, now: u64) -> Result<usize> {
        let ahead = |invite: &InviteRecord| {
            invite.redeemed_at.is_none() && invite.created_at > now + crate::logs::check::CLOCK_SKEW
        };
        let candidates: Vec<String> = self
            .store
            .invites()?
            .into_iter()
            .filter(ahead)
            .map(|invite| invite.id)
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let rebased = self
            .store
            .append(|t| {
                let mut rebased = 0usize;
                for id in &candidates {
                    let Some(invite) = t.invite(id)?.filter(ahead) else {
                        continue;
                    };
                    let valid_for = invite.expires_at.saturating_sub(invite.created_at);
                    t.put_invite(&InviteRecord {
                        created_at: now,
                        expires_at: now + valid_for,
                        ..invite
                    })?;
                    rebased += 1;
                }
                if rebased > 0 {
                    log_admin(
                        t,
                        &Actor::system("controller"),
                        "clock.invitations_rebased",
                        "invitations",
                        None,
                        Some(serde_json::json!({ "invitations": rebased, "now": now })),
                        now,
                    )?;
                }
                Ok(rebased)
            })
            .await?;
        tracing::warn!(
            invitations = rebased,
            "invitations made while the clock ran ahead now count their validity from now"
        );
        Ok(rebased)
    }

    /// Redeems a login token: activates its pending credential and returns
    /// it with its secret (shown once).
    pub async fn login(
        &self,
        token: &str,
        client_name: &str,
        address: &str,
        now: u64,
    ) -> Result<(CredentialRecord, String)> {
        let presented = secret::parse(token).ok_or_else(invalid_invitation)?;
        self.write(|t| {
            let invite = redeemable_invite(t, &presented, now)?;
            let InvitePurpose::Login { credential_id } = &invite.purpose else {
                return Err(Error::invalid(
                    "this is a device invitation: use `porta enroll` on the device",
                )
                .into());
            };
            let mut credential = t
                .credential(credential_id)?
                .ok_or_else(|| Error::not_found("credential", credential_id.clone()))?;
            if credential.revoked_at.is_some() {
                return Err(Error::PermissionDenied("this credential was revoked".into()).into());
            }
            let IssuedSecret { text, hash, .. } = secret::issue_for(credential.id.clone());
            credential.hash = Some(hash);
            credential.client_name = client_name.to_owned();
            t.put_credential(&credential)?;
            let actor = Actor {
                name: credential.name.clone(),
                address: address.to_owned(),
            };
            log_admin(
                t,
                &actor,
                "login",
                &credential.name,
                None,
                credential_json(&credential),
                now,
            )?;
            t.spend_invite(&invite, now)?;
            Ok((credential, text))
        })
        .await
    }
}

/// What a device sends to enroll.
#[derive(Clone, Copy, Debug)]
pub struct DeviceEnrollment<'a> {
    /// The invitation's token.
    pub token: &'a str,
    /// The key the device made.
    pub public_key: PublicKey,
    /// Its host name, as it says.
    pub hostname: &'a str,
    /// Its operating system, as it says.
    pub os: &'a str,
    /// Its random attempt id, if it sent one (see `EnrollRequest.attempt`).
    pub attempt: Option<&'a str>,
}

/// The live device a spent device token enrolled, if `presented` is that
/// token, `public_key` that device's key and `attempt` the one it was
/// redeemed with, before the token would have expired.
fn retried_device(
    t: &Txn<'_>,
    presented: &PresentedSecret<'_>,
    public_key: &PublicKey,
    attempt: Option<&str>,
    now: u64,
) -> Result<Option<DeviceRecord>, TxError> {
    let (Some(attempt), Some(invite)) = (attempt, t.invite(presented.id)?) else {
        return Ok(None);
    };
    let Some(redemption) = &invite.redeemed_by else {
        return Ok(None);
    };
    if !presented.matches(&invite.hash)
        || !redemption.attempt.matches(attempt)
        || invite.expires_at <= now
    {
        return Ok(None);
    }
    Ok(t.device(&redemption.device_id)?
        .filter(|device| device.revoked_at.is_none() && device.public_key == *public_key))
}

/// A new credential for `device` (the one issued before never reached it).
fn reissue_credential(
    t: &Txn<'_>,
    mut device: DeviceRecord,
    hostname: &str,
    address: &str,
    now: u64,
) -> Result<(DeviceRecord, String), TxError> {
    t.revoke_credential(&device.credential_id, now)?;
    let credential = secret::issue();
    t.put_credential(&CredentialRecord {
        id: credential.id.clone(),
        name: device.name.clone(),
        role: Role::Device,
        hash: Some(credential.hash),
        created_at: now,
        created_by: "enrollment retried (the first answer was lost)".into(),
        revoked_at: None,
        client_name: hostname.to_owned(),
        device_id: Some(device.id.clone()),
    })?;
    let before = json(&device);
    device.credential_id = credential.id.clone();
    t.put_device(&device)?;
    let actor = Actor {
        name: format!("device {}", device.name),
        address: address.to_owned(),
    };
    log_admin(
        t,
        &actor,
        "device.enroll_retried",
        &device.name,
        before,
        json(&device),
        now,
    )?;
    tracing::warn!(device = %device.name, "an enrollment was asked again with the same key and attempt (its answer was lost); same device, new credential");
    Ok((device, credential.text))
}

fn invalid_invitation() -> Error {
    Error::refused(
        Refusal::InvitationUnknown,
        "this invitation is not valid (mistyped, or deleted by an administrator)",
    )
}

/// The invite `presented` names, if its secret matches and it is unspent
/// and unexpired.
fn redeemable_invite(
    t: &Txn<'_>,
    presented: &PresentedSecret<'_>,
    now: u64,
) -> Result<InviteRecord, TxError> {
    Ok(redeemable(t.invite(presented.id)?, presented, now)?)
}

/// `invite` (the record `presented` names, if any), if its secret matches
/// and it is unspent and unexpired.
fn redeemable(
    invite: Option<InviteRecord>,
    presented: &PresentedSecret<'_>,
    now: u64,
) -> Result<InviteRecord> {
    let invite = invite.ok_or_else(invalid_invitation)?;
    // Only a holder of the real secret learns whether it was used or expired.
    if !presented.matches(&invite.hash) {
        return Err(invalid_invitation());
    }
    if invite.redeemed_at.is_some() {
        return Err(Error::refused(
            Refusal::InvitationUsed,
            "this invitation was already used; ask your IT administrator for a new one",
        ));
    }
    if invite.expires_at <= now {
        return Err(Error::refused(
            Refusal::InvitationExpired,
            format!(
                "this invitation expired at {}; ask your IT administrator for a new one",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(invite.expires_at)
                )
            ),
        ));
    }
    Ok(invite)
}

impl Controller {
    /// What a device invitation is for, before it is redeemed (its holder
    /// asks; nothing changes): the person and the device name. Refused as
    /// enrolling would be (used, expired, unknown, its person paused).
    pub fn preview_invitation(&self, token: &str, now: u64) -> Result<(InviteRecord, UserRecord)> {
        let presented = secret::parse(token).ok_or_else(invalid_invitation)?;
        let invite: Option<InviteRecord> = self
            .store
            .get(crate::store::T::Invites, presented.id.as_bytes())?;
        let invite = redeemable(invite, &presented, now)?;
        let InvitePurpose::Device { user, .. } = &invite.purpose else {
            return Err(Error::invalid(
                "this is a login invitation, not a device invitation: use `portactl login`",
            ));
        };
        let person = self.user(user)?;
        if person.disabled {
            return Err(super::auth::user_paused(&person));
        }
        Ok((invite, person))
    }
}

/// Leases the next free IPv4 address: unleased, or released longer ago than
/// the quarantine.
fn allocate_ipv4(t: &Txn<'_>, settings: &Settings, now: u64) -> Result<Ipv4Addr, TxError> {
    let hint = t
        .last_leased_ipv4()?
        .map(|last| Ipv4Addr::from(u32::from(last).wrapping_add(1)));
    let prefix = settings.vpn_prefix_v4;
    let chosen = ipam::allocate(prefix, hint, |address| -> Result<bool, TxError> {
        Ok(match t.address_lease(address)? {
            None => false,
            Some(AddressLease {
                released_at: None, ..
            }) => true,
            Some(AddressLease {
                released_at: Some(at),
                ..
            }) => at + settings.address_quarantine_secs > now,
        })
    })?;
    chosen.ok_or_else(|| {
        Error::AddressesExhausted(format!(
            "the VPN prefix {prefix} has no free address left ({} usable, all leased or in quarantine); \
             revoke unused devices or re-initialise with a larger --vpn-prefix",
            ipam::capacity(prefix)
        ))
        .into()
    })
}

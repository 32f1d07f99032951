//! The controller's operations, over the store.
//!
//! [`Controller`] is the one cloneable handle every API handler shares. Its
//! methods take already-validated inputs and the current time (`now`, Unix
//! seconds) as arguments — they never read the clock — and return typed
//! [`Error`]s; the gRPC layer (`api`) does authentication, wire validation and
//! conversion around them. Every change runs in one store transaction and,
//! once durable, is announced on a watch channel so that config streams can
//! react.

pub use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::ipam;
use crate::logs::Actor;
use crate::names;
pub use crate::peers::GatewayPeer;
use crate::peers::{HISTORY, PeerJournal, Update};
use crate::secret::{self, IssuedSecret, PresentedSecret};
use crate::settings::Settings;
use crate::store::records::*;
use crate::store::{Store, T, TxError, Txn, meta};
use porta_proto::{CertFingerprint, Invitation, PublicKey, pb};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The shared controller state: store, settings, identity, change feed.
#[derive(Clone)]
pub struct Controller {
    store: Store,
    settings: Arc<Settings>,
    fingerprint: CertFingerprint,
    changes: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// What every gateway should have, as revisioned changes.
    journal: Arc<Mutex<PeerJournal>>,
    /// The journal's latest revision, for gateways waiting on it.
    journal_revision: watch::Sender<u64>,
    /// Gateways running since this process started, by name: the revision
    /// each last confirmed and when.
    gateway_acks: watch::Sender<BTreeMap<String, GatewayAck>>,
    /// Failed authentication by source address.
    auth_failures: Arc<Mutex<crate::guard::Ledger>>,
    /// Unix seconds this process started.
    started_at: u64,
    /// How long a gateway may be gone before its sessions are shown ended.
    session_idle: std::time::Duration,
}

/// A gateway's last confirmation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayAck {
    /// Every peer change up to this revision is applied.
    pub revision: u64,
    /// Unix seconds.
    pub at: u64,
    /// Whether it is connected now (the embedded gateway always is).
    pub connected: bool,
}

impl Controller {
    /// Wraps an open, initialised store. `fingerprint` is the TLS
    /// certificate's, written into the invitations this controller issues.
    pub fn new(store: Store, fingerprint: CertFingerprint) -> Result<Self> {
        let settings: Settings = store.get(T::Meta, meta::SETTINGS)?.ok_or_else(|| {
            Error::FailedPrecondition(
                "the data directory is not initialised; run `porta-controller init`".into(),
            )
        })?;
        let revision = store.meta_u64(meta::REVISION)?;
        let mut ctl = Self {
            store,
            settings: Arc::new(settings),
            fingerprint,
            changes: watch::Sender::new(revision),
            shutdown: watch::Sender::new(false),
            journal: Arc::new(Mutex::new(PeerJournal::new(revision, Vec::new(), HISTORY))),
            journal_revision: watch::Sender::new(revision),
            gateway_acks: watch::Sender::new(BTreeMap::new()),
            auth_failures: Arc::default(),
            started_at: crate::clock::now(),
            session_idle: crate::gateway::DEFAULT_SESSION_IDLE,
        };
        ctl.journal = Arc::new(Mutex::new(PeerJournal::new(
            revision,
            ctl.gateway_peers()?,
            HISTORY,
        )));
        Ok(ctl)
    }

    /// Sets the session idle threshold (`serve --session-idle`).
    pub fn with_session_idle(mut self, idle: std::time::Duration) -> Self {
        self.session_idle = idle;
        self
    }

    /// Sessions open now. A session whose gateway has been gone (not
    /// connected) for longer than the idle threshold is over, whether or
    /// not its end was ever reported, and is not listed.
    pub fn live_sessions(&self, now: u64) -> Result<Vec<crate::logs::OpenSession>> {
        let acks = self.gateway_acks.borrow().clone();
        let idle = self.session_idle.as_secs();
        Ok(crate::logs::sessions(&self.store)?
            .into_iter()
            .filter(|session| match acks.get(&session.gateway) {
                Some(ack) if ack.connected => true,
                Some(ack) => ack.at + idle >= now,
                None => self.started_at + idle >= now,
            })
            .collect())
    }

    /// Failed authentication by source address (see [`crate::guard`]).
    pub fn auth_failures(&self) -> std::sync::MutexGuard<'_, crate::guard::Ledger> {
        self.auth_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settings chosen at init.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store, for the rare caller that needs raw reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A receiver that sees the revision after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A receiver that turns `true` when the controller shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells long-lived streams to end.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Keeps the peer journal in step with the store until shutdown: after
    /// each change, the peer set is computed once for all gateways.
    pub async fn run_peer_journal(self) {
        let mut changes = self.subscribe();
        let mut shutdown = self.shutdown_signal();
        loop {
            let revision = *changes.borrow_and_update();
            match self.gateway_peers() {
                Ok(peers) => {
                    self.lock_journal().advance(revision, peers);
                    self.journal_revision.send_replace(revision);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read the peer set; gateways keep theirs")
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
            }
        }
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, PeerJournal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `gateway` must apply after revision `after` (see
    /// [`PeerJournal::updates`]).
    pub fn peer_updates(&self, gateway: &str, after: u64) -> Vec<Update> {
        self.lock_journal().updates(gateway, after)
    }

    /// A receiver that sees the peer journal's revision after every change.
    pub fn peer_revisions(&self) -> watch::Receiver<u64> {
        self.journal_revision.subscribe()
    }

    /// `gateway` has applied every peer change up to `revision`.
    pub fn gateway_applied(&self, gateway: &str, revision: u64, now: u64) {
        self.gateway_acks.send_modify(|acks| {
            acks.insert(
                gateway.to_owned(),
                GatewayAck {
                    revision,
                    at: now,
                    connected: true,
                },
            );
        });
    }

    /// A remote gateway's peer stream ended.
    pub fn gateway_disconnected(&self, gateway: &str) {
        self.gateway_acks.send_modify(|acks| {
            if let Some(ack) = acks.get_mut(gateway) {
                ack.connected = false;
                ack.at = crate::clock::now();
            }
        });
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Waits, at most `timeout`, until every gateway has applied
    /// `revision`: each registered remote gateway, and the embedded one if
    /// it runs. Returns the names of gateways that confirmed and of those
    /// that did not.
    pub async fn wait_for_gateways(
        &self,
        revision: u64,
        timeout: std::time::Duration,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let embedded_runs = self
            .gateway_acks
            .borrow()
            .contains_key(&self.settings.gateway_name);
        let expected: Vec<String> = self
            .list_gateways()?
            .into_iter()
            .filter(|g| {
                if g.embedded {
                    embedded_runs
                } else {
                    !g.public_key.is_empty()
                }
            })
            .map(|g| g.name)
            .collect();
        // A disconnected gateway cannot confirm now; it catches up (and
        // drops what it must) before it serves again after reconnecting.
        let confirmed_or_away = |acks: &BTreeMap<String, GatewayAck>| {
            expected.iter().all(|g| {
                acks.get(g)
                    .is_none_or(|a| !a.connected || a.revision >= revision)
            })
        };
        let mut acks = self.gateway_acks.subscribe();
        let _ = tokio::time::timeout(timeout, acks.wait_for(confirmed_or_away)).await;
        let acks = acks.borrow();
        Ok(expected
            .into_iter()
            .partition(|g| acks.get(g).is_some_and(|a| a.revision >= revision)))
    }

    /// Runs a write and announces the new revision.
    async fn write<R>(&self, change: impl Fn(&Txn<'_>) -> Result<R, TxError>) -> Result<R> {
        let (revision, result) = self.store.write(change).await?;
        self.changes.send_replace(revision);
        Ok(result)
    }

    fn invitation(&self, token: &str, kind: pb::InvitationKind) -> String {
        Invitation {
            controller: self.settings.api_endpoint.clone(),
            fingerprint: self.fingerprint,
            token: token.to_owned(),
            kind,
            organization: self.settings.organization.clone(),
        }
        .encode()
    }

    /// When an invitation made at `now` with `ttl_secs` (0: the default)
    /// expires.
    pub fn invitation_expiry(&self, now: u64, ttl_secs: u64) -> u64 {
        now + if ttl_secs == 0 {
            self.settings.token_ttl_secs
        } else {
            ttl_secs
        }
    }

    // ----- authentication ---------------------------------------------------

    /// Checks a presented credential and returns who it belongs to.
    /// Unknown, malformed and revoked credentials, revoked devices and
    /// disabled users are all refused here, so no handler can forget to.
    pub fn authenticate(&self, presented: &str) -> Result<Caller> {
        let secret = secret::parse(presented)
            .ok_or_else(|| Error::Unauthenticated("the credential is malformed".into()))?;
        let unknown =
            || Error::Unauthenticated("the credential is not valid (unknown or revoked)".into());
        let credential: CredentialRecord = self
            .store
            .get(T::Credentials, secret.id.as_bytes())?
            .ok_or_else(unknown)?;
        let hash = credential.hash.as_ref().ok_or_else(unknown)?;
        if !secret.matches(hash) || credential.revoked_at.is_some() {
            return Err(unknown());
        }
        if let Some(device_id) = &credential.device_id {
            let device = self.device_by_id(device_id)?;
            self.check_device_allowed(&device)?;
        }
        Ok(Caller {
            role: credential.role,
            credential_id: credential.id,
            name: credential.name,
            device_id: credential.device_id,
            address: String::new(),
        })
    }

    fn check_device_allowed(&self, device: &DeviceRecord) -> Result<()> {
        if device.revoked_at.is_some() {
            return Err(Error::PermissionDenied(
                "this device was revoked by your IT administrator".into(),
            ));
        }
        let user = self.user(&device.user)?;
        if user.disabled {
            return Err(Error::PermissionDenied(format!(
                "the user {:?} is disabled; ask your IT administrator",
                user.name
            )));
        }
        Ok(())
    }

    // ----- users --------------------------------------------------------------

    /// Creates a user, optionally in existing groups.
    pub async fn create_user(&self, actor: &Actor, user: UserRecord) -> Result<UserRecord> {
        self.write(|t| {
            if t.contains(T::Users, user.name.as_bytes())? {
                return Err(
                    Error::AlreadyExists(format!("user {:?} already exists", user.name)).into(),
                );
            }
            for group in &user.groups {
                require_group(t, group)?;
            }
            names::claim(t, names::Kind::User, &user.name, |t, holder| {
                t.contains(T::Users, holder.as_bytes())
            })?;
            t.put(T::Users, user.name.as_bytes(), &user)?;
            t.log_admin(
                actor,
                "user.create",
                &user.name,
                None,
                json(&user),
                user.created_at,
            )?;
            Ok(user.clone())
        })
        .await
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Result<Vec<UserRecord>> {
        self.store.list(T::Users)
    }

    /// One user.
    pub fn user(&self, name: &str) -> Result<UserRecord> {
        self.store
            .get(T::Users, name.as_bytes())?
            .ok_or_else(|| Error::not_found("user", name))
    }

    /// Disables or enables a user.
    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        name: &str,
        disabled: bool,
        now: u64,
    ) -> Result<UserRecord> {
        self.write(|t| {
            let mut user = require_user(t, name)?;
            let before = json(&user);
            user.disabled = disabled;
            t.put(T::Users, name.as_bytes(), &user)?;
            let action = if disabled {
                "user.disable"
            } else {
                "user.enable"
            };
            t.log_admin(actor, action, name, before, json(&user), now)?;
            Ok(user)
        })
        .await
    }

    // ----- groups -------------------------------------------------------------

    /// Creates an empty group.
    pub async fn create_group(&self, actor: &Actor, group: GroupRecord) -> Result<GroupRecord> {
        self.write(|t| {
            if t.contains(T::Groups, group.name.as_bytes())? {
                return Err(
                    Error::AlreadyExists(format!("group {:?} already exists", group.name)).into(),
                );
            }
            names::claim(t, names::Kind::Group, &group.name, |t, holder| {
                t.contains(T::Groups, holder.as_bytes())
            })?;
            t.put(T::Groups, group.name.as_bytes(), &group)?;
            t.log_admin(
                actor,
                "group.create",
                &group.name,
                None,
                json(&group),
                group.created_at,
            )?;
            Ok(group.clone())
        })
        .await
    }

    /// Every group with its members.
    pub fn list_groups(&self) -> Result<Vec<(GroupRecord, Vec<String>)>> {
        let mut members = self.members_by_group()?;
        Ok(self
            .store
            .list::<GroupRecord>(T::Groups)?
            .into_iter()
            .map(|g| {
                let m = members.remove(&g.name).unwrap_or_default();
                (g, m)
            })
            .collect())
    }

    /// One group with its members.
    pub fn group(&self, name: &str) -> Result<(GroupRecord, Vec<String>)> {
        let group: GroupRecord = self
            .store
            .get(T::Groups, name.as_bytes())?
            .ok_or_else(|| Error::not_found("group", name))?;
        let members = self.members_by_group()?.remove(name).unwrap_or_default();
        Ok((group, members))
    }

    fn members_by_group(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for user in self.list_users()? {
            for group in &user.groups {
                map.entry(group.clone())
                    .or_default()
                    .push(user.name.clone());
            }
        }
        Ok(map)
    }

    /// Deletes a group; its members leave it.
    pub async fn delete_group(&self, actor: &Actor, name: &str, now: u64) -> Result<()> {
        let users = self.list_users()?;
        self.write(|t| {
            let group = require_group(t, name)?;
            t.remove(T::Groups, name.as_bytes())?;
            t.log_admin(actor, "group.delete", name, json(&group), None, now)?;
            for user in users.iter().filter(|u| u.groups.contains(name)) {
                // Re-read inside the transaction: the list above may be stale.
                if let Some(mut current) = t.get::<UserRecord>(T::Users, user.name.as_bytes())? {
                    current.groups.remove(name);
                    t.put(T::Users, user.name.as_bytes(), &current)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Adds a destination to a group (no-op if it is there already).
    pub async fn allow_destination(
        &self,
        actor: &Actor,
        group: &str,
        destination: Destination,
        now: u64,
    ) -> Result<GroupRecord> {
        self.write(|t| {
            let mut record = require_group(t, group)?;
            let before = json(&record);
            if !record.destinations.contains(&destination) {
                if record.destinations.len() >= crate::validate::MAX_DESTINATIONS {
                    return Err(Error::FailedPrecondition(format!(
                        "group {group:?} already has {} destinations, the most allowed",
                        crate::validate::MAX_DESTINATIONS
                    ))
                    .into());
                }
                record.destinations.push(destination.clone());
                t.put(T::Groups, group.as_bytes(), &record)?;
                t.log_admin(actor, "group.allow", group, before, json(&record), now)?;
            }
            Ok(record)
        })
        .await
    }

    /// Removes a destination from a group.
    pub async fn disallow_destination(
        &self,
        actor: &Actor,
        group: &str,
        destination: Destination,
        now: u64,
    ) -> Result<GroupRecord> {
        self.write(|t| {
            let mut record = require_group(t, group)?;
            let before_json = json(&record);
            let before = record.destinations.len();
            record.destinations.retain(|d| d != &destination);
            if record.destinations.len() == before {
                return Err(Error::not_found(
                    "destination",
                    format!("{} in group {group}", destination.cidr),
                )
                .into());
            }
            t.put(T::Groups, group.as_bytes(), &record)?;
            t.log_admin(
                actor,
                "group.disallow",
                group,
                before_json,
                json(&record),
                now,
            )?;
            Ok(record)
        })
        .await
    }

    /// Adds (`join = true`) or removes users from a group, all or none.
    pub async fn set_membership(
        &self,
        actor: &Actor,
        group: &str,
        users: &[String],
        join: bool,
        now: u64,
    ) -> Result<()> {
        self.write(|t| {
            require_group(t, group)?;
            let action = if join {
                "group.members.add"
            } else {
                "group.members.remove"
            };
            t.log_admin(
                actor,
                action,
                group,
                None,
                Some(serde_json::json!({ "users": users })),
                now,
            )?;
            for name in users {
                let mut user = require_user(t, name)?;
                if join {
                    user.groups.insert(group.to_owned());
                } else {
                    user.groups.remove(group);
                }
                t.put(T::Users, name.as_bytes(), &user)?;
            }
            Ok(())
        })
        .await
    }

    // ----- enrollment tokens ----------------------------------------------------

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
                let owner = require_user(t, user)?;
                if owner.disabled {
                    return Err(
                        Error::FailedPrecondition(format!("user {user:?} is disabled")).into(),
                    );
                }
                if device_name_taken(t, device_name, now)? {
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
                };
                names::claim(t, names::Kind::Device, device_name, |t, holder| {
                    device_name_taken(t, holder, now)
                })?;
                t.put(T::Invites, record.id.as_bytes(), &record)?;
                t.put_raw(T::TokenNames, device_name.as_bytes(), record.id.as_bytes())?;
                t.log_admin(
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
            .list::<InviteRecord>(T::Invites)?
            .into_iter()
            .filter(|i| i.redeemed_at.is_none() && i.expires_at > now)
            .filter(|i| matches!(i.purpose, InvitePurpose::Device { .. }))
            .collect())
    }

    /// Deletes an unredeemed enrollment token.
    pub async fn delete_enrollment_token(&self, actor: &Actor, id: &str, now: u64) -> Result<()> {
        self.write(
            |t| match t.get::<InviteRecord>(T::Invites, id.as_bytes())? {
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
                    release_token_name(t, device_name, id)?;
                    t.log_admin(
                        actor,
                        "token.delete",
                        device_name,
                        invite_json(&invite),
                        None,
                        now,
                    )?;
                    t.remove(T::Invites, id.as_bytes())
                }
                _ => Err(Error::not_found("enrollment token", id).into()),
            },
        )
        .await
    }

    // ----- redeeming tokens -------------------------------------------------------

    /// Redeems a device enrollment token: in one transaction the token is
    /// consumed, the device recorded, its address leased and its credential
    /// created. Returns the device and its credential (shown once).
    pub async fn enroll(
        &self,
        token: &str,
        public_key: PublicKey,
        hostname: &str,
        os: &str,
        address: &str,
        now: u64,
    ) -> Result<(DeviceRecord, String)> {
        let presented = secret::parse(token).ok_or_else(invalid_invitation)?;
        let key_text = public_key.to_base64();
        if self
            .list_gateways()?
            .iter()
            .any(|g| g.public_key == key_text)
        {
            return Err(Error::AlreadyExists(
                "this WireGuard public key is a gateway's own".into(),
            ));
        }
        let settings = &self.settings;
        let (device, credential) = self
            .write(|t| {
                let invite = redeemable_invite(t, &presented, now)?;
                let InvitePurpose::Device { user, device_name, gateway } = &invite.purpose else {
                    return Err(Error::invalid(
                        "this is a login invitation, not a device invitation: use `portactl login`",
                    )
                    .into());
                };
                let owner = require_user(t, user)?;
                if owner.disabled {
                    return Err(Error::PermissionDenied(format!("the user {user:?} is disabled")).into());
                }
                if t.contains(T::DeviceNames, device_name.as_bytes())? {
                    return Err(Error::AlreadyExists(format!("a device named {device_name:?} exists already")).into());
                }
                if t.contains(T::DeviceKeys, &public_key.0)? {
                    return Err(Error::AlreadyExists(
                        "this WireGuard public key is already in use (or was revoked); generate a new key".into(),
                    )
                    .into());
                }
                let ipv4 = allocate_ipv4(t, settings, now)?;
                let ipv6 = settings.vpn_prefix_v6.map(|p6| ipam::paired_v6(settings.vpn_prefix_v4, ipv4, p6));
                let device_id = secret::new_id();
                let credential = secret::issue();
                let device = DeviceRecord {
                    public_key: public_key.to_base64(),
                    ipv6,
                    hostname: hostname.to_owned(),
                    os: os.to_owned(),
                    gateway: gateway.clone(),
                    ..DeviceRecord::new(&device_id, device_name, user, ipv4, &credential.id, now)
                };
                t.put(T::Devices, device_id.as_bytes(), &device)?;
                t.put_raw(T::DeviceNames, device_name.as_bytes(), device_id.as_bytes())?;
                t.put_raw(T::DeviceKeys, &public_key.0, device_id.as_bytes())?;
                t.put(T::Addresses, &ipv4.octets(), &AddressLease { device_id: device_id.clone(), released_at: None })?;
                t.put_raw(T::Meta, meta::IPV4_HINT, &ipv4.octets())?;
                t.put(
                    T::Credentials,
                    credential.id.as_bytes(),
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
                let mut spent = invite.clone();
                spent.redeemed_at = Some(now);
                t.put(T::Invites, spent.id.as_bytes(), &spent)?;
                release_token_name(t, device_name, &invite.id)?;
                let actor = Actor { name: format!("enrollment token {}", invite.id), address: address.to_owned() };
                t.log_admin(&actor, "device.enroll", device_name, None, json(&device), now)?;
                Ok((device, credential.text))
            })
            .await?;
        tracing::info!(device = %device.name, user = %device.user, address = %device.ipv4, "device enrolled");
        Ok((device, credential))
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
            let mut credential: CredentialRecord = t
                .get(T::Credentials, credential_id.as_bytes())?
                .ok_or_else(|| Error::not_found("credential", credential_id.clone()))?;
            if credential.revoked_at.is_some() {
                return Err(Error::PermissionDenied("this credential was revoked".into()).into());
            }
            let IssuedSecret { text, hash, .. } = secret::issue_for(credential.id.clone());
            credential.hash = Some(hash);
            credential.client_name = client_name.to_owned();
            t.put(T::Credentials, credential.id.as_bytes(), &credential)?;
            let actor = Actor {
                name: credential.name.clone(),
                address: address.to_owned(),
            };
            t.log_admin(
                &actor,
                "login",
                &credential.name,
                None,
                credential_json(&credential),
                now,
            )?;
            let mut spent = invite.clone();
            spent.redeemed_at = Some(now);
            t.put(T::Invites, spent.id.as_bytes(), &spent)?;
            Ok((credential, text))
        })
        .await
    }

    // ----- devices ------------------------------------------------------------------

    /// Devices, optionally one user's, optionally with revoked ones.
    pub fn list_devices(
        &self,
        user: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<DeviceRecord>> {
        let mut devices: Vec<DeviceRecord> = self
            .store
            .list::<DeviceRecord>(T::Devices)?
            .into_iter()
            .filter(|d| user.is_none_or(|u| d.user == u))
            .filter(|d| include_revoked || d.revoked_at.is_none())
            .collect();
        devices.sort_by(|a, b| a.name.cmp(&b.name).then(a.enrolled_at.cmp(&b.enrolled_at)));
        Ok(devices)
    }

    fn device_by_id(&self, id: &str) -> Result<DeviceRecord> {
        self.store
            .get(T::Devices, id.as_bytes())?
            .ok_or_else(|| Error::not_found("device", id))
    }

    /// A device by live name, by id, or by the name a revoked device had
    /// (the most recently revoked one of that name: its name is free for a
    /// new device, but an admin or auditor still looks it up by it).
    pub fn find_device(&self, name_or_id: &str) -> Result<DeviceRecord> {
        if let Some(id) = self.store.tree(T::DeviceNames).get(name_or_id.as_bytes())? {
            return self.device_by_id(&String::from_utf8_lossy(&id));
        }
        if let Ok(device) = self.device_by_id(name_or_id) {
            return Ok(device);
        }
        self.list_devices(None, true)?
            .into_iter()
            .filter(|d| d.name == name_or_id && d.revoked_at.is_some())
            .max_by_key(|d| d.revoked_at)
            .ok_or_else(|| Error::not_found("device", name_or_id))
    }

    /// Renames a live device.
    pub async fn rename_device(
        &self,
        actor: &Actor,
        name_or_id: &str,
        new_name: &str,
        now: u64,
    ) -> Result<DeviceRecord> {
        let device = self.find_device(name_or_id)?;
        self.write(|t| {
            let mut current: DeviceRecord = t
                .get(T::Devices, device.id.as_bytes())?
                .ok_or_else(|| Error::not_found("device", name_or_id))?;
            if current.revoked_at.is_some() {
                return Err(
                    Error::FailedPrecondition("a revoked device cannot be renamed".into()).into(),
                );
            }
            if current.name == new_name {
                return Ok(current);
            }
            if device_name_taken(t, new_name, now)? {
                return Err(Error::AlreadyExists(format!(
                    "a device or open token named {new_name:?} exists already"
                ))
                .into());
            }
            let before = json(&current);
            t.remove(T::DeviceNames, current.name.as_bytes())?;
            names::claim(t, names::Kind::Device, new_name, |t, holder| {
                device_name_taken(t, holder, now)
            })?;
            t.put_raw(T::DeviceNames, new_name.as_bytes(), current.id.as_bytes())?;
            current.name = new_name.to_owned();
            t.put(T::Devices, current.id.as_bytes(), &current)?;
            t.log_admin(
                actor,
                "device.rename",
                new_name,
                before,
                json(&current),
                now,
            )?;
            Ok(current)
        })
        .await
    }

    /// Revokes a device: its credential dies, its name is freed, its address
    /// enters quarantine, its key stays on record so it can never enroll
    /// again. Streams watching its config end at once.
    pub async fn revoke_device(
        &self,
        actor: &Actor,
        name_or_id: &str,
        now: u64,
    ) -> Result<DeviceRecord> {
        let device = self.find_device(name_or_id)?;
        let revoked = self
            .write(|t| {
                let mut current: DeviceRecord = t
                    .get(T::Devices, device.id.as_bytes())?
                    .ok_or_else(|| Error::not_found("device", name_or_id))?;
                if current.revoked_at.is_some() {
                    return Err(Error::FailedPrecondition(format!(
                        "device {:?} is already revoked",
                        current.name
                    ))
                    .into());
                }
                let before = json(&current);
                current.revoked_at = Some(now);
                current.revoked_by = actor.name.clone();
                t.put(T::Devices, current.id.as_bytes(), &current)?;
                t.log_admin(
                    actor,
                    "device.revoke",
                    &current.name,
                    before,
                    json(&current),
                    now,
                )?;
                t.remove(T::DeviceNames, current.name.as_bytes())?;
                let lease = AddressLease {
                    device_id: current.id.clone(),
                    released_at: Some(now),
                };
                t.put(T::Addresses, &current.ipv4.octets(), &lease)?;
                if let Some(mut credential) =
                    t.get::<CredentialRecord>(T::Credentials, current.credential_id.as_bytes())?
                {
                    credential.revoked_at = Some(now);
                    t.put(T::Credentials, credential.id.as_bytes(), &credential)?;
                }
                Ok(current)
            })
            .await?;
        tracing::info!(device = %revoked.name, user = %revoked.user, by = %actor.name, "device revoked");
        Ok(revoked)
    }

    /// Records a device's status report.
    pub async fn report_status(
        &self,
        device_id: &str,
        report: &pb::DeviceStatusReport,
        now: u64,
    ) -> Result<()> {
        // A report changes no configuration: appended without a new
        // revision, so no watcher or gateway recomputes anything.
        self.store
            .append(|t| {
                let mut device: DeviceRecord = t
                    .get(T::Devices, device_id.as_bytes())?
                    .ok_or_else(|| Error::not_found("device", device_id))?;
                device.last_seen_at = now;
                device.client_version = report.client_version.clone();
                if !report.hostname.is_empty() {
                    device.hostname = report.hostname.clone();
                }
                if !report.os.is_empty() {
                    device.os = report.os.clone();
                }
                // A device's clock may be off: never later than now.
                device.last_handshake_at = report.last_handshake_at.min(now);
                t.put(T::Devices, device_id.as_bytes(), &device)
            })
            .await?;
        Ok(())
    }

    /// The config a device should run now, or why it may not run one.
    pub fn device_config(&self, device_id: &str) -> Result<pb::DeviceConfig> {
        let revision = self.store.meta_u64(meta::REVISION)?;
        let device = self.device_by_id(device_id)?;
        self.check_device_allowed(&device)?;
        let user = self.user(&device.user)?;
        let groups = self.groups_of(&user)?;
        let routes: BTreeSet<ipnet::IpNet> = crate::policy::destinations(&self.settings, &groups)
            .into_iter()
            .map(|d| d.cidr)
            .collect();
        let mut addresses = vec![format!("{}/32", device.ipv4)];
        addresses.extend(device.ipv6.map(|a| format!("{a}/128")));
        let gateways = self
            .list_gateways()?
            .into_iter()
            .filter(|g| match &device.gateway {
                Some(name) => g.name == *name,
                None => g.embedded,
            })
            .map(|g| pb::GatewayPeer {
                name: g.name,
                endpoint: g.endpoint,
                public_key: g.public_key,
            })
            .collect();
        Ok(pb::DeviceConfig {
            device_id: device.id,
            device_name: device.name,
            user: device.user,
            addresses,
            gateways,
            routes: routes.iter().map(ToString::to_string).collect(),
            dns_servers: self.settings.dns.iter().map(ToString::to_string).collect(),
            search_domains: self.settings.search_domains.clone(),
            persistent_keepalive: u32::from(self.settings.keepalive_secs),
            mtu: u32::from(self.settings.mtu),
            revision,
        })
    }

    fn groups_of(&self, user: &UserRecord) -> Result<Vec<GroupRecord>> {
        let mut groups = Vec::with_capacity(user.groups.len());
        for name in &user.groups {
            groups.extend(self.store.get::<GroupRecord>(T::Groups, name.as_bytes())?);
        }
        Ok(groups)
    }

    /// The peers a gateway should have now: every live device of an
    /// enabled user, with its tunnel addresses and its groups' filter.
    pub fn gateway_peers(&self) -> Result<Vec<GatewayPeer>> {
        let users: BTreeMap<String, UserRecord> = self
            .list_users()?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        let embedded = &self.settings.gateway_name;
        let mut peers = Vec::new();
        for device in self.list_devices(None, false)? {
            let Some(user) = users.get(&device.user).filter(|u| !u.disabled) else {
                continue;
            };
            let Ok(public_key) = device.public_key.parse() else {
                continue;
            };
            let mut allowed_ips = vec![ipnet::IpNet::from(std::net::IpAddr::from(device.ipv4))];
            allowed_ips.extend(
                device
                    .ipv6
                    .map(|a| ipnet::IpNet::from(std::net::IpAddr::from(a))),
            );
            let destinations = crate::policy::destinations(&self.settings, &self.groups_of(user)?);
            peers.push(GatewayPeer {
                device_id: device.id,
                gateway: device.gateway.unwrap_or_else(|| embedded.clone()),
                public_key,
                allowed_ips,
                destinations,
            });
        }
        Ok(peers)
    }

    // ----- API credentials ----------------------------------------------------------

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
                };
                t.put(T::Credentials, credential.id.as_bytes(), &credential)?;
                t.put(T::Invites, invite.id.as_bytes(), &invite)?;
                t.log_admin(
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
            .list::<CredentialRecord>(T::Credentials)?
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
            t.put(T::Credentials, credential.id.as_bytes(), &credential)?;
            t.log_admin(
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

    // ----- gateways -----------------------------------------------------------------

    /// Warnings for a destination that contains this controller's own
    /// addresses (the API and every gateway endpoint given as an IP
    /// address): clients keep those outside the tunnel.
    pub fn own_addresses_in(&self, cidr: &ipnet::IpNet) -> Result<Vec<String>> {
        let settings = self.settings();
        let mut endpoints = vec![(
            "the controller's API".to_owned(),
            settings.api_endpoint.clone(),
        )];
        for gateway in self.list_gateways()? {
            endpoints.push((format!("gateway {:?}", gateway.name), gateway.endpoint));
        }
        Ok(endpoints
            .into_iter()
            .filter_map(|(what, endpoint)| {
                let address: std::net::SocketAddr = endpoint.parse().ok()?;
                cidr.contains(&address.ip()).then(|| {
                    format!(
                        "{cidr} contains {what} ({endpoint}); laptops keep that address outside \
                         the tunnel, so it is not reached through it"
                    )
                })
            })
            .collect())
    }

    /// Known gateways, with what they confirmed since this process started.
    pub fn list_gateways(&self) -> Result<Vec<GatewayRecord>> {
        let mut gateways: Vec<GatewayRecord> = self.store.list(T::Gateways)?;
        let acks = self.gateway_acks.borrow();
        for gateway in &mut gateways {
            if let Some(ack) = acks.get(&gateway.name) {
                gateway.applied_revision = ack.revision;
                gateway.last_seen_at = ack.at;
            }
        }
        gateways.sort_by(|a, b| b.embedded.cmp(&a.embedded).then(a.name.cmp(&b.name)));
        Ok(gateways)
    }

    /// Records a remote gateway and creates its gateway credential, returned
    /// as a one-time gateway invitation.
    pub async fn create_gateway(
        &self,
        actor: &Actor,
        name: &str,
        endpoint: &str,
        ttl_secs: u64,
        now: u64,
    ) -> Result<(GatewayRecord, String)> {
        if self.list_gateways()?.iter().any(|g| g.name == name) {
            return Err(Error::AlreadyExists(format!(
                "a gateway named {name:?} exists already"
            )));
        }
        let (credential, invitation) = self
            .create_api_credential(actor, name, Role::Gateway, ttl_secs, now)
            .await?;
        let gateway = GatewayRecord::new(name, endpoint, false, Some(credential.id));
        self.write(|t| {
            if t.contains(T::Gateways, gateway.id.as_bytes())? {
                return Err(Error::AlreadyExists("gateway id collision".into()).into());
            }
            t.put(T::Gateways, gateway.id.as_bytes(), &gateway)?;
            t.log_admin(actor, "gateway.create", name, None, json(&gateway), now)
        })
        .await?;
        tracing::info!(
            gateway = name,
            endpoint,
            by = %actor.name,
            "remote gateway created"
        );
        Ok((gateway, invitation))
    }

    /// The gateway called `name`.
    fn gateway_named(&self, name: &str) -> Result<GatewayRecord> {
        self.list_gateways()?
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| Error::not_found("gateway", name))
    }

    /// Fails if `caller`'s credential was revoked since it authenticated.
    pub fn credential_live(&self, caller: &Caller) -> Result<()> {
        let credential: Option<CredentialRecord> = self
            .store
            .get(T::Credentials, caller.credential_id.as_bytes())?;
        match credential {
            Some(c) if c.revoked_at.is_none() => Ok(()),
            _ => Err(Error::Unauthenticated(
                "the credential is not valid (unknown or revoked)".into(),
            )),
        }
    }

    /// Retires a remote gateway: its record goes, its credential is revoked
    /// (so its streams and calls fail from now on). Refused for the
    /// embedded gateway and while live devices are assigned to it.
    pub async fn remove_gateway(
        &self,
        actor: &Actor,
        name: &str,
        now: u64,
    ) -> Result<GatewayRecord> {
        let gateway = self.gateway_named(name)?;
        if gateway.embedded {
            return Err(Error::FailedPrecondition(
                "the embedded gateway is part of the controller; run serve with --no-gateway instead".into(),
            ));
        }
        let assigned = self
            .list_devices(None, false)?
            .into_iter()
            .filter(|d| d.gateway.as_deref() == Some(name))
            .count();
        if assigned > 0 {
            return Err(Error::FailedPrecondition(format!(
                "{assigned} live device(s) connect through {name:?}; revoke them first"
            )));
        }
        self.write(|t| {
            t.remove(T::Gateways, gateway.id.as_bytes())?;
            if let Some(id) = &gateway.credential_id
                && let Some(mut credential) =
                    t.get::<CredentialRecord>(T::Credentials, id.as_bytes())?
            {
                credential.revoked_at = Some(now);
                t.put(T::Credentials, id.as_bytes(), &credential)?;
            }
            t.log_admin(actor, "gateway.remove", name, json(&gateway), None, now)
        })
        .await?;
        tracing::info!(gateway = name, by = %actor.name, "remote gateway removed");
        Ok(gateway)
    }

    /// The remote gateway a gateway-role caller speaks for.
    pub fn gateway_of(&self, caller: &Caller) -> Result<GatewayRecord> {
        self.store
            .list::<GatewayRecord>(T::Gateways)?
            .into_iter()
            .find(|g| g.credential_id.as_deref() == Some(caller.credential_id.as_str()))
            .ok_or_else(|| Error::PermissionDenied("this credential belongs to no gateway".into()))
    }

    /// A remote gateway announces the public key it generated.
    pub async fn register_gateway(
        &self,
        caller: &Caller,
        public_key: PublicKey,
        now: u64,
    ) -> Result<GatewayRecord> {
        let gateway = self.gateway_of(caller)?;
        let key_text = public_key.to_base64();
        let in_use = || {
            Error::AlreadyExists(
                "this WireGuard public key is already in use; generate a new key".into(),
            )
        };
        if self
            .list_gateways()?
            .iter()
            .any(|g| g.id != gateway.id && g.public_key == key_text)
        {
            return Err(in_use());
        }
        let registered = self
            .write(|t| {
                if t.contains(T::DeviceKeys, &public_key.0)? {
                    return Err(in_use().into());
                }
                let mut current: GatewayRecord = t
                    .get(T::Gateways, gateway.id.as_bytes())?
                    .ok_or_else(|| Error::not_found("gateway", gateway.name.clone()))?;
                let before = json(&current);
                current.public_key = key_text.clone();
                t.put(T::Gateways, current.id.as_bytes(), &current)?;
                t.log_admin(
                    &caller.into(),
                    "gateway.register",
                    &current.name,
                    before,
                    json(&current),
                    now,
                )?;
                Ok(current)
            })
            .await?;
        tracing::info!(gateway = %registered.name, "remote gateway registered its key");
        Ok(registered)
    }

    /// Fails unless `name` is a remote gateway that has registered its key
    /// (devices need that key in their configuration).
    fn remote_gateway_ready(&self, name: &str) -> Result<()> {
        let gateway = self.gateway_named(name)?;
        if gateway.public_key.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "the gateway {name:?} has not connected yet; start it with \
                 `porta-gateway --controller <invitation>` first"
            )));
        }
        Ok(())
    }
}

/// A record as admin-log JSON.
fn json<V: serde::Serialize>(value: &V) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// A credential as admin-log JSON: never its secret's hash.
fn credential_json(c: &CredentialRecord) -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "id": c.id, "name": c.name, "role": c.role.as_str(), "created_by": c.created_by,
        "client_name": c.client_name, "revoked_at": c.revoked_at, "pending": c.hash.is_none(),
    }))
}

/// An invitation as admin-log JSON: never its secret's hash.
fn invite_json(i: &InviteRecord) -> Option<serde_json::Value> {
    let mut value = serde_json::json!({
        "id": i.id, "created_by": i.created_by, "expires_at": i.expires_at, "redeemed_at": i.redeemed_at,
    });
    if let InvitePurpose::Device {
        user,
        device_name,
        gateway,
    } = &i.purpose
    {
        value["user"] = user.clone().into();
        value["device"] = device_name.clone().into();
        value["gateway"] = gateway.clone().into();
    }
    Some(value)
}

fn invalid_invitation() -> Error {
    Error::Unauthenticated(
        "this invitation is not valid (mistyped, or deleted by an administrator)".into(),
    )
}

/// The invite `presented` names, if its secret matches and it is unspent
/// and unexpired.
fn redeemable_invite(
    t: &Txn<'_>,
    presented: &PresentedSecret<'_>,
    now: u64,
) -> Result<InviteRecord, TxError> {
    let invite: InviteRecord = t
        .get(T::Invites, presented.id.as_bytes())?
        .ok_or_else(invalid_invitation)?;
    // Only a holder of the real secret learns whether it was used or expired.
    if !presented.matches(&invite.hash) {
        return Err(invalid_invitation().into());
    }
    if invite.redeemed_at.is_some() {
        return Err(Error::FailedPrecondition(
            "this invitation was already used; ask your IT administrator for a new one".into(),
        )
        .into());
    }
    if invite.expires_at <= now {
        return Err(Error::FailedPrecondition(format!(
            "this invitation expired at {}; ask your IT administrator for a new one",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(invite.expires_at)
            )
        ))
        .into());
    }
    Ok(invite)
}

/// True if a live device has `name`, or an open (unredeemed, unexpired)
/// enrollment token will give it.
fn device_name_taken(t: &Txn<'_>, name: &str, now: u64) -> Result<bool, TxError> {
    if t.contains(T::DeviceNames, name.as_bytes())? {
        return Ok(true);
    }
    let Some(invite_id) = t.get_raw(T::TokenNames, name.as_bytes())? else {
        return Ok(false);
    };
    Ok(t.get::<InviteRecord>(T::Invites, &invite_id)?
        .is_some_and(|invite| invite.redeemed_at.is_none() && invite.expires_at > now))
}

/// Drops `name`'s reservation if `invite_id` still holds it.
fn release_token_name(t: &Txn<'_>, name: &str, invite_id: &str) -> Result<(), TxError> {
    if t.get_raw(T::TokenNames, name.as_bytes())?
        .is_some_and(|held| held == invite_id.as_bytes())
    {
        t.remove(T::TokenNames, name.as_bytes())?;
    }
    Ok(())
}

fn require_user(t: &Txn<'_>, name: &str) -> Result<UserRecord, TxError> {
    Ok(t.get(T::Users, name.as_bytes())?
        .ok_or_else(|| Error::not_found("user", name))?)
}

fn require_group(t: &Txn<'_>, name: &str) -> Result<GroupRecord, TxError> {
    Ok(t.get(T::Groups, name.as_bytes())?
        .ok_or_else(|| Error::not_found("group", name))?)
}

/// Leases the next free IPv4 address: unleased, or released longer ago than
/// the quarantine.
fn allocate_ipv4(t: &Txn<'_>, settings: &Settings, now: u64) -> Result<Ipv4Addr, TxError> {
    let hint = t
        .get_raw(T::Meta, meta::IPV4_HINT)?
        .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
        .map(|o| Ipv4Addr::from(u32::from_be_bytes(o).wrapping_add(1)));
    let prefix = settings.vpn_prefix_v4;
    let chosen = ipam::allocate(prefix, hint, |address| -> Result<bool, TxError> {
        Ok(
            match t.get::<AddressLease>(T::Addresses, &address.octets())? {
                None => false,
                Some(AddressLease {
                    released_at: None, ..
                }) => true,
                Some(AddressLease {
                    released_at: Some(at),
                    ..
                }) => at + settings.address_quarantine_secs > now,
            },
        )
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

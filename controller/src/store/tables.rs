//! Typed reads and writes, one section per entity. Each write keeps the
//! entity's own index trees in step with its records — a device's live
//! name, key and address lease; an open token's reserved device name — so
//! that the operations above (`crate::state`) say what changes, never
//! which trees: `enroll` is "spend the invite, insert the device, insert
//! its credential", not nine raw writes.

use super::records::{
    AddressLease, CredentialRecord, DeviceRecord, GatewayRecord, GroupRecord, InvitePurpose,
    InviteRecord, UserRecord,
};
use super::{Store, T, TxError, Txn, meta};
use crate::error::{Error, Result};
use crate::names::{Kind, skeleton_key};
use crate::settings::Settings;
use porta_proto::PublicKey;
use std::net::Ipv4Addr;

// ----- names ----------------------------------------------------------------

impl Txn<'_> {
    /// Claims `name` for `kind`: refused if a different live name of
    /// that kind looks the same. `live` says whether a holder still exists.
    pub fn claim_name(
        &self,
        kind: Kind,
        name: &str,
        live: impl Fn(&Txn<'_>, &str) -> Result<bool, TxError>,
    ) -> Result<(), TxError> {
        let key = skeleton_key(kind, name);
        if let Some(holder) = self.get_raw(T::NameSkeletons, &key)? {
            let holder = String::from_utf8_lossy(&holder).into_owned();
            if holder != name && live(self, &holder)? {
                return Err(Error::AlreadyExists(format!(
                    "{} name {} looks like the existing {} {}; choose a clearly different name",
                    kind.word(),
                    crate::validate::quoted(name),
                    kind.word(),
                    crate::validate::quoted(&holder)
                ))
                .into());
            }
        }
        self.put_raw(T::NameSkeletons, &key, name.as_bytes())
    }
}

// ----- settings -------------------------------------------------------------

impl Txn<'_> {
    /// Writes the settings chosen at init.
    pub fn put_settings(&self, settings: &Settings) -> Result<(), TxError> {
        self.put(T::Meta, meta::SETTINGS, settings)
    }
}

impl Store {
    /// The settings chosen at init (`None`: not initialised).
    pub fn settings(&self) -> Result<Option<Settings>> {
        self.get(T::Meta, meta::SETTINGS)
    }
}

// ----- users ----------------------------------------------------------------

impl Txn<'_> {
    /// The user called `name`.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, TxError> {
        self.get(T::Users, name.as_bytes())
    }

    /// The user called `name`, or not found.
    pub fn require_user(&self, name: &str) -> Result<UserRecord, TxError> {
        Ok(self
            .user(name)?
            .ok_or_else(|| Error::not_found("user", name))?)
    }

    /// Whether a user is called `name`.
    pub fn user_exists(&self, name: &str) -> Result<bool, TxError> {
        self.contains(T::Users, name.as_bytes())
    }

    /// Writes a user (new or changed).
    pub fn put_user(&self, user: &UserRecord) -> Result<(), TxError> {
        self.put(T::Users, user.name.as_bytes(), user)
    }
}

impl Store {
    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.list(T::Users)
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        self.get(T::Users, name.as_bytes())
    }
}

// ----- groups ---------------------------------------------------------------

impl Txn<'_> {
    /// The group called `name`, or not found.
    pub fn require_group(&self, name: &str) -> Result<GroupRecord, TxError> {
        Ok(self
            .get(T::Groups, name.as_bytes())?
            .ok_or_else(|| Error::not_found("group", name))?)
    }

    /// Whether a group is called `name`.
    pub fn group_exists(&self, name: &str) -> Result<bool, TxError> {
        self.contains(T::Groups, name.as_bytes())
    }

    /// Writes a group (new or changed).
    pub fn put_group(&self, group: &GroupRecord) -> Result<(), TxError> {
        self.put(T::Groups, group.name.as_bytes(), group)
    }

    /// Deletes the group called `name` (its members are the caller's).
    pub fn remove_group(&self, name: &str) -> Result<(), TxError> {
        self.remove(T::Groups, name.as_bytes())
    }
}

impl Store {
    /// Every group, by name.
    pub fn groups(&self) -> Result<Vec<GroupRecord>> {
        self.list(T::Groups)
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Result<Option<GroupRecord>> {
        self.get(T::Groups, name.as_bytes())
    }
}

// ----- invitations ------------------------------------------------------------

impl Txn<'_> {
    /// The invitation whose secret has `id`.
    pub fn invite(&self, id: &str) -> Result<Option<InviteRecord>, TxError> {
        self.get(T::Invites, id.as_bytes())
    }

    /// Writes an invitation; a device invitation also reserves the device
    /// name it will give.
    pub fn insert_invite(&self, invite: &InviteRecord) -> Result<(), TxError> {
        self.put(T::Invites, invite.id.as_bytes(), invite)?;
        if let InvitePurpose::Device { device_name, .. } = &invite.purpose {
            self.put_raw(T::TokenNames, device_name.as_bytes(), invite.id.as_bytes())?;
        }
        Ok(())
    }

    /// Rewrites an existing invitation (its hash or e-mail record); the
    /// device-name reservation is unchanged.
    pub fn put_invite(&self, invite: &InviteRecord) -> Result<(), TxError> {
        self.put(T::Invites, invite.id.as_bytes(), invite)
    }

    /// Marks an invitation redeemed at `now` and frees its name reservation.
    pub fn spend_invite(&self, invite: &InviteRecord, now: u64) -> Result<(), TxError> {
        let spent = InviteRecord {
            redeemed_at: Some(now),
            ..invite.clone()
        };
        self.put(T::Invites, spent.id.as_bytes(), &spent)?;
        self.release_reserved_name(invite)
    }

    /// Deletes an invitation and its name reservation.
    pub fn remove_invite(&self, invite: &InviteRecord) -> Result<(), TxError> {
        self.release_reserved_name(invite)?;
        self.remove(T::Invites, invite.id.as_bytes())
    }

    /// Drops the device-name reservation if `invite` still holds it (a
    /// newer invitation may hold it now).
    fn release_reserved_name(&self, invite: &InviteRecord) -> Result<(), TxError> {
        let InvitePurpose::Device { device_name, .. } = &invite.purpose else {
            return Ok(());
        };
        if self
            .get_raw(T::TokenNames, device_name.as_bytes())?
            .is_some_and(|held| held == invite.id.as_bytes())
        {
            self.remove(T::TokenNames, device_name.as_bytes())?;
        }
        Ok(())
    }

    /// True if a live device has `name` (revoked devices free theirs).
    pub fn live_device_named(&self, name: &str) -> Result<bool, TxError> {
        self.contains(T::DeviceNames, name.as_bytes())
    }

    /// True if a live device has `name`, or an open (unredeemed,
    /// unexpired) enrollment token will give it.
    pub fn device_name_taken(&self, name: &str, now: u64) -> Result<bool, TxError> {
        if self.live_device_named(name)? {
            return Ok(true);
        }
        let Some(invite_id) = self.get_raw(T::TokenNames, name.as_bytes())? else {
            return Ok(false);
        };
        Ok(self
            .get::<InviteRecord>(T::Invites, &invite_id)?
            .is_some_and(|invite| invite.redeemed_at.is_none() && invite.expires_at > now))
    }
}

impl Store {
    /// Every invitation, spent or not.
    pub fn invites(&self) -> Result<Vec<InviteRecord>> {
        self.list(T::Invites)
    }
}

// ----- credentials ------------------------------------------------------------

impl Txn<'_> {
    /// The credential with `id`.
    pub fn credential(&self, id: &str) -> Result<Option<CredentialRecord>, TxError> {
        self.get(T::Credentials, id.as_bytes())
    }

    /// Writes a credential (new or changed).
    pub fn put_credential(&self, credential: &CredentialRecord) -> Result<(), TxError> {
        self.put(T::Credentials, credential.id.as_bytes(), credential)
    }

    /// Revokes the credential with `id` at `now`, if there is one.
    pub fn revoke_credential(&self, id: &str, now: u64) -> Result<(), TxError> {
        if let Some(mut credential) = self.credential(id)? {
            credential.revoked_at = Some(now);
            self.put_credential(&credential)?;
        }
        Ok(())
    }
}

impl Store {
    /// Every credential.
    pub fn credentials(&self) -> Result<Vec<CredentialRecord>> {
        self.list(T::Credentials)
    }

    /// The credential with `id`.
    pub fn credential(&self, id: &str) -> Result<Option<CredentialRecord>> {
        self.get(T::Credentials, id.as_bytes())
    }
}

// ----- devices ----------------------------------------------------------------

impl Txn<'_> {
    /// The device with `id`.
    pub fn device(&self, id: &str) -> Result<Option<DeviceRecord>, TxError> {
        self.get(T::Devices, id.as_bytes())
    }

    /// Records a newly enrolled device: its record, its live name, its key
    /// (for good: a revoked key never enrolls again) and its address lease.
    pub fn insert_device(&self, device: &DeviceRecord) -> Result<(), TxError> {
        let id = device.id.as_bytes();
        self.put(T::Devices, id, device)?;
        self.put_raw(T::DeviceNames, device.name.as_bytes(), id)?;
        self.put_raw(T::DeviceKeys, &device.public_key.0, id)?;
        let lease = AddressLease {
            device_id: device.id.clone(),
            released_at: None,
        };
        self.put(T::Addresses, &device.ipv4.octets(), &lease)?;
        self.put_raw(T::Meta, meta::IPV4_HINT, &device.ipv4.octets())
    }

    /// Writes a device's changed details (not its name: see
    /// [`Txn::rename_device`]).
    pub fn put_device(&self, device: &DeviceRecord) -> Result<(), TxError> {
        self.put(T::Devices, device.id.as_bytes(), device)
    }

    /// Renames a live device, moving its live name.
    pub fn rename_device(&self, device: &mut DeviceRecord, new_name: &str) -> Result<(), TxError> {
        self.remove(T::DeviceNames, device.name.as_bytes())?;
        self.put_raw(T::DeviceNames, new_name.as_bytes(), device.id.as_bytes())?;
        device.name = new_name.to_owned();
        self.put_device(device)
    }

    /// Revokes a device at `now`: its name is freed and its address enters
    /// quarantine; its key stays known. (Its credential is the caller's.)
    pub fn revoke_device(
        &self,
        device: &mut DeviceRecord,
        now: u64,
        by: &str,
    ) -> Result<(), TxError> {
        device.revoked_at = Some(now);
        device.revoked_by = by.to_owned();
        self.put_device(device)?;
        self.remove(T::DeviceNames, device.name.as_bytes())?;
        let lease = AddressLease {
            device_id: device.id.clone(),
            released_at: Some(now),
        };
        self.put(T::Addresses, &device.ipv4.octets(), &lease)
    }

    /// Whether any device, live or revoked, ever had `key`.
    pub fn device_key_known(&self, key: &PublicKey) -> Result<bool, TxError> {
        self.contains(T::DeviceKeys, &key.0)
    }

    /// Who holds (or held) `address`.
    pub fn address_lease(&self, address: Ipv4Addr) -> Result<Option<AddressLease>, TxError> {
        self.get(T::Addresses, &address.octets())
    }

    /// The address leased last, where the search for a free one resumes.
    pub fn last_leased_ipv4(&self) -> Result<Option<Ipv4Addr>, TxError> {
        Ok(self
            .get_raw(T::Meta, meta::IPV4_HINT)?
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(Ipv4Addr::from))
    }
}

impl Store {
    /// Every device, live and revoked.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>> {
        self.list(T::Devices)
    }

    /// The device with `id`.
    pub fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        self.get(T::Devices, id.as_bytes())
    }

    /// The id of the live device called `name`.
    pub fn live_device_id(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .tree(T::DeviceNames)
            .get(name.as_bytes())?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }
}

// ----- gateways ---------------------------------------------------------------

impl Txn<'_> {
    /// The gateway with `id`.
    pub fn gateway(&self, id: &str) -> Result<Option<GatewayRecord>, TxError> {
        self.get(T::Gateways, id.as_bytes())
    }

    /// Writes a gateway (new or changed).
    pub fn put_gateway(&self, gateway: &GatewayRecord) -> Result<(), TxError> {
        self.put(T::Gateways, gateway.id.as_bytes(), gateway)
    }

    /// Deletes the gateway with `id`.
    pub fn remove_gateway(&self, id: &str) -> Result<(), TxError> {
        self.remove(T::Gateways, id.as_bytes())
    }
}

impl Store {
    /// Every gateway record (without what gateways confirmed since start).
    pub fn gateways(&self) -> Result<Vec<GatewayRecord>> {
        self.list(T::Gateways)
    }
}

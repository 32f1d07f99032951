//! Who is calling: a presented credential checked against the store, and
//! the device and user behind it still allowed.
use super::{Caller, Controller};
use crate::error::{Error, Result};
use crate::secret;
use crate::store::records::{DeviceRecord, UserRecord};
use porta_proto::refusal::Refusal;

impl Controller {
    /// Checks a presented credential and returns who it belongs to.
    /// Unknown, malformed and revoked credentials, revoked devices and
    /// disabled users are all refused here, so no handler can forget to.
    pub fn authenticate(&self, presented: &str) -> Result<Caller> {
        let secret = secret::parse(presented)
            .ok_or_else(|| Error::Unauthenticated("the credential is malformed".into()))?;
        let unknown = || {
            Error::refused(
                Refusal::CredentialUnknown,
                "the credential is not valid (unknown or revoked)",
            )
        };
        let credential = self.store.credential(secret.id)?.ok_or_else(unknown)?;
        let hash = credential.hash.as_ref().ok_or_else(unknown)?;
        if !secret.matches(hash) {
            return Err(unknown());
        }
        if credential.revoked_at.is_some() {
            // Only the holder of the real secret learns why: a revoked
            // device's laptop is told it was revoked.
            return Err(match &credential.device_id {
                Some(device_id) => match self.device_by_id(device_id) {
                    Ok(device) if device.revoked_at.is_some() => revoked_device(),
                    _ => unknown(),
                },
                None => unknown(),
            });
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

    /// The device's user, if the device may still run a tunnel: not
    /// revoked, and its user not disabled.
    pub(super) fn check_device_allowed(&self, device: &DeviceRecord) -> Result<UserRecord> {
        if device.revoked_at.is_some() {
            return Err(revoked_device());
        }
        let user = self.user(&device.user)?;
        if user.disabled {
            return Err(user_paused(&user));
        }
        Ok(user)
    }

    /// Fails if `caller`'s credential was revoked since it authenticated.
    pub fn credential_live(&self, caller: &Caller) -> Result<()> {
        match self.store.credential(&caller.credential_id)? {
            Some(c) if c.revoked_at.is_none() => Ok(()),
            _ => Err(Error::Unauthenticated(
                "the credential is not valid (unknown or revoked)".into(),
            )),
        }
    }
}

fn revoked_device() -> Error {
    Error::refused(
        Refusal::DeviceRevoked,
        "this device was revoked by your IT administrator",
    )
}

/// The refusal of a disabled user: suspended by the town's directory, or
/// disabled by an administrator. Either is a pause: enabled again, the
/// person's computers connect without a new invitation.
pub(super) fn user_paused(user: &UserRecord) -> Error {
    if user.directory.as_ref().is_some_and(|d| d.suspended) {
        Error::refused(
            Refusal::UserSuspended,
            format!(
                "the user {:?} is suspended by the town's directory; ask your IT administrator",
                user.name
            ),
        )
    } else {
        Error::refused(
            Refusal::UserDisabled,
            format!(
                "the user {:?} is disabled; ask your IT administrator",
                user.name
            ),
        )
    }
}

//! Users: created (optionally into groups), listed, disabled and enabled.
//! Disabling a user removes their devices' peers at the next journal step
//! and refuses their credentials at once (see `auth`).
use super::{Controller, json};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::names;
use crate::store::records::UserRecord;

impl Controller {
    /// Creates a user, optionally in existing groups.
    pub async fn create_user(&self, actor: &Actor, user: UserRecord) -> Result<UserRecord> {
        self.write(|t| {
            if t.user_exists(&user.name)? {
                return Err(
                    Error::AlreadyExists(format!("user {:?} already exists", user.name)).into(),
                );
            }
            for group in &user.groups {
                t.require_group(group)?;
            }
            t.claim_name(names::Kind::User, &user.name, |t, holder| {
                t.user_exists(holder)
            })?;
            t.put_user(&user)?;
            log_admin(
                t,
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
        self.store.users()
    }

    /// One user.
    pub fn user(&self, name: &str) -> Result<UserRecord> {
        self.store
            .user(name)?
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
            let mut user = t.require_user(name)?;
            let before = json(&user);
            user.disabled = disabled;
            t.put_user(&user)?;
            let action = if disabled {
                "user.disable"
            } else {
                "user.enable"
            };
            log_admin(t, actor, action, name, before, json(&user), now)?;
            Ok(user)
        })
        .await
    }
}

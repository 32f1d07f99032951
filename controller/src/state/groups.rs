//! Groups: what their members may reach (destinations) and who they are.
//! Membership is kept on the user record; a group lists its members by
//! looking them up.
use super::{Controller, json};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::names;
use crate::store::records::{Destination, GroupRecord};
use std::collections::BTreeMap;

impl Controller {
    /// Creates an empty group.
    pub async fn create_group(&self, actor: &Actor, group: GroupRecord) -> Result<GroupRecord> {
        self.write(|t| {
            if t.group_exists(&group.name)? {
                return Err(
                    Error::AlreadyExists(format!("group {:?} already exists", group.name)).into(),
                );
            }
            t.claim_name(names::Kind::Group, &group.name, |t, holder| {
                t.group_exists(holder)
            })?;
            t.put_group(&group)?;
            log_admin(
                t,
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
            .groups()?
            .into_iter()
            .map(|g| {
                let m = members.remove(&g.name).unwrap_or_default();
                (g, m)
            })
            .collect())
    }

    /// One group with its members.
    pub fn group(&self, name: &str) -> Result<(GroupRecord, Vec<String>)> {
        let group = self
            .store
            .group(name)?
            .ok_or_else(|| Error::not_found("group", name))?;
        let members = self.members_by_group()?.remove(name).unwrap_or_default();
        Ok((group, members))
    }

    pub(super) fn members_by_group(&self) -> Result<BTreeMap<String, Vec<String>>> {
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
            let group = t.require_group(name)?;
            t.remove_group(name)?;
            log_admin(t, actor, "group.delete", name, json(&group), None, now)?;
            for user in users.iter().filter(|u| u.groups.contains(name)) {
                // Re-read inside the transaction: the list above may be stale.
                if let Some(mut current) = t.user(&user.name)? {
                    current.groups.remove(name);
                    t.put_user(&current)?;
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
            let mut record = t.require_group(group)?;
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
                t.put_group(&record)?;
                log_admin(t, actor, "group.allow", group, before, json(&record), now)?;
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
            let mut record = t.require_group(group)?;
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
            t.put_group(&record)?;
            log_admin(
                t,
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
            t.require_group(group)?;
            let action = if join {
                "group.members.add"
            } else {
                "group.members.remove"
            };
            log_admin(
                t,
                actor,
                action,
                group,
                None,
                Some(serde_json::json!({ "users": users })),
                now,
            )?;
            for name in users {
                let mut user = t.require_user(name)?;
                if join {
                    user.groups.insert(group.to_owned());
                } else {
                    user.groups.remove(group);
                }
                t.put_user(&user)?;
            }
            Ok(())
        })
        .await
    }
}

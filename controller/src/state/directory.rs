//! Applying a directory sync's plan: every change in one store
//! transaction, each in the admin log with the actor `directory`.
use super::{Controller, json};
use crate::directory::plan::{Action, Plan};
use crate::error::{Error, Result};
use crate::logs::Actor;
use crate::logs::append::log_admin;
use crate::names;

impl Controller {
    /// Applies `plan` all or nothing. A user changed by someone else since
    /// the plan was made aborts it (the next sync plans again). Returns the
    /// revision that carries the changes.
    pub async fn apply_directory_plan(
        &self,
        actor: &Actor,
        plan: &Plan,
        groups: &[String],
        now: u64,
    ) -> Result<u64> {
        self.write(|t| {
            for group in groups {
                t.require_group(group)?;
            }
            for change in &plan.changes {
                let name = change.user();
                let current = t.user(name)?;
                if current != change.before {
                    return Err(Error::FailedPrecondition(format!(
                        "user {name:?} changed while the directory sync was planned; nothing \
                         was applied, and the next sync plans again"
                    ))
                    .into());
                }
                if change.action == Action::Create {
                    t.claim_name(names::Kind::User, name, |t, holder| t.user_exists(holder))?;
                }
                t.put_user(&change.after)?;
                let action = match change.action {
                    Action::Create => "user.create",
                    Action::Update => "user.update",
                    Action::Disable => "user.disable",
                    Action::Enable => "user.enable",
                };
                log_admin(
                    t,
                    actor,
                    action,
                    name,
                    change.before.as_ref().and_then(json),
                    json(&change.after),
                    now,
                )?;
            }
            Ok(())
        })
        .await?;
        Ok(self.revision())
    }

    /// Records a sync that changed nothing because it failed or was
    /// refused (`action` is `directory.sync.failed` or
    /// `directory.sync.refused`), with the reason.
    pub async fn log_directory_outcome(
        &self,
        actor: &Actor,
        action: &str,
        reason: &str,
        now: u64,
    ) -> Result<()> {
        self.write(|t| {
            log_admin(
                t,
                actor,
                action,
                "directory",
                None,
                Some(serde_json::json!({ "reason": reason })),
                now,
            )
        })
        .await
    }
}
